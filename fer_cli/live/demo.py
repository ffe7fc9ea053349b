"""The live demo: every face in front of the camera (or in a video, or a stream) with its emotion.

    python scripts/webcam_demo.py                        # camera 0, shipped weights, a window
    fer webcam --source video.mp4 --headless --output out.mp4 --log frames.jsonl
    fer webcam --source rtsp://camera/stream --api http://127.0.0.1:8000 --api-key KEY

Per frame: detect faces, classify them in one batch, track each face by box overlap and smooth its
probabilities, draw the overlay. Keys: q or Esc quits, space pauses, s saves a snapshot.
"""

import json
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fer.drawing import draw_face, draw_status
from fer.errors import FerError
from fer.labels import EMOTIONS, emotion_shares
from fer.options import DEFAULT_DETECTOR
from fer.video import Frame, LatestFrameReader, VideoFileReader, open_reader, open_video_writer, parse_source
from fer_cli.live.tracking import FaceTracker, TrackedFace

if TYPE_CHECKING:  # only for annotations: the classifiers and windows are imported when used
    from fer_cli.live.classifiers import ApiClassifier, LocalClassifier
    from fer_cli.live.windows import OpenCvWindow, TkWindow

TITLE = "fer: facial expression recognition"
HELP_LINE = "q/Esc quit   space pause   s snapshot"


@dataclass(frozen=True)
class DemoSettings:
    """What `fer webcam` (and scripts/webcam_demo.py) was asked for; see its --help."""

    source: str = "0"  # camera index, video file or stream URL
    api: str | None = None  # a running `fer serve` to send frames to, instead of a local model
    api_key: str | None = None
    weights: str | None = None  # for the local model; default: shipped weights
    device: str = "auto"
    tta: str = "none"  # live speed
    backend: str = "auto"
    detector: str = DEFAULT_DETECTOR  # one of fer.options.DETECTORS; the local model's, not a server's (--api)
    smooth: float = 0.6  # weight of the past in [0, 1)
    headless: bool = False
    output: str | None = None  # annotated video
    log: str | None = None  # one JSON object per frame
    max_frames: int | None = None
    snapshot_dir: str = "."


def make_classifier(settings: DemoSettings) -> "LocalClassifier | ApiClassifier":  # imported when used
    from fer_cli.live.classifiers import ApiClassifier, LocalClassifier

    if settings.api:
        return ApiClassifier(settings.api, settings.api_key)
    from fer.predictor import Predictor

    return LocalClassifier(
        Predictor.load(
            settings.weights,
            device=settings.device,
            tta=settings.tta,
            backend=settings.backend,
            detector=settings.detector,
        )
    )


class FpsMeter:
    """Frames per second over the last `window` frames."""

    def __init__(self, window: int = 30):
        self.times: deque[float] = deque(maxlen=window)

    def tick(self) -> float:
        self.times.append(time.perf_counter())
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def run_demo(settings: DemoSettings) -> int:
    if not 0 <= settings.smooth < 1:
        raise FerError("--smooth must be at least 0 and below 1")
    if settings.max_frames is not None and settings.max_frames < 1:
        raise FerError("--max-frames must be 1 or more")
    classifier = make_classifier(settings)  # first: an unreachable API fails before a camera opens
    reader = open_reader(parse_source(settings.source))
    window = None
    writer = None
    log = open(settings.log, "w") if settings.log else None  # noqa: SIM115 (closed in finally)
    tracker = FaceTracker(settings.smooth)
    fps_meter = FpsMeter()
    frames = faces = 0
    emotion_counts: Counter[str] = Counter()
    started = time.perf_counter()
    try:
        if not settings.headless:
            from fer_cli.live.windows import open_window

            window = open_window(TITLE)
        for frame in reader:
            boxes, probabilities = classifier.classify(frame.image)
            tracked = tracker.update(boxes, probabilities)
            annotated = frame.image.copy()
            for face in tracked:
                draw_face(annotated, face.box, face.smoothed)
            draw_status(annotated, fps_meter.tick(), classifier.device, None if settings.headless else HELP_LINE)

            if settings.output:
                writer = writer or open_video_writer(settings.output, reader.fps, annotated)
                writer.write(annotated)
            if log:
                log.write(json.dumps(_log_entry(frame, tracked)) + "\n")
            frames += 1
            faces += len(tracked)
            emotion_counts.update(EMOTIONS[int(np.argmax(face.smoothed))] for face in tracked)

            if window is not None and _show_and_handle_keys(window, annotated, settings.snapshot_dir) == "quit":
                break
            if settings.max_frames and frames >= settings.max_frames:
                break
    finally:
        reader.close()
        if writer is not None:
            writer.release()
        if log:
            log.close()
        if window is not None:
            window.close()
    _print_summary(frames, faces, time.perf_counter() - started, emotion_counts, reader, settings)
    return 0


def _show_and_handle_keys(window: "OpenCvWindow | TkWindow", annotated: np.ndarray, snapshot_dir: str) -> str | None:
    window.show(annotated)
    paused = False
    while True:
        key = window.poll_key(30 if paused else 1)
        if key in ("q", "\x1b"):
            return "quit"
        if key == "s":
            path = Path(snapshot_dir) / time.strftime("fer-snapshot-%Y%m%d-%H%M%S.png")
            cv2.imwrite(str(path), annotated)
            print(f"snapshot saved to {path}")
        elif key == " ":
            paused = not paused
        if not paused:
            return None


def _log_entry(frame: Frame, tracked: list[TrackedFace]) -> dict:
    return {
        "frame": frame.index,
        "timestamp": round(frame.timestamp, 4),
        "faces": [
            {
                "track": face.track_id,
                "box": [int(v) for v in face.box],
                "emotion": EMOTIONS[int(np.argmax(face.probabilities))],
                "score": float(np.max(face.probabilities)),
                "smoothed_emotion": EMOTIONS[int(np.argmax(face.smoothed))],
                "smoothed_scores": {e: round(float(p), 5) for e, p in zip(EMOTIONS, face.smoothed)},
            }
            for face in tracked
        ],
    }


def _print_summary(
    frames: int,
    faces: int,
    seconds: float,
    emotion_counts: Counter[str],
    reader: VideoFileReader | LatestFrameReader,
    settings: DemoSettings,
) -> None:
    fps = frames / seconds if seconds > 0 else 0.0
    print(
        f"frames {frames}, faces {faces}, mean {fps:.1f} FPS" + (f", dropped {reader.dropped}" if reader.live else "")
    )
    if emotion_counts:
        print(f"emotions over the run: {emotion_shares(emotion_counts)}")
    for path, what in ((settings.output, "annotated video"), (settings.log, "frame log")):
        if path:
            print(f"{what} written to {path}")
