"""Face detection: OpenCV's Haar frontal-face cascade by default (it ships inside opencv-python 4.x,
so nothing is downloaded), or OpenCV's YuNet CNN detector when given its .onnx model file.

Detectors take an RGB (H, W, 3) or grayscale (H, W) uint8 image and return boxes (x, y, w, h) in
pixels, largest first.
"""

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from fer.errors import FerError

Box = tuple[int, int, int, int]


class FaceDetector(Protocol):
    """What the Predictor needs of a detector; pass your own to Predictor.load(detector=...)."""

    uses_color: bool  # False: it is given the grayscale frame the faces are cropped from

    def detect(self, image: np.ndarray) -> list[Box]:
        """(H, W) grayscale or (H, W, 3) RGB uint8 -> (x, y, w, h) boxes in pixels, largest first."""
        ...


def _gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _largest_first(boxes: Iterable[Sequence[float]]) -> list[Box]:
    boxes = [tuple(int(v) for v in box) for box in boxes]
    return sorted(boxes, key=lambda box: box[2] * box[3], reverse=True)


class HaarFaceDetector:
    """Viola-Jones cascade: fast on a CPU, frontal faces only. Safe to share between threads: each
    thread gets its own cv2.CascadeClassifier, whose detectMultiScale keeps scratch state and must not
    run concurrently on one instance."""

    uses_color = False  # works on grayscale: the Predictor hands it the frame it crops faces from

    def __init__(
        self,
        cascade_path: str | Path | None = None,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        max_side: int | None = 1280,
        equalize: bool = False,
    ):
        """`max_side`: larger images are scaled down to this longest side for detection (boxes are
        given in the original's pixels). A 12-megapixel photo then costs 0.21 s instead of 1.0 s on
        a 2-core CPU; faces under about 24 px at that scale (75 px in a 4000 px photo) are missed.
        None scans every image at full size. `equalize`: equalize the histogram first. Off by default:
        on 300 photos built from validation faces (bench/faces.py) it cut the faces found from 62.3%
        to 45.2%, raised false faces from 4.7 to 17.0 per 100 photos, and halved photos/s."""
        if cascade_path is None:
            if not hasattr(cv2, "data"):
                raise FerError("this OpenCV has no bundled Haar cascades; install opencv-python-headless 4.x")
            cascade_path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade_path = str(cascade_path)
        self._per_thread = threading.local()
        self._load_cascade()  # fail now, in the caller's thread, if the file is bad
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self.max_side = max_side
        self.equalize = equalize

    def _load_cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._per_thread, "cascade", None)
        if cascade is None:
            try:
                cascade = cv2.CascadeClassifier(self.cascade_path)
            except (cv2.error, SystemError):  # an invalid XML file raises inside OpenCV's constructor
                raise FerError(f"cannot load the Haar cascade {self.cascade_path}") from None
            if cascade.empty():
                raise FerError(f"cannot load the Haar cascade {self.cascade_path}")
            self._per_thread.cascade = cascade
        return cascade

    def detect(self, image: np.ndarray) -> list[Box]:
        gray = _gray(image)
        height, width = gray.shape
        scale = 1.0
        if self.max_side and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            gray = cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        if self.equalize:
            gray = cv2.equalizeHist(gray)
        found = self._load_cascade().detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        boxes = []
        for x, y, w, h in found:  # back to the original image's pixels
            left, top = min(width - 1, round(x / scale)), min(height - 1, round(y / scale))
            boxes.append((left, top, min(width - left, round(w / scale)), min(height - top, round(h / scale))))
        return _largest_first(boxes)


class YuNetFaceDetector:
    """OpenCV's YuNet CNN (`cv2.FaceDetectorYN`): more robust to pose and scale than Haar. Needs the
    model file (face_detection_yunet_*.onnx from the OpenCV model zoo), which fer does not download."""

    uses_color = True  # trained on color images: the Predictor hands it RGB when the image has color

    def __init__(self, model_path: str | Path, score_threshold: float = 0.8):
        if not Path(model_path).is_file():
            raise FerError(f"no YuNet model at {model_path}")
        self.detector = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold)

    def detect(self, image: np.ndarray) -> list[Box]:
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
        height, width = bgr.shape[:2]
        self.detector.setInputSize((width, height))
        _, faces = self.detector.detect(bgr)
        if faces is None:
            return []
        boxes = []
        for x, y, w, h in faces[:, :4]:
            left, top = max(0, int(round(x))), max(0, int(round(y)))
            right, bottom = min(width, int(round(x + w))), min(height, int(round(y + h)))
            if right > left and bottom > top:
                boxes.append((left, top, right - left, bottom - top))
        return _largest_first(boxes)
