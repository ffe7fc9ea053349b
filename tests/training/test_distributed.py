"""What crosses ranks must come out right, not only identical on every rank: two real gloo processes
under torchrun, checked against the answers computed in one process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import REPO
from tests.training.workers.collective_worker import Threshold, rank_buffers, validation_split
from training.config import TrainConfig
from training.distributed import (
    DistributedContext,
    barrier,
    close_distributed,
    mean_across_ranks,
    restarted_by_torchrun,
)
from training.train import evaluate_accuracy

WORKER = str(Path(__file__).parent / "workers" / "collective_worker.py")
SINGLE = DistributedContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    report = tmp_path_factory.mktemp("collective")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", WORKER]
    env = {"OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "FER_TEST_REPORT_DIR": str(report)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, **env}, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(report / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]


def test_buffers_are_averaged_not_summed(two_ranks):
    before = [dict(rank_buffers(rank).named_buffers()) for rank in (0, 1)]
    for rank in (0, 1):
        after = two_ranks[rank]["buffers"]
        for name in ("running_mean", "running_var"):
            expected = (before[0][name] + before[1][name]) / 2
            assert torch.allclose(after[name], expected), f"rank {rank} {name}: {after[name]} != mean {expected}"
        # Integer buffers (the batch counter) are each rank's own and stay as they were.
        assert after["num_batches_tracked"] == before[rank]["num_batches_tracked"]


def test_metrics_are_sums_divided_by_the_total_count(two_ranks):
    # rank 0: loss sum 1.5, 3 correct of 4; rank 1: loss sum 3.0, 4 correct of 6.
    for rank in (0, 1):
        loss, accuracy = two_ranks[rank]["mean_across_ranks"]
        assert loss == pytest.approx(4.5 / 10) and accuracy == pytest.approx(7 / 10)


def test_one_process_has_nothing_to_reduce():
    assert mean_across_ranks(3.0, 2, 4, SINGLE) == (0.75, 0.5)
    assert mean_across_ranks(0.0, 0, 0, SINGLE) == (0.0, 0.0)  # an empty split is not a crash
    assert mean_across_ranks(0.5, 1, 1, SINGLE) == (0.5, 1.0)  # one face, right


def test_two_ranks_report_the_validation_accuracy_of_one_process(two_ranks):
    images, labels = validation_split()
    config = TrainConfig(data="unused", amp="off", eval_batch_size=8)
    alone = evaluate_accuracy(Threshold(), images, labels, config, SINGLE)
    logits = Threshold()(images.float())
    assert alone[1] == pytest.approx(21 / 35)
    assert alone[0] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    for rank in (0, 1):
        assert two_ranks[rank]["evaluate_accuracy"] == pytest.approx(alone)


def test_rank_zero_alone_is_main_and_every_rank_leaves_the_group(two_ranks):
    assert [r["is_main"] for r in two_ranks] == [True, False]
    assert all(r["is_distributed"] for r in two_ranks)
    assert all(r["process_group_left"] for r in two_ranks)


def test_one_process_is_main_and_needs_no_group():
    assert SINGLE.is_main and not SINGLE.is_distributed
    barrier(SINGLE)  # no process group exists: nothing to wait for, and no error
    close_distributed()
    with pytest.raises(AttributeError):
        SINGLE.rank = 1  # the context is shared by the whole run: frozen


@pytest.mark.parametrize("count, restarted", [(None, False), ("0", False), ("1", True), ("3", True)])
def test_a_worker_knows_when_torchrun_restarted_it(monkeypatch, count, restarted):
    if count is None:
        monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    else:
        monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", count)
    assert restarted_by_torchrun() is restarted


def test_a_process_outside_torchrun_runs_alone_without_a_process_group(monkeypatch):
    import torch.distributed as dist

    from training.distributed import init_distributed

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    context = init_distributed("cpu", timeout_minutes=1)
    assert (context.rank, context.world_size, context.device.type) == (0, 1, "cpu")
    assert not dist.is_initialized()


def test_nccl_asked_for_processes_on_the_cpu_is_refused_before_any_rendezvous(monkeypatch):
    import torch.distributed as dist

    from fer.errors import FerError
    from training.distributed import init_distributed

    # As torchrun describes a group; nothing listens at the address, so a rendezvous would hang.
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_PORT", "9")
    with pytest.raises(FerError, match="--dist-backend nccl needs CUDA GPUs, and this process runs on cpu"):
        init_distributed("cpu", timeout_minutes=0.05, backend="nccl")
    assert not dist.is_initialized()


@pytest.mark.parametrize("present", ["WORLD_SIZE", "MASTER_ADDR"])
def test_half_of_torchrun_s_environment_is_not_a_process_group(monkeypatch, present):
    """A WORLD_SIZE left in a shell (or a MASTER_ADDR from another tool) alone is no torchrun."""
    import torch.distributed as dist

    from training.distributed import init_distributed

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(present, "1" if present == "WORLD_SIZE" else "127.0.0.1")
    context = init_distributed("cpu", timeout_minutes=0.05)
    assert context.backend is None and not dist.is_initialized()
