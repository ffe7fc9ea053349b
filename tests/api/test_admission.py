"""api/admission.py: how the price of preparing an image follows measurements by size class."""

import pytest

from api.admission import CostBySize, WorkEstimate, size_class

VGA, UXGA, HUGE = 640 * 480, 1600 * 1200, 5000 * 5000


def test_size_classes_double_in_pixels():
    assert [size_class(p) for p in (1, 2**17, 2**17 + 1, VGA, UXGA, HUGE)] == [0, 0, 1, 2, 4, 8]


def test_a_measured_class_is_priced_at_its_running_average():
    cost = CostBySize()
    cost.observe(VGA, 0.10)
    cost.observe(VGA, 0.20)  # smoothed, not replaced
    assert cost.estimate(VGA, unmeasured=9) == pytest.approx(0.8 * 0.10 + 0.2 * 0.20)


def test_unmeasured_classes_are_priced_from_their_neighbours_never_below_what_was_seen():
    cost = CostBySize()
    assert cost.estimate(VGA, unmeasured=0.5) == 0.5  # nothing measured yet
    cost.observe(VGA, 0.1)  # class 2
    cost.observe(UXGA, 0.3)  # class 4
    assert cost.estimate(1000 * 750, unmeasured=9) == pytest.approx(0.2)  # class 3: halfway between
    assert cost.estimate(100 * 100, unmeasured=9) == pytest.approx(0.1)  # below: the smallest class's price
    # Above the largest measured class: at its price per pixel, 2**4 times class 4's for class 8. A
    # detector whose cost levels off is over-priced there until the first such image is measured.
    assert cost.estimate(HUGE, unmeasured=9) == pytest.approx(0.3 * 16)
    cost.observe(HUGE, 0.6)
    assert cost.estimate(HUGE, unmeasured=9) == pytest.approx(0.6)


def test_images_that_fill_the_decode_budget_are_prepared_one_at_a_time():
    estimate = WorkEstimate(prepare_threads=2, decode_budget_pixels=25_000_000)
    assert estimate.parallel(VGA) == 2
    assert estimate.parallel(HUGE) == 1  # the budget holds one: the second waits for the first
    estimate.prepare[True].observe(HUGE, 0.6)
    estimate.prepare[True].observe(VGA, 0.1)
    estimate.observe_batch("none", seconds=0.01, faces=10)
    assert estimate.cost_s([HUGE], detect=True, tta="none") == pytest.approx(0.6 + 0.001)
    assert estimate.cost_s([VGA, VGA], detect=True, tta="none") == pytest.approx(0.1 / 2 * 2 + 2 * 0.001)
