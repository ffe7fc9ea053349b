"""Test-time augmentation as one pure function: average the softmax over views of each face.

- none: the face as it is (1 view)
- flip: the face and its mirror image (2 views)
- tencrop: the four corner crops and the center crop of 44x44 pixels, each scaled back to 48x48,
  and their mirror images (10 views); the crops match the up-to-10% zoom seen in training. A model
  trained on smaller windows (`window` < 48, fer.models' vgg40) classifies the centre window of what
  it is given, so its ten views are the face moved to put each corner window there: the published
  ten-crop of 40-pixel models, without resizing.

Written in NumPy, not torch, so that the CPU engines (ONNX Runtime) run without importing torch at
all: importing the CUDA build of torch and torchvision costs a serving process about 690 MB of
resident memory, 376 MB of it private. The bilinear scaling is PyTorch's `interpolate(mode="bilinear",
align_corners=False)` as a matrix, so the views are the ones the model cards were measured with.
"""

from collections.abc import Callable

import numpy as np

from fer.options import TTA_MODES, check_tta
from fer.preprocess import INPUT_SIZE

__all__ = ["TTA_MODES", "CROP_SIZE", "tta_views", "predict_probabilities"]

CROP_SIZE = 44

# (N, 1, 48, 48) float32 pixels -> (N, 7) float32 logits: a fer.engines engine, or any such callable.
Forward = Callable[[np.ndarray], np.ndarray]


def bilinear_matrix(source: int, target: int) -> np.ndarray:
    """(target, source) weights of 1-D bilinear scaling with half-pixel centres, as PyTorch's
    align_corners=False computes them (an output before the first input centre is clamped to it)."""
    matrix = np.zeros((target, source), dtype=np.float64)
    for out in range(target):
        position = max((out + 0.5) * source / target - 0.5, 0.0)
        low = int(position)
        high = min(low + 1, source - 1)
        weight = position - low
        matrix[out, low] += 1.0 - weight
        matrix[out, high] += weight
    return matrix.astype(np.float32)


_SCALE_UP = bilinear_matrix(CROP_SIZE, INPUT_SIZE)  # (48, 44)
TTA_VIEWS = {"none": 1, "flip": 2, "tencrop": 10}


def tta_views(pixels: np.ndarray, mode: str, window: int = INPUT_SIZE) -> np.ndarray:
    """(B, 1, 48, 48) float32 -> (V, B, 1, 48, 48), the V views of every face for `mode`, contiguous;
    `window`: the side of the centre part the model classifies (48: all of it)."""
    if check_tta(mode) == "none":
        return pixels[np.newaxis]
    views = np.empty((TTA_VIEWS[mode], *pixels.shape), dtype=np.float32)
    if mode == "flip":
        views[0], views[1] = pixels, pixels[..., ::-1]
        return views
    if window < INPUT_SIZE:
        return _moved_windows(pixels, window, views)
    far, centre = INPUT_SIZE - CROP_SIZE, (INPUT_SIZE - CROP_SIZE) // 2  # tencrop
    windows = np.stack(  # torchvision's five_crop order: top-left, top-right, bottom-left, bottom-right, centre
        [
            pixels[..., :CROP_SIZE, :CROP_SIZE],
            pixels[..., :CROP_SIZE, far:],
            pixels[..., far:, :CROP_SIZE],
            pixels[..., far:, far:],
            pixels[..., centre : centre + CROP_SIZE, centre : centre + CROP_SIZE],
        ]
    )
    views[:5] = _SCALE_UP @ windows @ _SCALE_UP.T  # rows, then columns: (48, 44) @ (44, 44) @ (44, 48)
    views[5:] = views[:5, ..., ::-1]
    return views


def _moved_windows(pixels: np.ndarray, window: int, views: np.ndarray) -> np.ndarray:
    """Ten-crop for a model that classifies the centre `window` of a face: each view is the face moved
    so that a corner window (or the centre one) lies where the model looks. What moves in from the
    other side (np.roll) falls outside that window, so the model never sees it."""
    centre, far = (INPUT_SIZE - window) // 2, INPUT_SIZE - window
    corners = [(0, 0), (0, far), (far, 0), (far, far), (centre, centre)]  # five_crop's order, as above
    for index, (top, left) in enumerate(corners):
        views[index] = np.roll(pixels, (centre - top, centre - left), axis=(-2, -1))
    views[5:] = views[:5, ..., ::-1]  # the mirror's centre window is the window's mirror
    return views


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def predict_probabilities(
    forward: Forward, pixels: np.ndarray, mode: str = "none", window: int = INPUT_SIZE
) -> np.ndarray:
    """(B, 1, 48, 48) pixels in 0..255 -> (B, 7) float32 probabilities, averaged over the TTA views
    (the mean of the softmaxes, not the softmax of the mean logits); `window`: the card's."""
    views = tta_views(np.asarray(pixels, dtype=np.float32), mode, window)
    count, batch = views.shape[:2]
    logits = forward(views.reshape(count * batch, *views.shape[2:]))
    return softmax(np.asarray(logits, dtype=np.float32)).reshape(count, batch, -1).mean(0)
