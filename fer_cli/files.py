"""`fer predict` over many inputs: images, folders (recursive) and videos (every frame), with
optional annotated copies of each.

    fer predict photos/ clip.mp4 selfie.jpg --json --annotate annotated/
"""

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from fer.drawing import draw_face
from fer.errors import FerError
from fer.images import IMAGE_SUFFIXES, WRITABLE_IMAGE_SUFFIXES
from fer.labels import emotion_shares
from fer.predictor import Predictor, as_rgb_or_gray
from fer.video import VIDEO_SUFFIXES, VideoFileReader, open_capture, open_video_writer

MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


def expand_inputs(paths: list[str]) -> Iterator[tuple[Path, Path]]:
    """(file, its path relative to the argument it came from) for every image and video; a folder is
    searched recursively in sorted order. A path that does not exist is yielded as is (and fails)."""
    for argument in paths:
        root = Path(argument)
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                if path.suffix.lower() in MEDIA_SUFFIXES:
                    yield path, path.relative_to(root)
        else:
            yield root, Path(root.name)


def predict_paths(
    predictor: Predictor,
    paths: list[str],
    detect: bool,
    as_json: bool,
    annotate_dir: str | None,
    print_error: Callable[[FerError], None],
) -> int:
    """Print results for every input; return how many inputs failed (each failure printed, not raised)."""
    failed = 0
    for argument in paths:
        inputs = list(expand_inputs([argument]))
        if not inputs:  # a folder without a single image or video: say so, never a silent success
            print_error(FerError(f"no images or videos in {argument} (looked for {', '.join(sorted(MEDIA_SUFFIXES))})"))
            failed += 1
        failed += _predict_inputs(predictor, inputs, detect, as_json, annotate_dir, print_error)
    return failed


def _predict_inputs(
    predictor: Predictor,
    inputs: list[tuple[Path, Path]],
    detect: bool,
    as_json: bool,
    annotate_dir: str | None,
    print_error: Callable[[FerError], None],
) -> int:
    failed = 0
    for path, relative in inputs:
        target = Path(annotate_dir) / relative if annotate_dir else None
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                _predict_video(predictor, path, detect, as_json, target)
            else:
                _predict_image(predictor, path, detect, as_json, target)
        except FerError as error:
            print_error(error)
            failed += 1
    return failed


def _predict_image(predictor: Predictor, path: Path, detect: bool, as_json: bool, target: Path | None) -> None:
    image = as_rgb_or_gray(str(path))  # read once: classified, then drawn on
    faces = predictor.predict_image(image, detect)
    if target is not None:
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
        for face in faces:
            draw_face(bgr, face.box, face.probabilities)
        _write_image(target, bgr)
    if as_json:
        print(json.dumps({"path": str(path), "faces": [face.to_dict() for face in faces]}))
        return
    print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
    for face in faces:
        others = sorted(face.scores.items(), key=lambda item: -item[1])[1:3]
        also = ", ".join(f"{emotion} {score:.2f}" for emotion, score in others)
        whole = "" if face.detected else "  [no face found: the whole image, a face crop by its shape]"
        print(f"  box {list(face.box)}  {face.emotion} {face.score:.2f}  ({also}){whole}")


def _predict_video(predictor: Predictor, path: Path, detect: bool, as_json: bool, target: Path | None) -> None:
    """One JSON line per frame (--json), or a summary; every frame is read, none dropped."""
    reader = VideoFileReader(open_capture(str(path)))
    writer = None
    frames = faces_total = 0
    emotions: Counter[str] = Counter()
    try:
        for frame in reader:
            # Frames are scenes: one without a face found has none (no whole-frame answer).
            faces = predictor.predict_image(frame.image, detect, color_order="BGR", face_crop_fallback=False)
            frames += 1
            faces_total += len(faces)
            emotions.update(face.emotion for face in faces)
            if target is not None:
                writer = writer or open_video_writer(target.with_suffix(".mp4"), reader.fps, frame.image)
                annotated = frame.image.copy()
                for face in faces:
                    draw_face(annotated, face.box, face.probabilities)
                writer.write(annotated)
            if as_json:
                record = {"path": str(path), "frame": frame.index, "timestamp": round(frame.timestamp, 4)}
                print(json.dumps({**record, "faces": [face.to_dict() for face in faces]}))
    finally:
        reader.close()
        if writer is not None:
            writer.release()
    if not as_json:
        print(f"{path}: {frames} frames, {faces_total} faces; emotions: {emotion_shares(emotions)}")


def _write_image(target: Path, bgr: np.ndarray) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() not in WRITABLE_IMAGE_SUFFIXES:
        target = target.with_suffix(".png")
    if not cv2.imwrite(os.fspath(target), bgr):
        raise FerError(f"cannot write {target}")
