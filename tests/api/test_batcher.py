"""The dynamic batcher alone, without a server: which faces run together, and that every request gets
its own answer back, also when others give up or the model fails. (Its behaviour behind a real
uvicorn server is tested in test_batching.py.)"""

import asyncio
import threading

import numpy as np
import pytest

from api.batching import DynamicBatcher
from fer.labels import EMOTIONS


def naming_each_face(pixels: np.ndarray, tta: str) -> np.ndarray:
    """A model stand-in whose answer for a face says which face it was: one-hot at the face's first
    pixel value (0-6), so an answer handed to the wrong request shows."""
    return np.eye(len(EMOTIONS), dtype=np.float32)[pixels[:, 0, 0]]


def run(scenario) -> object:
    """asyncio.run with a deadline: a batcher that never answers fails the test in 5 s, not hangs it."""
    return asyncio.run(asyncio.wait_for(scenario, 5))


def faces(*values: int) -> np.ndarray:
    return np.stack([np.full((48, 48), value, np.uint8) for value in values])


class RecordingModel:
    """naming_each_face, recording each forward pass's faces and TTA."""

    def __init__(self):
        self.passes: list[tuple[list[int], str]] = []

    def __call__(self, pixels: np.ndarray, tta: str) -> np.ndarray:
        self.passes.append((pixels[:, 0, 0].tolist(), tta))
        return naming_each_face(pixels, tta)


async def queued_then_started(batcher: DynamicBatcher, requests: list[tuple[np.ndarray, str]]) -> list[asyncio.Task]:
    """Every request on the queue before the collector starts, so the rounds do not depend on timing."""
    tasks = [asyncio.create_task(batcher.classify(pixels, tta)) for pixels, tta in requests]
    await asyncio.sleep(0)
    batcher.start()
    return tasks


def test_a_request_cancelled_while_its_batch_runs_leaves_every_other_answer_where_it_belongs():
    started, release = threading.Event(), threading.Event()
    model = RecordingModel()

    def run_batch(pixels, tta):
        started.set()
        release.wait(5)  # the batch is running when request 2 gives up
        return model(pixels, tta)

    async def scenario():
        batcher = DynamicBatcher(run_batch, max_batch_size=64, max_wait_s=0)
        # Request 1 has one face (0), request 2 two (1, 2), request 3 two (3, 4), request 4 one (5).
        asked = [[0], [1, 2], [3, 4], [5]]
        tasks = await queued_then_started(batcher, [(faces(*values), "none") for values in asked])
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        tasks[1].cancel()
        release.set()
        answers = [await task for i, task in enumerate(tasks) if i != 1]
        await batcher.stop()
        return asked, answers, tasks[1].cancelled()

    asked, answers, cancelled = run(scenario())
    assert model.passes == [([0, 1, 2, 3, 4, 5], "none")], "the requests did not share one batch: nothing tested"
    assert cancelled
    for values, answer in zip([asked[0], asked[2], asked[3]], answers):
        assert answer.argmax(1).tolist() == values, "a request got another request's answer"


def test_waiting_requests_join_a_pass_until_it_holds_max_batch_size_faces():
    model = RecordingModel()

    async def scenario():
        batcher = DynamicBatcher(model, max_batch_size=4, max_wait_s=0, on_batch=sizes.append)
        tasks = await queued_then_started(batcher, [(faces(i), "none") for i in range(6)])
        answers = await asyncio.gather(*tasks)
        await batcher.stop()
        return answers

    sizes = []
    answers = run(scenario())
    assert model.passes == [([0, 1, 2, 3], "none"), ([4, 5], "none")]
    assert sizes == [4, 2]  # on_batch: the faces of each forward pass, for the metrics
    assert [answer.argmax(1).tolist() for answer in answers] == [[i] for i in range(6)]


def test_a_request_is_never_split_across_passes_even_past_max_batch_size():
    model = RecordingModel()

    async def scenario():
        batcher = DynamicBatcher(model, max_batch_size=2, max_wait_s=0)
        tasks = await queued_then_started(batcher, [(faces(0), "none"), (faces(1, 2, 3), "none"), (faces(4), "none")])
        answers = await asyncio.gather(*tasks)
        await batcher.stop()
        return answers

    answers = run(scenario())
    # The first request leaves room (1 < 2), so the second joins whole: 4 faces; the third runs next.
    assert model.passes == [([0, 1, 2, 3], "none"), ([4], "none")]
    assert [answer.argmax(1).tolist() for answer in answers] == [[0], [1, 2, 3], [4]]


