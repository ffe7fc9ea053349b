"""A torchrun worker for the tests: runs the rank-crossing helpers of training.distributed and
training.train.evaluate_accuracy on rank-specific inputs and records what each rank got.

Each rank writes rank<RANK>.pt to FER_TEST_REPORT_DIR. The inputs are functions of the rank, so the
test can compute in one process what the right answers are.
"""

import os
from pathlib import Path

import torch
from torch import nn

from training.config import TrainConfig
from training.distributed import average_buffers, close_distributed, init_distributed, mean_across_ranks
from training.train import evaluate_accuracy


def rank_buffers(rank: int) -> nn.Module:
    """A BatchNorm whose running statistics differ per rank, as they do after a DDP epoch."""
    norm = nn.BatchNorm2d(3)
    norm.running_mean.copy_(torch.tensor([1.0, -2.0, 0.5]) * (rank + 1))
    norm.running_var.copy_(torch.tensor([1.0, 4.0, 9.0]) + rank)
    norm.num_batches_tracked.fill_(10 * (rank + 1))  # an integer buffer: not averaged
    return norm


class Threshold(nn.Module):
    """A fixed classifier: class 0 when the face's mean pixel is below 128, else class 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = (x.mean((1, 2, 3)) >= 128).float()
        return torch.stack([1 - bright, bright] + [torch.zeros_like(bright)] * 5, 1) * 4.0


def validation_split() -> tuple[torch.Tensor, torch.Tensor]:
    """35 faces (an odd count: the two shards differ in size) and labels the Threshold gets 60% right."""
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(35, 1, 48, 48, generator=generator) * 255).to(torch.uint8)
    images[:20] //= 2  # dark: predicted class 0
    images[20:] = images[20:] // 2 + 128  # bright: predicted class 1
    labels = torch.tensor([0] * 12 + [1] * 8 + [1] * 9 + [0] * 6)  # 12 + 9 = 21 of 35 right
    return images, labels


if __name__ == "__main__":
    context = init_distributed("cpu", timeout_minutes=2)
    try:
        norm = rank_buffers(context.rank)
        average_buffers(norm, context)
        loss, accuracy = mean_across_ranks(1.5 * (context.rank + 1), 3 + context.rank, 4 + 2 * context.rank, context)
        images, labels = validation_split()
        config = TrainConfig(data="unused", amp="off", eval_batch_size=8)
        val_loss, val_accuracy = evaluate_accuracy(Threshold(), images, labels, config, context)
        report = {
            "is_main": context.is_main,
            "is_distributed": context.is_distributed,
            "buffers": {name: buffer.clone() for name, buffer in norm.named_buffers()},
            "mean_across_ranks": (loss, accuracy),
            "evaluate_accuracy": (val_loss, val_accuracy),
        }
    finally:
        close_distributed()
    report["process_group_left"] = not torch.distributed.is_initialized()
    torch.save(report, Path(os.environ["FER_TEST_REPORT_DIR"]) / f"rank{context.rank}.pt")
