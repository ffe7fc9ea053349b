"""The one preprocessing function, shared by training data, evaluation, the predictor, the API and
the webcam: any face crop becomes a 48x48 uint8 grayscale array.

Pixel normalization is not done here: it lives inside the models (`fer.models.Normalize`), so that
exported weights and ONNX files take raw 0..255 pixels and no caller can normalize twice or not at all.
"""

from typing import Literal

import cv2
import numpy as np
from PIL import Image

INPUT_SIZE = 48
ColorOrder = Literal["RGB", "BGR"]


def to_gray48(face: np.ndarray | Image.Image, color_order: ColorOrder = "RGB") -> np.ndarray:
    """Return `face` as a (48, 48) uint8 grayscale array.

    `face` is a PIL image, or an array: (H, W) grayscale, (H, W, 3) color or (H, W, 4) with alpha.
    `color_order` says how a 3- or 4-channel array is ordered: "RGB" (PIL, browsers) or "BGR"
    (OpenCV frames). 16-bit and float images are scaled to 8 bits.
    """
    if isinstance(face, Image.Image):
        face = np.asarray(face.convert("L"))
        color_order = "RGB"
    array = np.asarray(face)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"expected a (H, W), (H, W, 3) or (H, W, 4) image, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"empty image of shape {array.shape}")
    array = to_uint8(array)
    if array.ndim == 3:
        codes = {
            ("RGB", 3): cv2.COLOR_RGB2GRAY,
            ("BGR", 3): cv2.COLOR_BGR2GRAY,
            ("RGB", 4): cv2.COLOR_RGBA2GRAY,
            ("BGR", 4): cv2.COLOR_BGRA2GRAY,
        }
        array = cv2.cvtColor(np.ascontiguousarray(array), codes[(color_order, array.shape[2])])
    height, width = array.shape
    if height > INPUT_SIZE or width > INPUT_SIZE:
        # Shrink with INTER_AREA, which averages the pixels it merges (no aliasing), and only the sides
        # longer than 48: on a crop that shrinks one way and grows the other, INTER_AREA is neither
        # (1-pixel stripes 4:1 came out 3/4 bright instead of an even gray).
        size = (min(width, INPUT_SIZE), min(height, INPUT_SIZE))
        array = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
    if array.shape != (INPUT_SIZE, INPUT_SIZE):
        array = cv2.resize(array, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)  # enlarge smoothly
    return np.ascontiguousarray(array, dtype=np.uint8)


def to_uint8(array: np.ndarray) -> np.ndarray:
    """8-bit pixels from uint8, uint16, bool, float (0..1 or 0..255) or other integer arrays."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        # Floats in [0, 1] are the common convention; anything larger is taken as 0..255.
        scale = 255.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(array) * scale, 0, 255).astype(np.uint8)
    return np.clip(array, 0, 255).astype(np.uint8)
