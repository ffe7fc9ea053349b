"""OpenCV's Haar frontal-face cascade (Viola-Jones): it ships inside opencv-python 4.x, so it needs
no model file of fer's. Fast on a CPU, frontal faces only."""

import threading
from pathlib import Path

import cv2
import numpy as np

from fer.detection.base import Box, FramedDetector, gray_of, largest_first
from fer.detection.framing import Framing
from fer.errors import FerError

HAAR_FRAMING = Framing(side=1.018, dx=0.005, dy=0.005)  # fitted by bench/framing.py (docs/benchmarks.md)


class HaarFaceDetector(FramedDetector):
    """Viola-Jones cascade: fast on a CPU, frontal faces only. Safe to share between threads: each
    thread gets its own cv2.CascadeClassifier, whose detectMultiScale keeps scratch state and must not
    run concurrently on one instance."""

    name = "haar"
    uses_color = False  # works on grayscale: the Predictor hands it the frame it crops faces from

    def __init__(
        self,
        cascade_path: str | Path | None = None,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        max_side: int | None = 1280,
        equalize: bool = False,
        framing: Framing | None = None,
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
        self.framing = framing or HAAR_FRAMING

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
        gray = gray_of(image)
        height, width = gray.shape
        scale = 1.0
        if self.max_side and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            # At least one pixel: a 5000x1 image would otherwise become 1280x0, which OpenCV refuses.
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        if self.equalize:
            gray = cv2.equalizeHist(gray)
        found = self._load_cascade().detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        boxes = []
        for x, y, w, h in found:  # back to the original image's pixels
            left, top = min(width - 1, round(x / scale)), min(height - 1, round(y / scale))
            boxes.append((left, top, min(width - left, round(w / scale)), min(height - top, round(h / scale))))
        return largest_first(boxes)
