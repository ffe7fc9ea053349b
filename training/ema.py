"""Exponential moving average of a model's weights, the model that is evaluated and exported.

Unlike `torch.optim.swa_utils.AveragedModel` with a fixed decay, the decay warms up as
min(decay, (1 + n) / (10 + n)) after n updates: with a fixed 0.999 the average would still be 64%
random initialization after 450 steps, which spoils short runs and early-epoch model selection.
"""

import copy

import torch
from torch import nn


class ExponentialMovingAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def update(self, model: nn.Module) -> None:
        # state_dict() gives detached tensors that share the weights' storage: no autograd graph here.
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        averaged = list(self.module.state_dict().values())
        current = list(model.state_dict().values())
        floats = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1.0 - decay)
        for a, c in zip(averaged, current):
            if not a.is_floating_point():
                a.copy_(c)  # BatchNorm's num_batches_tracked: a count, not something to average

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
