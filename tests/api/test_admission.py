"""api/admission.py: how the price of preparing an image follows measurements by size class."""

import pytest

from api.admission import CostBySize, WorkEstimate, size_class

VGA, UXGA, HUGE = 640 * 480, 1600 * 1200, 5000 * 5000


def test_size_classes_double_in_pixels():
    assert [size_class(p) for p in (1, 2**17, 2**17 + 1, VGA, UXGA, HUGE)] == [0, 0, 1, 2, 4, 8]


def test_a_measured_class_is_priced_at_the_median_of_its_last_five_measurements():
    cost = CostBySize()
    cost.observe(VGA, 0.10)
    assert cost.estimate(VGA, unmeasured=9) == pytest.approx(0.10)
    cost.observe(VGA, 0.20)
    assert cost.estimate(VGA, unmeasured=9) == pytest.approx(0.15)
    for seconds in (0.12, 0.11, 0.13, 0.14):  # the first, 0.10, drops out
        cost.observe(VGA, seconds)
    assert cost.estimate(VGA, unmeasured=9) == pytest.approx(0.13)


def test_a_few_crafted_slow_images_do_not_price_their_class_out_for_good():
    # Seen: four 205 KB progressive JPEGs priced the 25-megapixel class at seconds, for good.
    cost = CostBySize()
    for seconds in (0.8, 0.9, 0.8):
        cost.observe(HUGE, seconds)
    cost.observe(HUGE, 12.0)
    cost.observe(HUGE, 11.0)
    assert cost.estimate(HUGE, unmeasured=9) == pytest.approx(0.9)  # a minority moves nothing
    cost.observe(HUGE, 12.5)
    cost.observe(HUGE, 13.0)
    assert cost.estimate(HUGE, unmeasured=9) == pytest.approx(12.0)  # a majority does...
    for seconds in (0.8, 0.9, 0.85):
        cost.observe(HUGE, seconds)
    assert cost.estimate(HUGE, unmeasured=9) == pytest.approx(0.9)  # ...until photos measured again outnumber it


def test_an_idle_server_admits_any_request_whatever_float_residue_its_queue_left():
    estimate = WorkEstimate(prepare_threads=2, decode_budget_pixels=25_000_000)
    first, second, third = estimate.queued(0.1), estimate.queued(0.2), estimate.queued(0.3)
    for admitted in (first, second, third):
        admitted.__enter__()
    assert estimate.wait_beyond(60.0, limit_s=5.0) > 0  # work queued: a long request waits its turn
    for admitted in (first, second, third):  # 0.1 + 0.2 + 0.3 - 0.1 - 0.2 - 0.3 is 5.6e-17 in floats
        admitted.__exit__(None, None, None)
    assert estimate.queued_s == 0.0 and estimate.admitted == 0
    assert estimate.wait_beyond(60.0, limit_s=5.0) == 0.0  # nothing admitted: it runs, however long


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
