"""What every face detector is to the rest of fer: the FaceDetector protocol, the FramedDetector
base of detectors that find boxes only, and the box arithmetic they share.

Detectors take an RGB (H, W, 3) or grayscale (H, W) uint8 image and return boxes (x, y, w, h) in
pixels, largest first. The Predictor asks nothing else of them.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from fer.detection.framing import Alignment, Box, Framing
from fer.preprocess import INPUT_SIZE, to_gray48

# One image's faces: their boxes, largest first, and the (N, 48, 48) uint8 crops the classifier sees.
FaceCrops = tuple[list[Box], np.ndarray]


@dataclass(frozen=True)
class Detection:
    """One face as a detector with keypoints (MTCNN, BlazeFace, YuNet) finds it."""

    box: tuple[float, float, float, float]  # x, y, width, height in the image's pixels
    keypoints: np.ndarray  # (K, 2) x, y in the image's pixels, in the detector's KEYPOINTS order
    score: float


class FaceDetector(Protocol):
    """What the Predictor needs of a detector; pass your own to Predictor.load(detector=...). A
    detector that finds boxes only can subclass FramedDetector, which crops them."""

    name: str  # as the registry, logs and /v1/model name it
    uses_color: bool  # False: `detect` is given the grayscale frame the faces are cropped from

    def detect(self, image: np.ndarray) -> list[Box]:
        """(H, W) grayscale or (H, W, 3) RGB uint8 -> (x, y, w, h) boxes in pixels, largest first."""
        ...

    def crop_faces_many(self, images: Sequence[np.ndarray], grays: Sequence[np.ndarray]) -> list[FaceCrops]:
        """The faces of each image, as the classifier sees them: boxes framed as FER2013 frames faces
        (or aligned by keypoints) and their crops from `grays`, each the grayscale frame of the image
        at the same index (`images` are those frames in color when `uses_color`). Boxes are those of
        the crops. Several images at once let a detector batch them (MTCNN on a GPU)."""
        ...


class FramedDetector:
    """The FaceDetector half that detectors finding boxes only share: each box framed by the
    detector's `framing` and cropped from the grayscale frame."""

    name = "framed"
    uses_color = False
    framing = Framing()

    def detect(self, image: np.ndarray) -> list[Box]:
        raise NotImplementedError

    def crop_faces_many(self, images: Sequence[np.ndarray], grays: Sequence[np.ndarray]) -> list[FaceCrops]:
        found = []
        for image, gray in zip(images, grays):
            height, width = gray.shape
            found.append(crop_boxes(gray, [self.framing.apply(box, width, height) for box in self.detect(image)]))
        return found


def aligned_crops(gray: np.ndarray, detections: Sequence[Detection], alignment: Alignment) -> FaceCrops:
    """Faces found with MTCNN's five keypoints (right eye, left eye, nose, right and left mouth corners,
    as MTCNN and YuNet give them), cropped from `gray` at eye level by `alignment`, largest first."""
    faces = []
    for detection in detections:
        eyes, mouth = detection.keypoints[:2].mean(0), detection.keypoints[3:5].mean(0)
        crop, box = alignment.crop(gray, eyes, mouth)
        faces.append((box, crop))
    faces.sort(key=lambda face: face[0][2] * face[0][3], reverse=True)
    return [box for box, _ in faces], stack_crops([crop for _, crop in faces])


def crop_boxes(gray: np.ndarray, boxes: list[Box]) -> FaceCrops:
    """The boxes and their (N, 48, 48) crops from `gray`."""
    return boxes, stack_crops([to_gray48(gray[y : y + h, x : x + w]) for x, y, w, h in boxes])


def stack_crops(crops: Sequence[np.ndarray]) -> np.ndarray:
    """(48, 48) crops as one (N, 48, 48) uint8 array, (0, 48, 48) for none."""
    return np.stack(crops) if len(crops) else np.zeros((0, INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)


def shrunk_to(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """The image scaled down (area averaging) to `max_side` on its longer side, if it is longer, and
    the factor it was shrunk by: the working size of the detectors that look at large photos."""
    height, width = image.shape[:2]
    if not max_side or max(height, width) <= max_side:
        return image, 1.0
    shrink = max_side / max(height, width)
    size = (max(1, round(width * shrink)), max(1, round(height * shrink)))  # 5000x1: not 1280x0
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), shrink


def gray_of(image: np.ndarray) -> np.ndarray:
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


def largest_first(boxes: Iterable[Sequence[float]]) -> list[Box]:
    boxes = [tuple(int(v) for v in box) for box in boxes]
    return sorted(boxes, key=lambda box: box[2] * box[3], reverse=True)
