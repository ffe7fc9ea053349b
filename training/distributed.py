"""Everything rank-related in one place: the training loop asks only `context.is_main`.

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; without them the process
runs alone and no process group is created.
"""

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from fer.device import resolve_device
from fer.errors import FerError


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None = None  # of the process group joined (nccl or gloo); None: running alone

    @property
    def is_distributed(self) -> bool:
        """A process group exists: DDP wraps the model and metrics are reduced across ranks."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs, checkpoints and weights, and shows progress."""
        return self.rank == 0


def init_distributed(requested_device: str, timeout_minutes: float, backend: str = "auto") -> DistributedContext:
    """Join the process group torchrun describes in the environment (`backend` auto: NCCL on GPU,
    gloo on CPU). A process torchrun started joins one even alone (--nproc_per_node=1), so that the
    one-GPU run takes the same NCCL and DDP path as eight; a process started without torchrun runs
    alone without one."""
    launched_by_torchrun = "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if launched_by_torchrun:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl" and device.type != "cuda":
            raise FerError(f"--dist-backend nccl needs CUDA GPUs, and this process runs on {device.type}")
        timeout = timedelta(minutes=timeout_minutes)
        # torchrun's env:// store can outlive a restart (--max-restarts): without a namespace per
        # attempt, a restarted rank may read a dead peer's address left by the previous attempt
        # and fail with "connection refused" (seen with gloo; pytorch/pytorch#167288).
        store, _, _ = next(dist.rendezvous("env://", timeout=timeout))
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group(
            backend,
            store=dist.PrefixStore(f"fer/attempt{attempt}", store),
            rank=rank,
            world_size=world_size,
            timeout=timeout,
            device_id=device if backend == "nccl" else None,
        )
        return DistributedContext(rank, local_rank, world_size, device, backend)
    return DistributedContext(rank, local_rank, world_size, device)


def close_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_across_ranks(values: list[float], context: DistributedContext) -> list[float]:
    """Element-wise sum over all ranks (metrics travel as sums and counts, divided afterwards)."""
    if not context.is_distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def mean_across_ranks(
    loss_sum: float, correct: float, count: float, context: DistributedContext
) -> tuple[float, float]:
    """(mean loss, accuracy) over all ranks from each rank's loss sum, correct count and sample count.

    Sums travel and are divided once at the end, so ranks with shards of different sizes weigh
    exactly as many samples as they scored (torchvision's reduce_across_processes does the same).
    """
    total_loss, total_correct, total = sum_across_ranks([loss_sum, correct, count], context)
    return total_loss / max(total, 1), total_correct / max(total, 1)


def barrier(context: DistributedContext) -> None:
    if context.is_distributed:
        dist.barrier()


def restarted_by_torchrun() -> bool:
    """True in a worker that torchrun restarted (`--max-restarts`): it should resume on its own."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


@torch.no_grad()
def average_buffers(module: torch.nn.Module, context: DistributedContext) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over all ranks, in place.

    DDP keeps parameters identical, but each rank updates BatchNorm statistics from its own batches,
    so without this every rank would evaluate and checkpoint a slightly different model.
    """
    if not context.is_distributed:
        return
    buffers = [buffer for buffer in module.buffers() if buffer.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([buffer.reshape(-1) for buffer in buffers]).to(torch.float64)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= context.world_size
    offset = 0
    for buffer in buffers:
        count = buffer.numel()
        buffer.copy_(flat[offset : offset + count].view_as(buffer))
        offset += count
