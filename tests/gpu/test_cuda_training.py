"""Training on the GPU: each AMP mode, torch.compile, NCCL under torchrun, two processes sharing
one GPU, and a checkpoint written there resumed on a CPU."""

import json
import math

import pytest

from fer.weights import load_checkpoint
from tests.conftest import run_python

pytestmark = pytest.mark.gpu


def train_args(data, out, device, *extra) -> list[str]:
    return ["--data", str(data), "--arch", "vgg_slim", "--batch-size", "16", "--lr", "0.05",
            "--device", device, "--out", str(out), *extra]  # fmt: skip


def metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


LEARNED = 0.3  # validation accuracy; a constant answer scores 1/7


def assert_learned(out, epochs: int, min_accuracy: float = LEARNED) -> None:
    """The run finished its epochs with finite losses and beat a constant answer on validation: the
    generated faces carry their emotion in a bright band that a working model finds in a few steps."""
    rows = metrics(out)
    assert [row["epoch"] for row in rows] == list(range(1, epochs + 1))
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]) for row in rows)
    assert rows[-1]["best_val_accuracy"] > min_accuracy, rows


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_trains_with_each_autocast_mode(kaggle_zip, tmp_path, device, amp):
    # fp16 on a CPU (the dry run) is emulated at about 13 images/s: there a few steps show the path runs.
    emulated = amp == "fp16" and device == "cpu"
    size = ["--max-samples", "35", "--epochs", "1"] if emulated else ["--epochs", "3"]
    result = run_python("-m", "training.train", *train_args(kaggle_zip, tmp_path, device, "--amp", amp, *size))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_learned(tmp_path, 1 if emulated else 3, min_accuracy=0 if emulated else LEARNED)
    scaler = load_checkpoint(tmp_path / "last.pt")["scaler"]
    if amp == "fp16":  # GradScaler was on: its scale is a finite power of two that training adjusted
        assert scaler["scale"] > 0 and math.log2(scaler["scale"]).is_integer()
    else:  # bf16 needs no loss scaling: the scaler stayed off and saved nothing
        assert scaler == {}


def test_trains_compiled(kaggle_zip, tmp_path, device):
    result = run_python(
        "-m", "training.train", *train_args(kaggle_zip, tmp_path, device, "--epochs", "2", "--compile"), timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_learned(tmp_path, 2)
    # The checkpoint holds the plain model's weights, not torch.compile's wrapper (no "_orig_mod.").
    assert not any("_orig_mod" in key for key in load_checkpoint(tmp_path / "last.pt")["model"])


def torchrun(processes: int, *args, timeout=300):
    return run_python(
        "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "training.train", *args,
        env={"OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}, timeout=timeout,
    )  # fmt: skip


def test_one_process_under_torchrun_joins_nccl_on_a_gpu(kaggle_zip, tmp_path, device):
    result = torchrun(1, *train_args(kaggle_zip, tmp_path, device, "--epochs", "2"))
    assert result.returncode == 0, result.stderr[-3000:]
    expected = "nccl" if device == "cuda" else "gloo"
    assert f"1 process(es) on {device} ({expected})" in result.stderr
    assert_learned(tmp_path, 2)


def test_two_processes_share_one_gpu_through_gloo(kaggle_zip, tmp_path, device):
    # NCCL refuses two ranks on one GPU; gloo moves the same tensors through host memory. Batches of 8
    # a rank: the 140 training faces still make 8 steps an epoch.
    args = train_args(kaggle_zip, tmp_path, device, "--epochs", "3", "--dist-backend", "gloo", "--batch-size", "8")
    result = torchrun(2, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"2 process(es) on {device} (gloo)" in result.stderr
    assert_learned(tmp_path, 3)


def test_a_checkpoint_written_on_the_gpu_resumes_on_a_cpu(kaggle_zip, tmp_path, device):
    first = run_python("-m", "training.train", *train_args(kaggle_zip, tmp_path, device, "--epochs", "2"))
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_python("-m", "training.train", *train_args(kaggle_zip, tmp_path, "cpu", "--epochs", "3", "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "after epoch 2/" in resumed.stderr
    assert_learned(tmp_path, 3)
