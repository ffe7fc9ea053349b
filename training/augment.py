"""Augmentation applied to whole batches on the training device, not per sample in Python.

One `affine_grid`/`grid_sample` call applies each face's own random flip, rotation, scale and shift;
random erasing is a vectorized mask. Both draw from an explicit generator, so a run is reproducible
and resumable at any epoch boundary.
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True  # horizontal mirror with probability 1/2 (faces are left-right symmetric)
    max_rotation_deg: float = 10.0  # uniform in [-10, 10] degrees
    scale_range: tuple[float, float] = (0.9, 1.1)  # zoom in or out by up to 10%
    max_shift: float = 0.1  # uniform shift up to 10% of the side (about 5 pixels at 48x48)
    erase_probability: float = 0.5  # random erasing (Zhong et al. 2017) of one rectangle
    erase_area: tuple[float, float] = (0.02, 0.2)  # share of the face the rectangle covers
    # Lighting, as torchvision's ColorJitter(brightness=j, contrast=j) on gray faces: each face's
    # pixels are scaled by a factor in [1 - j, 1 + j], then pulled toward or pushed from their mean
    # gray by another. Off (0) in the fer-v1 recipe; photos and webcams light faces unlike FER2013.
    color_jitter: float = 0.0


def augment_batch(
    pixels: torch.Tensor, config: AugmentConfig, generator: torch.Generator, crop: int | None = None
) -> torch.Tensor:
    """(B, 1, H, W) float pixels in 0..255 -> augmented (B, 1, H, W), same dtype, range and device;
    with `crop`, a random `crop` x `crop` window of each augmented face, from the same resampling."""
    batch = pixels.shape[0]
    device = pixels.device
    side = pixels.shape[-1]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(batch, device=device, generator=generator) * (high - low) + low

    angle = uniform(-1.0, 1.0) * math.radians(config.max_rotation_deg)
    # The grid maps output to input coordinates: dividing by the zoom enlarges the face.
    inverse_scale = 1.0 / uniform(*config.scale_range)
    mirror = torch.ones(batch, device=device)
    if config.flip:
        flips = torch.rand(batch, device=device, generator=generator) < 0.5
        mirror = torch.where(flips, -mirror, mirror)
    shift_x = uniform(-1.0, 1.0) * config.max_shift * 2  # grid coordinates span [-1, 1]: 2 units
    shift_y = uniform(-1.0, 1.0) * config.max_shift * 2
    cos, sin = torch.cos(angle) * inverse_scale, torch.sin(angle) * inverse_scale
    theta = torch.stack(
        [torch.stack([cos * mirror, -sin, shift_x], 1), torch.stack([sin * mirror, cos, shift_y], 1)], 1
    )  # (B, 2, 3)
    shape = list(pixels.shape)
    if crop is not None and crop < side:  # drawn only then, so 48-pixel runs replay their draws unchanged
        theta, shape[-2:] = _cropped(theta, crop / side, uniform), [crop, crop]
    grid = F.affine_grid(theta.to(pixels.dtype), shape, align_corners=False)
    # Border padding repeats edge pixels instead of painting black bars the test faces never have.
    out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if config.color_jitter > 0:  # drawn only when on, so the fer-v1 recipe's draws replay unchanged
        out = _jitter_lighting(out, config.color_jitter, uniform)
    if config.erase_probability > 0:
        out = _random_erase(out, config, generator)
    return out


def _cropped(theta: torch.Tensor, share: float, uniform: Callable[[float, float], torch.Tensor]) -> torch.Tensor:
    """The affine map of a window `share` of the side wide, anywhere inside the augmented face: the
    window's grid point p is the augmented face's point q = share * p + c, which the map sends to
    A q + t, so the window's own map is [share * A | A c + t]."""
    reach = 1.0 - share  # how far the window's centre may move from the face's, in grid units
    centre = torch.stack([uniform(-reach, reach), uniform(-reach, reach)], 1).unsqueeze(2)  # (B, 2, 1)
    linear, shift = theta[:, :, :2], theta[:, :, 2:]
    return torch.cat([linear * share, linear @ centre + shift], 2)


