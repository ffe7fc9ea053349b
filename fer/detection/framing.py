"""How a detector's findings become the classifier's (48, 48) crops, framed as FER2013 framed its
faces: Framing for a box, Alignment for a face whose eyes and mouth are known. Each detector has its
own, fitted by bench/framing.py on validation faces (docs/benchmarks.md)."""

from dataclasses import dataclass

import cv2
import numpy as np

from fer.preprocess import INPUT_SIZE

Box = tuple[int, int, int, int]  # x, y, width, height in whole pixels of the image


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
