"""The decode budget: pixels being decoded at once stay within it, whatever requests do (issue 15).

Driven on a real event loop with real worker threads, as the service drives it."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from api.budgets import DecodeBudget, UploadBudget


def run(coroutine):
    return asyncio.run(coroutine)


def test_work_over_the_budget_waits_and_the_pixels_held_never_exceed_it():
    budget = DecodeBudget(max_pixels=100)
    threads = ThreadPoolExecutor(8)
    held_seen, lock = [], threading.Lock()

    def work():
        with lock:
            held_seen.append(budget.held)
        time.sleep(0.05)
        return "done"

    async def main():
        return await asyncio.gather(*(budget.run_in_thread(40, work, threads) for _ in range(6)))

    assert run(main()) == ["done"] * 6
    assert max(held_seen) <= 100  # at most two 40-pixel images at once, though 8 threads were free
    assert budget.free == 100


def test_an_image_larger_than_the_whole_budget_runs_alone():
    budget = DecodeBudget(max_pixels=100)

    async def main():
        return await budget.run_in_thread(10_000, lambda: budget.held, ThreadPoolExecutor(2))

    assert run(main()) == 100
    assert budget.free == 100


def test_waiting_is_first_come_first_served():
    budget = DecodeBudget(max_pixels=100)
    threads = ThreadPoolExecutor(8)
    order = []

    async def main():
        def record(name):
            order.append(name)
            time.sleep(0.05)

        first = asyncio.create_task(budget.run_in_thread(60, lambda: record("first"), threads))
        await asyncio.sleep(0.01)
        big = asyncio.create_task(budget.run_in_thread(90, lambda: record("big"), threads))
        await asyncio.sleep(0.01)
        small = asyncio.create_task(budget.run_in_thread(30, lambda: record("small"), threads))
        await asyncio.gather(first, big, small)

    run(main())
    assert order == ["first", "big", "small"]  # the small one fitted beside "first", but waited its turn


def test_a_request_cancelled_while_waiting_takes_nothing_and_unblocks_the_queue():
    budget = DecodeBudget(max_pixels=100)
    threads = ThreadPoolExecutor(8)

    async def main():
        holder = asyncio.create_task(budget.run_in_thread(60, lambda: time.sleep(0.2), threads))
        await asyncio.sleep(0.02)
        blocked = asyncio.create_task(budget.run_in_thread(90, lambda: None, threads))
        await asyncio.sleep(0.02)
        behind = asyncio.create_task(budget.run_in_thread(30, lambda: "ran", threads))
        await asyncio.sleep(0.02)
        blocked.cancel()  # its deadline passed
        result = await asyncio.wait_for(behind, 1)  # runs beside the holder now
        await holder
        return result

    assert run(main()) == "ran"
    assert budget.free == 100


def test_pixels_of_a_thread_still_running_after_its_request_gave_up_stay_taken_until_it_ends():
    budget = DecodeBudget(max_pixels=100)
    release = threading.Event()

    async def main():
        task = asyncio.create_task(budget.run_in_thread(80, release.wait, ThreadPoolExecutor(2)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        still_held = budget.held  # the decoding thread is still working on its 80 pixels
        release.set()
        for _ in range(100):
            if budget.held == 0:
                break
            await asyncio.sleep(0.01)
        return still_held

    assert run(main()) == 80
    assert budget.free == 100


def test_a_running_thread_is_told_when_its_request_gives_up_and_stops_early():
    budget = DecodeBudget(max_pixels=100)
    abandoned = threading.Event()
    steps = []

    def work():  # a decode that checks between blocks, as Pillow reads between them
        for step in range(500):
            if abandoned.is_set():
                return
            steps.append(step)
            time.sleep(0.01)

    async def main():
        task = asyncio.create_task(budget.run_in_thread(80, work, ThreadPoolExecutor(2), abandoned))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if budget.held == 0:
                break
            await asyncio.sleep(0.01)

    run(main())
    assert abandoned.is_set() and 0 < len(steps) < 100
    assert budget.free == 100


def test_work_that_ends_normally_or_never_starts_is_not_told_it_was_abandoned():
    threads = ThreadPoolExecutor(1)

    async def main():
        budget, finished, never_ran = DecodeBudget(100), threading.Event(), threading.Event()
        await budget.run_in_thread(10, lambda: None, threads, finished)
        busy = asyncio.create_task(budget.run_in_thread(10, lambda: time.sleep(0.2), threads))
        await asyncio.sleep(0.02)
        queued = asyncio.create_task(budget.run_in_thread(10, lambda: None, threads, never_ran))
        await asyncio.sleep(0.02)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await busy
        return finished.is_set(), never_ran.is_set()

    assert run(main()) == (False, False)


def test_a_request_cancelled_before_its_thread_started_gives_its_pixels_back():
    budget = DecodeBudget(max_pixels=100)
    threads = ThreadPoolExecutor(1)
    ran = []

    async def main():
        busy = asyncio.create_task(budget.run_in_thread(10, lambda: time.sleep(0.2), threads))
        await asyncio.sleep(0.02)
        queued = asyncio.create_task(budget.run_in_thread(50, lambda: ran.append(1), threads))
        await asyncio.sleep(0.02)  # it has its pixels and waits for the one thread
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await busy
        await asyncio.sleep(0.05)

    run(main())
    assert ran == [] and budget.free == 100


def test_the_upload_budget_refuses_what_does_not_fit_and_takes_nothing_then():
    budget = UploadBudget(max_bytes=100)
    assert budget.take(70)
    assert not budget.take(40)
    assert budget.held == 70
    budget.give_back(70)
    assert budget.take(100)