def _jitter_lighting(
    pixels: torch.Tensor, strength: float, uniform: Callable[[float, float], torch.Tensor]
) -> torch.Tensor:
    """Brightness then contrast, each factor uniform in [1 - strength, 1 + strength] per face."""
    brightness = uniform(1.0 - strength, 1.0 + strength).view(-1, 1, 1, 1).to(pixels.dtype)
    contrast = uniform(1.0 - strength, 1.0 + strength).view(-1, 1, 1, 1).to(pixels.dtype)
    out = (pixels * brightness).clamp(0, 255)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1): each face's own gray
    return ((out - mean) * contrast + mean).clamp(0, 255)


def _random_erase(pixels: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    batch, _, height, width = pixels.shape
    device = pixels.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device, generator=generator)

    area = (rand(batch) * (config.erase_area[1] - config.erase_area[0]) + config.erase_area[0]) * height * width
    aspect = torch.exp(rand(batch) * (math.log(3.0) - math.log(1 / 3.0)) + math.log(1 / 3.0))
    erase_h = torch.sqrt(area * aspect).clamp(1, height)
    erase_w = torch.sqrt(area / aspect).clamp(1, width)
    top = rand(batch) * (height - erase_h)
    left = rand(batch) * (width - erase_w)
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    inside = (
        (rows >= top.view(-1, 1, 1))
        & (rows < (top + erase_h).view(-1, 1, 1))
        & (cols >= left.view(-1, 1, 1))
        & (cols < (left + erase_w).view(-1, 1, 1))
    )  # (B, H, W)
    chosen = (rand(batch) < config.erase_probability).view(-1, 1, 1)
    mask = (inside & chosen).unsqueeze(1)  # (B, 1, H, W)
    noise = rand(batch, 1, height, width).to(pixels.dtype) * 255.0
    return torch.where(mask, noise, pixels)


# ---------------------------------------------------------------- mixing two faces and their labels

MIX_MODES = ("none", "mixup", "cutmix")


@dataclass(frozen=True)
class MixedBatch:
    """A batch whose every face is `weight` of its own face and `1 - weight` of a partner's."""

    pixels: torch.Tensor  # (B, 1, H, W)
    partner: torch.Tensor  # (B,) index of each face's partner within the batch
    weight: float  # share of the face's own label in its target


def mix_batch(pixels: torch.Tensor, mode: str, alpha: float, rng: random.Random) -> MixedBatch:
    """mixup (Zhang et al. 2018) blends whole faces; CutMix (Yun et al. 2019) pastes a rectangle of the
    partner's face. The weight is drawn from Beta(alpha, alpha) once per batch. `rng` is a plain
    Python generator so the draws cost no device synchronisation and replay exactly on resume."""
    batch, _, height, width = pixels.shape
    if mode == "none" or alpha <= 0:
        return MixedBatch(pixels, torch.arange(batch, device=pixels.device), 1.0)
    if mode not in MIX_MODES:
        raise ValueError(f"unknown mix mode {mode!r}; choose from {', '.join(MIX_MODES)}")
    weight = rng.betavariate(alpha, alpha)
    partner = torch.tensor(rng.sample(range(batch), batch), device=pixels.device)
    if mode == "mixup":
        return MixedBatch(weight * pixels + (1.0 - weight) * pixels[partner], partner, weight)
    # CutMix: a rectangle covering 1 - weight of the face, centred anywhere, clipped to the face;
    # the weight is then corrected to the share that was really pasted.
    cut_h, cut_w = round(height * math.sqrt(1.0 - weight)), round(width * math.sqrt(1.0 - weight))
    centre_y, centre_x = rng.randrange(height), rng.randrange(width)
    top, bottom = max(centre_y - cut_h // 2, 0), min(centre_y + (cut_h + 1) // 2, height)
    left, right = max(centre_x - cut_w // 2, 0), min(centre_x + (cut_w + 1) // 2, width)
    mixed = pixels.clone()
    mixed[:, :, top:bottom, left:right] = pixels[partner, :, top:bottom, left:right]
    pasted = (bottom - top) * (right - left) / (height * width)
    return MixedBatch(mixed, partner, 1.0 - pasted)
