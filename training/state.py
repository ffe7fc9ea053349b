"""A run's state: the model and everything that moves with it from step to step, saved as one
checkpoint and restored from one, so that the list of what a run is lives in one place.

The checkpoint's keys are the format every fer version has written (model, ema, optimizer,
scheduler, scaler, epoch, best_accuracy, val_accuracy, rng, config, arch, labels), so runs trained
in legs resume across versions.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fer.labels import EMOTIONS
from fer.models import build_model
from training.config import TrainConfig
from training.ema import ExponentialMovingAverage
from training.precision import choose_amp


@dataclass
class TrainingState:
    model: nn.Module  # the bare model, never the DDP or compiled wrapper: its state dict has no prefixes
    ema: ExponentialMovingAverage  # what is evaluated and exported
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler  # enabled only for fp16
    epoch: int = 0  # epochs finished: the next one to train is this index
    best_accuracy: float = 0.0  # best validation accuracy of the EMA so far

    @classmethod
    def create(cls, config: TrainConfig, steps_per_epoch: int, device: torch.device) -> "TrainingState":
        """A fresh run: the same initial weights on every rank (seeded), warmup then cosine decay."""
        torch.manual_seed(config.seed)
        model = build_model(config.arch).to(device, memory_format=torch.channels_last)
        optimizer = _make_optimizer(model, config)
        total_steps = config.epochs * steps_per_epoch
        warmup_steps = max(1, round(config.warmup_epochs * steps_per_epoch))
        return cls(
            model=model,
            ema=ExponentialMovingAverage(model, config.ema_decay),
            optimizer=optimizer,
            scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, total_steps)),
            scaler=torch.amp.GradScaler(device.type, enabled=choose_amp(config.amp, device).mode == "fp16"),
        )

    def restore(self, checkpoint: dict) -> None:
        """Continue where a checkpoint stopped: weights, averages, optimizer moments, schedule, RNG."""
        self.model.load_state_dict(checkpoint["model"])
        self.ema.load_state_dict(checkpoint["ema"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint["scaler"] or not self.scaler.is_enabled():
            # A leg that trained without fp16 saved an empty scaler; one in fp16 now starts a fresh one.
            self.scaler.load_state_dict(checkpoint["scaler"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        self.epoch, self.best_accuracy = checkpoint["epoch"], checkpoint["best_accuracy"]

    def checkpoint(self, config: TrainConfig, val_accuracy: float) -> dict:
        """Everything `restore` needs, plus what fer.weights reads to load the EMA for inference."""
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "best_accuracy": self.best_accuracy,
            "val_accuracy": val_accuracy,
            "rng": {"torch": torch.get_rng_state()},
            "config": config.to_dict(),
            "arch": config.arch,
            "labels": list(EMOTIONS),
        }


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # Weight decay on norm weights and biases only shrinks scales that BN re-learns; skip them.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """The learning-rate factor of a step: linear warmup from 0, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor
