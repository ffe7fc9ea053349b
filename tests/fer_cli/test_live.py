"""Tracking, smoothing and the frame-dropping reader, on their own."""

import threading
import time

import numpy as np
import pytest

from fer.detection.base import box_iou
from fer.video import LatestFrameReader
from fer_cli.live.tracking import FaceTracker


def _one_hot(index: int) -> np.ndarray:
    row = np.zeros(7)
    row[index] = 1.0
    return row


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_a_moving_face_keeps_its_track_and_a_new_face_gets_another():
    tracker = FaceTracker(smooth=0.5)
    first = tracker.update([(100, 100, 80, 80)], np.array([_one_hot(3)]))
    moved = tracker.update([(110, 104, 80, 80), (400, 100, 80, 80)], np.array([_one_hot(3), _one_hot(0)]))
    assert moved[0].track_id == first[0].track_id
    assert moved[1].track_id != first[0].track_id


def test_smoothing_is_an_exponential_moving_average():
    tracker = FaceTracker(smooth=0.75)
    tracker.update([(0, 0, 50, 50)], np.array([_one_hot(3)]))
    (face,) = tracker.update([(2, 0, 50, 50)], np.array([_one_hot(5)]))
    assert face.smoothed[3] == pytest.approx(0.75) and face.smoothed[5] == pytest.approx(0.25)
    assert face.probabilities[5] == 1.0  # the frame's own prediction is kept too


def test_smooth_zero_turns_smoothing_off():
    tracker = FaceTracker(smooth=0.0)
    tracker.update([(0, 0, 50, 50)], np.array([_one_hot(3)]))
    (face,) = tracker.update([(0, 0, 50, 50)], np.array([_one_hot(5)]))
    assert face.smoothed.tolist() == _one_hot(5).tolist()


def test_a_track_survives_a_few_missed_frames_then_ends():
    tracker = FaceTracker(smooth=0.5, max_missed=2)
    (first,) = tracker.update([(0, 0, 50, 50)], np.array([_one_hot(3)]))
    tracker.update([], np.zeros((0, 7)))
    (back,) = tracker.update([(0, 0, 50, 50)], np.array([_one_hot(3)]))
    assert back.track_id == first.track_id
    for _ in range(3):
        tracker.update([], np.zeros((0, 7)))
    (new,) = tracker.update([(0, 0, 50, 50)], np.array([_one_hot(3)]))
    assert new.track_id != first.track_id


class FakeCamera:
    """Stands in for a camera, which no test machine has: delivers numbered frames at `fps` in real
    time, like cv2.VideoCapture.read() on a device, for `seconds`."""

    def __init__(self, fps: float, seconds: float):
        self.interval, self.seconds = 1 / fps, seconds
        self.produced = 0
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def read(self):
        time.sleep(self.interval)
        if time.monotonic() - self.started > self.seconds:
            return False, None
        with self.lock:
            frame = np.full((4, 4, 3), self.produced % 256, dtype=np.uint8)
            self.produced += 1
        return True, frame

    def release(self):
        pass


def test_live_reader_drops_stale_frames_when_inference_is_slow():
    camera = FakeCamera(fps=100, seconds=3)
    reader = LatestFrameReader(camera)
    consumed = []
    try:
        for _ in range(10):
            frame = reader.read(timeout=5)
            assert frame is not None
            # The frame handed over is the newest: at most a frame or two behind the camera.
            assert camera.produced - frame.index <= 3
            consumed.append(frame.index)
            time.sleep(0.05)  # a model five times slower than the camera
    finally:
        reader.close()
    assert consumed == sorted(set(consumed))
    assert max(np.diff(consumed)) > 1  # frames were skipped, not queued
    assert reader.dropped > 0


def test_live_reader_ends_when_the_source_ends():
    reader = LatestFrameReader(FakeCamera(fps=100, seconds=0.2))
    frames = list(reader)
    reader.close()
    assert 0 < len(frames) and frames[-1].index >= frames[0].index
