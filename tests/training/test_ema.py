"""The weights' moving average against its closed form, computed by hand step by step."""

import math

import pytest
import torch
from torch import nn

from training.ema import ExponentialMovingAverage


def model_with(weight: float) -> nn.Module:
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(weight)
    return model


def averaged_weight(ema: ExponentialMovingAverage) -> float:
    return ema.module[0].weight.item()


def test_each_update_moves_the_average_toward_the_model_by_one_minus_the_warming_decay():
    """a_k = d_k * a_(k-1) + (1 - d_k) * w_k with d_k = min(decay, (1 + k) / (10 + k)): the warm-up
    (k <= 7 at decay 0.6) and the cap (after) both show in 12 updates."""
    model = model_with(1.0)
    ema = ExponentialMovingAverage(model, decay=0.6)
    expected = 1.0
    for k in range(1, 13):
        with torch.no_grad():
            model[0].weight.fill_(float(k * k))  # the model moves; the average follows it
        ema.update(model)
        decay = min(0.6, (1 + k) / (10 + k))
        expected = decay * expected + (1 - decay) * k * k
        assert averaged_weight(ema) == pytest.approx(expected, rel=1e-6), k
    assert ema.updates == 12


def test_a_still_model_is_approached_geometrically():
    """From a_0 = 0 toward a model held at 1: a_n = 1 - prod(d_k)."""
    model = model_with(0.0)
    ema = ExponentialMovingAverage(model, decay=0.999)
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    for _ in range(450):
        ema.update(model)
    remaining = math.prod(min(0.999, (1 + k) / (10 + k)) for k in range(1, 451))
    assert averaged_weight(ema) == pytest.approx(1.0 - remaining, rel=1e-5)
    # The warm-up is why: a fixed 0.999 would leave 64% of the initial weights after 450 steps.
    assert remaining < 0.05 and 0.999**450 > 0.6


def test_counts_are_copied_not_averaged_and_the_copy_is_its_own():
    model = model_with(2.0)
    ema = ExponentialMovingAverage(model, decay=0.9)
    model.train()
    model(torch.ones(4, 1))  # BatchNorm counts one batch and moves its running statistics
    ema.update(model)
    assert ema.module[1].num_batches_tracked.item() == 1
    # The model's running mean is 0.1 x 2 after one batch; the average takes 1 - d_1 = 9/11 of it.
    assert ema.module[1].running_mean.item() == pytest.approx(9 / 11 * 0.2, rel=1e-5)
    with torch.no_grad():
        model[0].weight.fill_(100.0)
    assert averaged_weight(ema) == pytest.approx(2.0)  # not the model's tensor
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())


def test_a_restored_average_continues_with_the_decay_of_its_update_count():
    model = model_with(1.0)
    ema = ExponentialMovingAverage(model, decay=0.95)
    for _ in range(5):
        ema.update(model_with(3.0))
    restored = ExponentialMovingAverage(model_with(-7.0), decay=0.95)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 5 and averaged_weight(restored) == pytest.approx(averaged_weight(ema))
    before = averaged_weight(restored)
    restored.update(model_with(3.0))
    decay = min(0.95, 7 / 16)  # the 6th update's, not the 1st's
    assert averaged_weight(restored) == pytest.approx(decay * before + (1 - decay) * 3.0, rel=1e-6)
