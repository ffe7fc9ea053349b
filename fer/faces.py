"""Face detection: the protocol every detector follows, OpenCV's Haar frontal-face cascade (it ships
inside opencv-python 4.x, so nothing is downloaded), OpenCV's YuNet CNN detector when given its .onnx
model file, and how a detector's findings become the classifier's crops (Framing, Alignment). The
default detector is MTCNN (fer/mtcnn.py); fer/detectors.py names them all.

Detectors take an RGB (H, W, 3) or grayscale (H, W) uint8 image and return boxes (x, y, w, h) in
pixels, largest first.
"""

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from fer.errors import FerError
from fer.preprocess import INPUT_SIZE

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Detection:
    """One face as a detector with keypoints (MTCNN, BlazeFace) finds it."""

    box: tuple[float, float, float, float]  # x, y, width, height in the image's pixels
    keypoints: np.ndarray  # (K, 2) x, y in the image's pixels, in the detector's KEYPOINTS order
    score: float


@dataclass(frozen=True)
class Framing:
    """How a detector's box becomes the crop the classifier sees, framed as FER2013 frames its faces:
    a square of `side` times the box's size (the geometric mean of its width and height), its centre
    moved by (`dx`, `dy`) box sizes. Each detector frames faces its own way (MTCNN's boxes are narrower
    than FER2013's crops, Haar's wider), so each has its own framing, calibrated by bench/framing.py on
    validation faces. The default changes nothing."""

    side: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def apply(self, box: Box, width: int, height: int) -> Box:
        """The framed square, clipped to a `width` x `height` image."""
        if self == Framing():
            return box
        x, y, w, h = box
        size = (w * h) ** 0.5
        half = size * self.side / 2
        cx, cy = x + w / 2 + self.dx * size, y + h / 2 + self.dy * size
        left, top = max(0, round(cx - half)), max(0, round(cy - half))
        right, bottom = min(width, round(cx + half)), min(height, round(cy + half))
        if right <= left or bottom <= top:  # a box outside the image keeps its clipped self
            left, top = min(max(0, x), width - 1), min(max(0, y), height - 1)
            right, bottom = max(left + 1, min(width, x + w)), max(top + 1, min(height, y + h))
        return left, top, right - left, bottom - top