def test_requests_for_other_tta_modes_run_as_their_own_passes_of_the_round():
    model = RecordingModel()

    async def scenario():
        batcher = DynamicBatcher(model, max_batch_size=64, max_wait_s=0)
        requests = [(faces(0), "flip"), (faces(1), "none"), (faces(2, 3), "flip"), (faces(4), "tencrop")]
        tasks = await queued_then_started(batcher, requests)
        answers = await asyncio.gather(*tasks)
        await batcher.stop()
        return answers

    answers = run(scenario())
    assert model.passes == [([0, 2, 3], "flip"), ([1], "none"), ([4], "tencrop")]  # in order of first request
    assert [answer.argmax(1).tolist() for answer in answers] == [[0], [1], [2, 3], [4]]


def test_a_request_that_gave_up_before_its_round_costs_nothing():
    model = RecordingModel()

    async def scenario():
        batcher = DynamicBatcher(model, max_batch_size=64, max_wait_s=0)
        tasks = [asyncio.create_task(batcher.classify(faces(value), "none")) for value in (0, 1, 2)]
        await asyncio.sleep(0)
        tasks[1].cancel()
        await asyncio.sleep(0)
        batcher.start()
        answers = [await tasks[0], await tasks[2]]
        await batcher.stop()
        return answers

    answers = run(scenario())
    assert model.passes == [([0, 2], "none")]
    assert [answer.argmax(1).tolist() for answer in answers] == [[0], [2]]


def test_a_failing_model_fails_every_request_of_its_pass_and_the_next_pass_runs():
    calls = []

    def run_batch(pixels, tta):
        calls.append(len(pixels))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return naming_each_face(pixels, tta)

    async def scenario():
        batcher = DynamicBatcher(run_batch, max_batch_size=2, max_wait_s=0)
        tasks = await queued_then_started(batcher, [(faces(0), "none"), (faces(1), "none"), (faces(2), "none")])
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.stop()
        return results

    first, second, third = run(scenario())
    assert isinstance(first, RuntimeError) and str(first) == "out of memory" and second is first
    assert third.argmax(1).tolist() == [2] and calls == [2, 1]


def test_no_faces_need_no_pass_and_stopping_fails_what_is_still_queued():
    model = RecordingModel()

    async def scenario():
        batcher = DynamicBatcher(model, max_batch_size=64, max_wait_s=0)
        empty = await batcher.classify(np.zeros((0, 48, 48), np.uint8), "none")  # no collector needed
        queued = asyncio.create_task(batcher.classify(faces(1), "none"))
        await asyncio.sleep(0)  # on the queue; the collector never started
        await batcher.stop()
        with pytest.raises(RuntimeError, match="the server is shutting down"):
            await queued
        return empty

    empty = run(scenario())
    assert empty.shape == (0, len(EMOTIONS)) and empty.dtype == np.float32
    assert model.passes == []


def test_requests_arriving_within_max_wait_join_the_pass():
    model = RecordingModel()

    async def scenario():
        batcher = DynamicBatcher(model, max_batch_size=64, max_wait_s=0.5)
        batcher.start()
        first = asyncio.create_task(batcher.classify(faces(0), "none"))
        await asyncio.sleep(0.05)  # the collector has the first request and waits for company
        second = asyncio.create_task(batcher.classify(faces(1), "none"))
        answers = await asyncio.gather(first, second)
        await batcher.stop()
        return answers

    answers = run(scenario())
    assert model.passes == [([0, 1], "none")]
    assert [answer.argmax(1).tolist() for answer in answers] == [[0], [1]]


def test_a_full_pass_runs_at_once_without_waiting_for_company():
    model = RecordingModel()

    async def scenario():
        batcher = DynamicBatcher(model, max_batch_size=2, max_wait_s=3.0)
        clock = asyncio.get_running_loop().time
        started = clock()
        await asyncio.gather(*await queued_then_started(batcher, [(faces(0), "none"), (faces(1), "none")]))
        exactly_full = clock() - started
        started = clock()
        await batcher.classify(faces(2, 3, 4), "none")
        over_full = clock() - started
        await batcher.stop()
        return exactly_full, over_full

    exactly_full, over_full = run(scenario())
    # Two faces of at most two, then one request of three: neither waits its 3 s for more.
    assert exactly_full < 1.0 and over_full < 1.0, (exactly_full, over_full)
    assert model.passes == [([0, 1], "none"), ([2, 3, 4], "none")]


def test_stopping_waits_for_the_pass_that_is_running():
    started, finished = threading.Event(), threading.Event()

    def run_batch(pixels, tta):
        started.set()
        threading.Event().wait(0.3)
        finished.set()
        return naming_each_face(pixels, tta)

    async def scenario():
        batcher = DynamicBatcher(run_batch, max_batch_size=8, max_wait_s=0)
        task = (await queued_then_started(batcher, [(faces(0), "none")]))[0]
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        await batcher.stop()  # the server shuts down while a pass runs
        task.cancel()
        return finished.is_set()

    assert run(scenario()), "stop() returned while the model was still running in its thread"
