"""`fer webcam` frames/s on a 640x480 video of one face (issue 11's goal: at least 30 FPS on 2 cores),
per face detector: the demo as a user runs it, headless, in its own process.

    python bench/webcam.py                                  # 300 frames, 3 runs per detector
    python bench/webcam.py --detectors mtcnn --frames 600 --output

The video is generated: the astronaut photograph that scikit-image ships (NASA, public domain),
scaled to 400x400, sliding back and forth across a grey 640x480 frame (its face about 75 px wide).
Each run reads the video frame by frame (none dropped), detects, classifies (TTA none, the demo's
default), tracks, smooths and draws every frame; `--output` also encodes the annotated video. The
figure is the demo's own "mean FPS" over the whole run (start-up excluded, the first frame's warm-up
included), median of --runs runs.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fer.device import describe_device
from fer.options import DETECTORS


def write_video(path: Path, frames: int) -> Path:
    from skimage import data

    face = np.asarray(Image.fromarray(data.astronaut()).resize((400, 400)))[:, :, ::-1]  # RGB -> BGR
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for index in range(frames):
        step = index % 120
        left = 4 * (step if step < 60 else 120 - step)  # 0 .. 240 and back
        frame = np.full((480, 640, 3), 90, dtype=np.uint8)
        frame[40:440, left : left + 400] = face
        writer.write(frame)
    writer.release()
    return path


def run_demo(video: Path, detector: str, output: Path | None) -> tuple[float, int]:
    command = [sys.executable, "-m", "fer_cli", "webcam", "--source", str(video), "--headless", "--detector", detector]
    if output:
        command += ["--output", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"frames (\d+), faces (\d+), mean ([0-9.]+) FPS", result.stdout)
    if not found:
        raise SystemExit(f"unexpected output from fer webcam: {result.stdout}{result.stderr}")
    return float(found.group(3)), int(found.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--output", action="store_true", help="also write the annotated video, as a recording user would"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args()

    report = {"machine": describe_device("cpu"), "frames": args.frames, "output": args.output, "detectors": {}}
    print(f"{args.frames} frames of 640x480, one face; {report['machine']}")
    print(f"{'detector':<12}{'median FPS':>12}{'runs':>28}{'faces':>8}")
    with tempfile.TemporaryDirectory() as folder:
        video = write_video(Path(folder) / "face.mp4", args.frames)
        for detector in args.detectors:
            output = Path(folder) / "out.mp4" if args.output else None
            runs = [run_demo(video, detector, output) for _ in range(args.runs)]
            fps = [rate for rate, _ in runs]
            report["detectors"][detector] = {"median_fps": statistics.median(fps), "fps": fps, "faces": runs[0][1]}
            print(
                f"{detector:<12}{statistics.median(fps):>12.1f}{', '.join(f'{v:.1f}' for v in fps):>28}{runs[0][1]:>8}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