@dataclass(frozen=True)
class Alignment:
    """Eye-level alignment, for detectors that find the eyes and the mouth (MTCNN): the crop is a
    square of `side` eye-to-mouth distances, centred `right` and `down` such distances from the
    midpoint of the eyes along the face's own axes (down: from the eyes towards the mouth), and turned
    so that those axes are upright, as FER2013's mostly upright faces are, but for `kept_tilt` of the
    turn. Calibrated by bench/framing.py on validation faces: on faces turned up to 20 degrees it
    classified 5.4 points more of them right than the detector's box framed (docs/benchmarks.md)."""

    side: float
    right: float
    down: float
    # The share of the face's tilt (its eye-to-mouth axis off the vertical) the crop keeps. FER2013's
    # crops were not levelled: their faces tilt by 9.2 degrees (standard deviation, MTCNN's keypoints
    # on the validation faces), and the classifier learned them so. Levelling every face also undoes
    # that, so a crop keeps part of it. 0 levels the eyes fully.
    kept_tilt: float = 0.0

    def crop(self, gray: np.ndarray, eyes: np.ndarray, mouth: np.ndarray) -> tuple[np.ndarray, Box]:
        """The (48, 48) uint8 aligned crop of a grayscale image, and the upright square (x, y, w, h)
        of the same centre and side, clipped to the image: the box reported for the face. `eyes` and
        `mouth` are (x, y) midpoints in the image's pixels."""
        axis = np.asarray(mouth, np.float64) - np.asarray(eyes, np.float64)
        distance = max(float(np.hypot(*axis)), 1.0)
        down = axis / distance
        right = np.array([down[1], -down[0]])  # the image's x axis when the face is upright
        centre = np.asarray(eyes, np.float64) + (self.right * right + self.down * down) * distance
        side = self.side * distance
        height, width = gray.shape
        # Shrink the neighbourhood with area averaging first: turning and scaling in one warp would
        # sample a large face's pixels sparsely (aliasing).
        reach = int(np.ceil(side * 0.75))  # beyond half the square's diagonal
        x0, y0 = int(np.floor(centre[0])) - reach, int(np.floor(centre[1])) - reach
        region = _region(gray, x0, y0, 2 * reach, 2 * reach)
        scale = 1.0
        if side > 2 * INPUT_SIZE:
            scale = 2 * INPUT_SIZE / side
            region = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        # Coordinates so far measure from pixel edges; warpAffine's from pixel centres: half a pixel off.
        local = (centre - (x0, y0)) * scale - 0.5
        turned = (1 - self.kept_tilt) * np.arctan2(down[0], down[1])  # how far the crop turns the face
        upright = np.array([np.sin(turned), np.cos(turned)])  # the crop's own down, in the image
        axes = np.stack([[upright[1], -upright[0]], upright]) * INPUT_SIZE / (side * scale)
        matrix = np.hstack([axes, ((INPUT_SIZE - 1) / 2 - axes @ local)[:, np.newaxis]])
        crop = cv2.warpAffine(
            region, matrix, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        left, top = max(0, round(centre[0] - side / 2)), max(0, round(centre[1] - side / 2))
        right_edge, bottom = min(width, round(centre[0] + side / 2)), min(height, round(centre[1] + side / 2))
        box = (min(left, width - 1), min(top, height - 1), max(1, right_edge - left), max(1, bottom - top))
        return crop, box


def _region(gray: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    """gray[y:y+height, x:x+width], its edge pixels repeated where it reaches past the image."""
    rows, columns = gray.shape
    inside = gray[max(0, y) : max(0, min(rows, y + height)), max(0, x) : max(0, min(columns, x + width))]
    if inside.size == 0:
        return np.zeros((max(1, height), max(1, width)), gray.dtype)
    return cv2.copyMakeBorder(
        inside,
        max(0, -y),
        max(0, y + height - rows),
        max(0, -x),
        max(0, x + width - columns),
        cv2.BORDER_REPLICATE,
    )


class FaceDetector(Protocol):
    """What the Predictor needs of a detector; pass your own to Predictor.load(detector=...)."""

    uses_color: bool  # False: it is given the grayscale frame the faces are cropped from
    framing: Framing  # how its boxes become the classifier's crops (Framing() keeps them as they are)

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


def corner_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each row of an (N, 4) array of such boxes."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = width * height
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = (box[2] - box[0]) * (box[3] - box[1]) + areas - inter
    return inter / np.maximum(union, 1e-9)


def pixel_boxes(boxes: Iterable[Sequence[float]], height: int, width: int) -> list[Box]:
    """Float (x, y, w, h) boxes as whole pixels inside a `height` x `width` image, largest first;
    boxes wholly outside it are dropped."""
    clipped = []
    for x, y, w, h in boxes:
        left, top = max(0, round(x)), max(0, round(y))
        right, bottom = min(width, round(x + w)), min(height, round(y + h))
        if right > left and bottom > top:
            clipped.append((left, top, right - left, bottom - top))
    return sorted(clipped, key=lambda box: box[2] * box[3], reverse=True)


def _largest_first(boxes: Iterable[Sequence[float]]) -> list[Box]:
    boxes = [tuple(int(v) for v in box) for box in boxes]
    return sorted(boxes, key=lambda box: box[2] * box[3], reverse=True)


HAAR_FRAMING = Framing(side=1.018, dx=0.005, dy=0.005)  # fitted by bench/framing.py (docs/benchmarks.md)


class HaarFaceDetector:
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
        gray = _gray(image)
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
        return _largest_first(boxes)


class YuNetFaceDetector:
    """OpenCV's YuNet CNN (`cv2.FaceDetectorYN`): more robust to pose and scale than Haar. Needs the
    model file (face_detection_yunet_*.onnx from the OpenCV model zoo), which fer does not download."""

    uses_color = True  # trained on color images: the Predictor hands it RGB when the image has color

    name = "yunet"
    framing = Framing()  # not calibrated: fer ships no YuNet model to calibrate

    def __init__(self, model_path: str | Path, score_threshold: float = 0.8):
        if not Path(model_path).is_file():
            raise FerError(f"no YuNet model at {model_path}")
        self.detector = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold)

    def detect(self, image: np.ndarray) -> list[Box]:
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
        height, width = bgr.shape[:2]
        self.detector.setInputSize((width, height))
        _, faces = self.detector.detect(bgr)
        return [] if faces is None else pixel_boxes(faces[:, :4], height, width)
