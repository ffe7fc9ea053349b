"""The learning-rate schedule against its closed form: linear warm-up from 0, then half a cosine that
ends at exactly 0 on the run's last step."""

import math

import pytest
import torch

from training.config import TrainConfig
from training.state import TrainingState, warmup_cosine


def test_the_warmup_rises_linearly_to_the_peak():
    factor = warmup_cosine(4, 20)
    assert [factor(step) for step in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_the_cosine_falls_from_the_peak_to_zero_at_the_last_step_and_stays_there():
    factor = warmup_cosine(4, 20)  # 16 cosine steps after 4 warm-up steps
    for step in range(4, 21):
        expected = 0.5 * (1 + math.cos(math.pi * (step - 4) / 16))
        assert factor(step) == pytest.approx(expected, abs=1e-12), step
    assert factor(4) == 1.0 and factor(12) == pytest.approx(0.5) and factor(20) == 0.0
    assert factor(16) == pytest.approx((2 - math.sqrt(2)) / 4)  # three quarters of the way: 0.146
    assert factor(25) == 0.0  # past the end (an extended run's old total): not rising again


def test_a_run_without_warmup_steps_starts_at_the_peak():
    factor = warmup_cosine(1, 10)  # TrainingState keeps at least one warm-up step
    assert factor(0) == 1.0 and factor(1) == 1.0 and factor(10) == 0.0


def test_a_run_that_is_all_warmup_ends_at_the_peak_without_dividing_by_zero():
    factor = warmup_cosine(4, 4)  # --epochs 1 --warmup-epochs 1
    assert [factor(step) for step in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    one_step_of_cosine = warmup_cosine(4, 5)
    assert [one_step_of_cosine(step) for step in (3, 4, 5)] == [1.0, 1.0, 0.0]


def test_the_trainers_optimizer_follows_the_schedule_step_by_step():
    """TrainingState.create turns epochs into steps: 3 epochs of 10 steps, half an epoch of warm-up."""
    config = TrainConfig(data="unused", arch="vgg_slim", epochs=3, warmup_epochs=0.5, lr=0.2, optimizer="sgd")
    state = TrainingState.create(config, steps_per_epoch=10, device=torch.device("cpu"))
    seen = [state.optimizer.param_groups[0]["lr"]]
    for _ in range(30):
        state.optimizer.step()  # no gradients: the weights stay, the schedule moves
        state.scheduler.step()
        seen.append(state.optimizer.param_groups[0]["lr"])
    expected = [0.2 * (step + 1) / 5 for step in range(5)]
    expected += [0.2 * 0.5 * (1 + math.cos(math.pi * (step - 5) / 25)) for step in range(5, 31)]
    assert seen == pytest.approx(expected, abs=1e-12)
    assert seen[-1] == 0.0 and all(group["lr"] == 0.0 for group in state.optimizer.param_groups)
