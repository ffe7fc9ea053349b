"""The live demo: every face in front of the camera (or in a video, or a stream) with its emotion.

    python scripts/webcam_demo.py                        # camera 0, shipped weights, a window
    fer webcam --source video.mp4 --headless --output out.mp4 --log frames.jsonl
    fer webcam --source rtsp://camera/stream --api http://127.0.0.1:8000 --api-key KEY

Per frame: detect faces, classify them in one batch, track each face by box overlap and smooth its
probabilities, draw the overlay. Keys: q or Esc quits, space pauses, s saves a snapshot.
"""

import argparse
import json
import sys
import time
from collections import Counter, deque
from pathlib import Path

import cv2
import numpy as np

from fer.device import DEVICE_CHOICES
from fer.errors import FerError, OneLineArgumentParser
from fer.labels import EMOTIONS, emotion_shares
from fer.live.overlay import draw_face, draw_status
from fer.live.sources import open_reader, open_video_writer, parse_source
from fer.live.tracking import FaceTracker
from fer.predictor import BACKENDS
from fer.tta import TTA_MODES

TITLE = "fer: facial expression recognition"
HELP_LINE = "q/Esc quit   space pause   s snapshot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="0", help="camera index (default 0), video file, or stream URL")
    parser.add_argument("--api", metavar="URL", help="send frames to a running `fer serve` instead")
    parser.add_argument("--api-key", help="the server's FER_API_KEY, if it has one")
    parser.add_argument("--weights", help="weights for in-process inference; default: shipped weights")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--tta", choices=TTA_MODES, default="none", help="in-process TTA (default none: live speed)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="in-process CPU engine")
    parser.add_argument(
        "--smooth", type=float, default=0.6, metavar="ALPHA", help="weight of the past in [0, 1); 0: no smoothing"
    )
    parser.add_argument("--headless", action="store_true", help="no window")
    parser.add_argument("--output", metavar="FILE.mp4", help="write the annotated video")
    parser.add_argument("--log", metavar="FILE.jsonl", help="one JSON object per frame")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    parser.add_argument("--snapshot-dir", default=".", help="where `s` saves snapshots (default: here)")


def make_classifier(args):
    from fer.live.classifiers import ApiClassifier, LocalClassifier

    if args.api:
        return ApiClassifier(args.api, args.api_key)
    from fer.predictor import Predictor

    return LocalClassifier(Predictor.load(args.weights, device=args.device, tta=args.tta, backend=args.backend))


class FpsMeter:
    """Frames per second over the last `window` frames."""

    def __init__(self, window: int = 30):
        self.times: deque[float] = deque(maxlen=window)

    def tick(self) -> float:
        self.times.append(time.perf_counter())
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def run(args) -> int:
    if not 0 <= args.smooth < 1:
        raise FerError("--smooth must be at least 0 and below 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise FerError("--max-frames must be 1 or more")
    classifier = make_classifier(args)  # first: an unreachable API fails before a camera opens
    reader = open_reader(parse_source(args.source))
    window = None
    writer = None
    log = open(args.log, "w") if args.log else None  # noqa: SIM115 (closed in finally)
    tracker = FaceTracker(args.smooth)
    fps_meter = FpsMeter()
    frames = faces = 0
    emotion_counts: Counter[str] = Counter()
    started = time.perf_counter()
    try:
        if not args.headless:
            from fer.live.windows import open_window

            window = open_window(TITLE)
        for frame in reader:
            boxes, probabilities = classifier.classify(frame.image)
            tracked = tracker.update(boxes, probabilities)
            annotated = frame.image.copy()
            for face in tracked:
                draw_face(annotated, face.box, face.smoothed)
            draw_status(annotated, fps_meter.tick(), classifier.device, None if args.headless else HELP_LINE)

            if args.output:
                writer = writer or open_video_writer(args.output, reader.fps, annotated)
                writer.write(annotated)
            if log:
                log.write(json.dumps(_log_entry(frame, tracked)) + "\n")
            frames += 1
            faces += len(tracked)
            emotion_counts.update(EMOTIONS[int(np.argmax(face.smoothed))] for face in tracked)

            if window is not None and _show_and_handle_keys(window, annotated, args.snapshot_dir) == "quit":
                break
            if args.max_frames and frames >= args.max_frames:
                break
    finally:
        reader.close()
        if writer is not None:
            writer.release()
        if log:
            log.close()
        if window is not None:
            window.close()
    _print_summary(frames, faces, time.perf_counter() - started, emotion_counts, reader, args)
    return 0


def _show_and_handle_keys(window, annotated: np.ndarray, snapshot_dir: str) -> str | None:
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


def _log_entry(frame, tracked) -> dict:
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


def _print_summary(frames, faces, seconds, emotion_counts, reader, args) -> None:
    fps = frames / seconds if seconds > 0 else 0.0
    print(
        f"frames {frames}, faces {faces}, mean {fps:.1f} FPS" + (f", dropped {reader.dropped}" if reader.live else "")
    )
    if emotion_counts:
        print(f"emotions over the run: {emotion_shares(emotion_counts)}")
    for path, what in ((args.output, "annotated video"), (args.log, "frame log")):
        if path:
            print(f"{what} written to {path}")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="webcam_demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except FerError as error:
        if args.debug:
            raise
        print(f"webcam_demo: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
