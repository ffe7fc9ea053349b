"""Face detection gathered across requests (api/gathering.py): real threads, and a real uvicorn server
with FER_GATHER_DETECTION=on answering photos as it does without gathering."""

import asyncio
import threading
import time

import cv2
import httpx
import numpy as np
import pytest

from api.gathering import GatheredCalls
from api.service import gathers_detection
from tests.api.conftest import encode, metric_value, post_all


def call_from_threads(gathered: GatheredCalls, items: list) -> list:
    """gathered(item) for every item, each from a thread of its own, all started together; the results
    (or the exceptions raised) in order."""
    outcomes: list = [None] * len(items)
    start = threading.Barrier(len(items))

    def call(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = gathered(items[index])
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(items))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a caller never got its answer"
    return outcomes


def test_each_thread_gets_its_own_result_from_runs_that_hold_several_threads_items():
    batches = []

    def doubled(items):
        batches.append(list(items))
        time.sleep(0.05)  # long enough for the other threads to queue up behind this run
        return [2 * item for item in items]

    gathered = GatheredCalls(doubled, max_items=4, on_batch=lambda items: None)
    assert call_from_threads(gathered, list(range(24))) == [2 * item for item in range(24)]
    assert sorted(item for batch in batches for item in batch) == list(range(24))  # each item run once
    assert max(map(len, batches)) == 4 and len(batches) < 24  # gathered, never past max_items


def test_a_failed_run_fails_only_its_own_callers_and_the_next_run_works():
    def refuses_poison(items):
        time.sleep(0.02)
        if "poison" in items:
            raise ValueError("a poisoned photo")
        return [item.upper() for item in items]

    sizes = []
    gathered = GatheredCalls(refuses_poison, max_items=1, on_batch=sizes.append)
    outcomes = call_from_threads(gathered, ["a", "poison", "b"])
    assert outcomes[0] == "A" and outcomes[2] == "B"
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "a poisoned photo"
    assert sizes == [1, 1, 1]
    assert gathered("c") == "C"


def test_a_run_that_answers_the_wrong_number_of_items_is_an_error_for_its_callers():
    gathered = GatheredCalls(lambda items: [], max_items=8)
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        gathered("photo")
    with pytest.raises(ValueError, match="at least 1"):
        GatheredCalls(lambda items: items, max_items=0)


def test_auto_gathers_only_where_the_detector_runs_on_a_gpu(small_predictor):
    assert small_predictor.detector.device == "cpu"
    assert gathers_detection("auto", small_predictor) is False
    assert gathers_detection("on", small_predictor) is True
    assert gathers_detection("off", small_predictor) is False


def test_a_server_gathering_detection_answers_photos_as_one_that_does_not(live_server, astronaut):
    # On this CPU "auto" would not gather; "on" runs the GPU's path here, with ONNX Runtime's networks.
    photos = [astronaut, cv2.resize(astronaut, (640, 480)), np.zeros((240, 320, 3), np.uint8)] * 4
    payloads = [encode(photo) for photo in photos]
    gathering, alone = live_server(gather_detection="on"), live_server(gather_detection="off")
    gathered_before = metric_value(httpx.get(f"{gathering}/metrics").text, "fer_detection_batch_size_images_sum")
    with_gathering = asyncio.run(post_all(gathering, payloads, query="detect=true"))
    without = asyncio.run(post_all(alone, payloads, query="detect=true"))

    assert [r.status_code for r in with_gathering] == [200] * len(photos)
    assert [len(r.json()["faces"]) for r in with_gathering] == [1, 1, 0] * 4
    for gathered, single in zip(with_gathering, without):
        assert gathered.json()["faces"] == single.json()["faces"]
    metrics = httpx.get(f"{gathering}/metrics").text
    assert metric_value(metrics, "fer_detection_batch_size_images_sum") - gathered_before == len(photos)
    assert metric_value(httpx.get(f"{alone}/metrics").text, "fer_detection_batch_size_images_count") == 0
