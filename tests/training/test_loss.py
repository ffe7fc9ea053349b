"""The training loss, pinned to values computed by hand (plain Python floats, not torch): a wrong
weight, a swapped label, a lost T^2 or a reversed KL gives another number, not only another run."""

import math

import pytest
import torch

from training.augment import MixedBatch
from training.distill import distillation_loss
from training.loss import batch_loss, label_loss, mixed_soft_targets

LOGITS = [[2.0, -1.0, 0.5, 0.0, 1.0, -0.5, 0.3], [0.1, 0.2, -2.0, 3.0, 0.0, 1.5, -1.0]]
TEACHER = [[0.6, 0.05, 0.1, 0.05, 0.1, 0.05, 0.05], [0.02, 0.03, 0.05, 0.5, 0.1, 0.25, 0.05]]
LABELS = [0, 5]


def log_softmax(row: list[float], temperature: float = 1.0) -> list[float]:
    scaled = [v / temperature for v in row]
    top = max(scaled)
    log_total = top + math.log(sum(math.exp(v - top) for v in scaled))
    return [v - log_total for v in scaled]


def cross_entropy(row: list[float], label: int, smoothing: float) -> float:
    """Label smoothing as torch defines it: (1 - e) of the label plus e spread evenly over all classes."""
    log_p = log_softmax(row)
    return (1 - smoothing) * -log_p[label] + smoothing * -sum(log_p) / len(log_p)


def soften(probabilities: list[float], temperature: float) -> list[float]:
    powered = [p ** (1 / temperature) for p in probabilities]
    return [p / sum(powered) for p in powered]


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def unmixed(batch: int) -> MixedBatch:
    return MixedBatch(torch.zeros(batch, 1, 48, 48), torch.arange(batch), 1.0)


def test_the_label_loss_is_the_mean_smoothed_cross_entropy():
    for smoothing in (0.0, 0.1):
        expected = sum(cross_entropy(row, y, smoothing) for row, y in zip(LOGITS, LABELS)) / 2
        got = label_loss(torch.tensor(LOGITS), torch.tensor(LABELS), unmixed(2), smoothing)
        assert got.item() == pytest.approx(expected, rel=1e-6)


def test_a_mixed_face_learns_its_own_label_by_its_weight_and_its_partners_by_the_rest():
    weight = 0.7  # each face is 70% its own image, 30% its partner's (the faces swap partners here)
    mixed = MixedBatch(torch.zeros(2, 1, 48, 48), torch.tensor([1, 0]), weight)
    partners = [LABELS[1], LABELS[0]]
    expected = (
        sum(
            weight * cross_entropy(row, y, 0.1) + (1 - weight) * cross_entropy(row, y2, 0.1)
            for row, y, y2 in zip(LOGITS, LABELS, partners)
        )
        / 2
    )
    got = label_loss(torch.tensor(LOGITS), torch.tensor(LABELS), mixed, 0.1)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # Swapping the two weights gives another number: the test tells them apart.
    swapped = (
        sum(
            (1 - weight) * cross_entropy(row, y, 0.1) + weight * cross_entropy(row, y2, 0.1)
            for row, y, y2 in zip(LOGITS, LABELS, partners)
        )
        / 2
    )
    assert abs(expected - swapped) > 0.5


def test_the_distillation_loss_is_t_squared_times_kl_from_the_teacher_to_the_student():
    for temperature in (1.0, 2.0, 4.0):
        expected = (
            sum(
                temperature**2 * kl(soften(t, temperature), [math.exp(v) for v in log_softmax(row, temperature)])
                for row, t in zip(LOGITS, TEACHER)
            )
            / 2
        )  # batch mean
        got = distillation_loss(torch.tensor(LOGITS), torch.tensor(TEACHER), temperature)
        assert got.item() == pytest.approx(expected, rel=1e-5), temperature
    # At T = 4 the other direction, KL(student || teacher), and the T (not T^2) scaling differ by far more
    # than the tolerance: each would fail the check above.
    student = [[math.exp(v) for v in log_softmax(row, 4.0)] for row in LOGITS]
    forward = sum(kl(soften(t, 4.0), s) for t, s in zip(TEACHER, student)) / 2
    backward = sum(kl(s, soften(t, 4.0)) for t, s in zip(TEACHER, student)) / 2
    assert abs(forward - backward) / forward > 0.01  # 4.5%: a thousand times the tolerance


def test_soft_targets_of_mixed_faces_are_mixed_like_their_pixels():
    soft = torch.tensor(TEACHER)
    torch.testing.assert_close(mixed_soft_targets(soft, unmixed(2)), soft, rtol=0, atol=0)
    mixed = MixedBatch(torch.zeros(2, 1, 48, 48), torch.tensor([1, 0]), 0.7)
    expected = [[0.7 * a + 0.3 * b for a, b in zip(TEACHER[0], TEACHER[1])],
                [0.7 * b + 0.3 * a for a, b in zip(TEACHER[0], TEACHER[1])]]  # fmt: skip
    torch.testing.assert_close(mixed_soft_targets(soft, mixed), torch.tensor(expected))


def test_the_batch_loss_weighs_the_labels_against_the_teachers():
    logits, labels = torch.tensor(LOGITS), torch.tensor(LABELS)
    mixed = MixedBatch(torch.zeros(2, 1, 48, 48), torch.tensor([1, 0]), 0.7)
    hard = label_loss(logits, labels, mixed, 0.1).item()
    soft = distillation_loss(logits, mixed_soft_targets(torch.tensor(TEACHER), mixed), 4.0).item()
    got = batch_loss(logits, labels, mixed, 0.1, torch.tensor(TEACHER), distill_weight=0.25, temperature=4.0)
    assert got.item() == pytest.approx(0.75 * hard + 0.25 * soft, rel=1e-6)
    assert hard != pytest.approx(soft, rel=0.05)  # so that the weights are told apart
    # Without soft targets the distillation settings are ignored.
    assert batch_loss(logits, labels, mixed, 0.1, None, 0.9, 4.0).item() == pytest.approx(hard, rel=1e-6)


def test_a_teachers_zero_probability_gives_a_finite_loss():
    """float16 storage rounds probabilities under 6e-8 to 0; the loss treats them as 1e-8, not as log 0."""
    teacher = torch.tensor([[0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]])
    logits = torch.tensor([LOGITS[0]])
    loss = distillation_loss(logits, teacher, 2.0)
    floored = [max(p, 1e-8) for p in teacher[0].tolist()]
    expected = 4.0 * kl(soften(floored, 2.0), [math.exp(v) for v in log_softmax(LOGITS[0], 2.0)])
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected, rel=1e-4)
