"""Frame sources: a camera index, a video file or a stream URL, as OpenCV opens them.

Files are read frame by frame and none is dropped. Live sources (cameras, streams) are read by a
capture thread that keeps only the newest frame: when inference is slower than the camera, stale
frames are dropped instead of piling up, so what is shown is never behind what is in front of it.
"""

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer.errors import FerError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
DEFAULT_FPS = 30.0


@dataclass
class Frame:
    index: int  # position in the source: counts dropped frames too, for live sources
    timestamp: float  # seconds: from the file's frame rate, or since the live source opened
    image: np.ndarray  # (H, W, 3) uint8, BGR as OpenCV decodes it


def parse_source(text: str | int) -> int | str:
    """'0' -> camera 0; anything else is a file path or a URL."""
    return int(text) if isinstance(text, int) or str(text).isdigit() else str(text)


def open_capture(source: int | str) -> cv2.VideoCapture:
    """An opened cv2.VideoCapture, or FerError with a line the user can act on."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    previous = logging.getLogLevel() if logging else None
    if logging:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)  # OpenCV's warnings for a missing camera repeat ours
    try:
        if isinstance(source, int):
            capture = cv2.VideoCapture(source)
            if not capture.isOpened():
                raise FerError(f"no camera at index {source}; pass --source FILE or URL")
            return capture
        if "://" in source:
            capture = cv2.VideoCapture(source)
            if not capture.isOpened():
                raise FerError(f"cannot open the stream {source}")
            return capture
        path = Path(source)
        if not path.is_file():
            raise FerError(f"no such video file: {source}")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():  # FFmpeg found no video stream in the file
            raise FerError(f"cannot read {source} as a video")
        return capture
    finally:
        if logging:
            logging.setLogLevel(previous)


class VideoFileReader:
    """Every frame of a file, in order."""

    live = False

    def __init__(self, capture: cv2.VideoCapture):
        self.capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 1 <= fps <= 240 else DEFAULT_FPS

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, image = self.capture.read()
            if not ok:
                return
            yield Frame(index, index / self.fps, image)
            index += 1

    def close(self) -> None:
        self.capture.release()


class LatestFrameReader:
    """A capture thread reads as fast as the source delivers and keeps only the newest frame; the
    consumer always gets the newest frame it has not seen yet. `dropped` counts frames never consumed.
    `capture` is anything with read() -> (ok, image) and release(), such as cv2.VideoCapture."""

    live = True

    def __init__(self, capture: cv2.VideoCapture, fps: float | None = None) -> None:
        self.capture = capture
        fps = fps or (capture.get(cv2.CAP_PROP_FPS) if hasattr(capture, "get") else 0)
        self.fps = fps if fps and 1 <= fps <= 240 else DEFAULT_FPS
        self.dropped = 0
        self._latest: Frame | None = None
        self._consumed_index = -1
        self._ended = False
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._capture_forever, name="fer-capture", daemon=True)
        self._thread.start()

    def _capture_forever(self) -> None:
        index = 0
        while not self._stop.is_set():
            ok, image = self.capture.read()
            with self._condition:
                if not ok:
                    self._ended = True
                    self._condition.notify_all()
                    return
                if self._latest is not None and self._latest.index > self._consumed_index:
                    self.dropped += 1  # replaced before anyone looked at it
                self._latest = Frame(index, time.monotonic() - self._started, image)
                self._condition.notify_all()
            index += 1

    def read(self, timeout: float = 10.0) -> Frame | None:
        """The newest unseen frame; None when the source has ended (or sent nothing for `timeout` s)."""
        with self._condition:
            fresh = self._condition.wait_for(
                lambda: self._ended or (self._latest is not None and self._latest.index > self._consumed_index),
                timeout,
            )
            if not fresh or self._latest is None or self._latest.index <= self._consumed_index:
                return None
            self._consumed_index = self._latest.index
            return self._latest

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.capture.release()


def open_reader(source: int | str) -> VideoFileReader | LatestFrameReader:
    capture = open_capture(source)
    if isinstance(source, int) or "://" in source:
        return LatestFrameReader(capture)
    return VideoFileReader(capture)


def open_video_writer(path: str | os.PathLike, fps: float, first_frame: np.ndarray) -> cv2.VideoWriter:
    """An MP4 writer sized for `first_frame` (BGR), its folder created; FerError if it cannot open."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    height, width = first_frame.shape[:2]
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise FerError(f"cannot write the video {path}")
    return writer


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
