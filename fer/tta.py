"""Test-time augmentation as one pure function: average the softmax over views of each face.

- none: the face as it is (1 view)
- flip: the face and its mirror image (2 views)
- tencrop: the four corner crops and the center crop of 44x44 pixels, each scaled back to 48x48,
  and their mirror images (10 views); the crops match the up-to-10% zoom seen in training.
"""

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from fer.options import TTA_MODES, check_tta

__all__ = ["TTA_MODES", "CROP_SIZE", "tta_views", "predict_probabilities"]

CROP_SIZE = 44


def tta_views(pixels: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, 1, 48, 48) -> (V, B, 1, 48, 48), the V views of every face for `mode`."""
    if check_tta(mode) == "none":
        return pixels.unsqueeze(0)
    if mode == "flip":
        return torch.stack([pixels, pixels.flip(-1)])
    size = pixels.shape[-2:]  # tencrop
    crops = [
        F.interpolate(crop, size=size, mode="bilinear", align_corners=False) for crop in TF.five_crop(pixels, CROP_SIZE)
    ]
    return torch.stack(crops + [crop.flip(-1) for crop in crops])


def predict_probabilities(model: torch.nn.Module, pixels: torch.Tensor, mode: str = "none") -> torch.Tensor:
    """(B, 1, 48, 48) pixels in 0..255 -> (B, 7) probabilities, averaged over the TTA views."""
    views = tta_views(pixels, mode)
    count, batch = views.shape[:2]
    logits = model(views.reshape(count * batch, *views.shape[2:]).contiguous(memory_format=torch.channels_last))
    return logits.float().softmax(-1).reshape(count, batch, -1).mean(0)
