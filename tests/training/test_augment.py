import math
import random
from dataclasses import replace

import pytest
import torch

from training.augment import AugmentConfig, augment_batch, mix_batch


def batch(n=16, seed=0):
    return torch.rand(n, 1, 48, 48, generator=torch.Generator().manual_seed(seed)) * 255


def test_shape_dtype_and_pixel_range_are_kept():
    x = batch()
    out = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 255
    assert not torch.equal(out, x)


def test_same_generator_seed_gives_the_same_batch():
    x = batch()
    first = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(3))
    again = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(3))
    other = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_flip_alone_mirrors_about_half_the_faces():
    x = batch(200)
    only_flip = AugmentConfig(max_rotation_deg=0, scale_range=(1.0, 1.0), max_shift=0, erase_probability=0)
    out = augment_batch(x, only_flip, torch.Generator().manual_seed(0))
    same = torch.isclose(out, x, atol=1e-3).flatten(1).all(1)
    mirrored = torch.isclose(out, x.flip(-1), atol=1e-3).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 60 < int(mirrored.sum()) < 140


def test_erasing_alone_changes_one_rectangle_per_chosen_face():
    x = torch.zeros(64, 1, 48, 48)
    always_erase = AugmentConfig(
        flip=False,
        max_rotation_deg=0,
        scale_range=(1.0, 1.0),
        max_shift=0,
        erase_probability=1.0,
        erase_area=(0.1, 0.1),
    )
    out = augment_batch(x, always_erase, torch.Generator().manual_seed(0))
    changed = (out != 0).flatten(1).float().mean(1)  # share of each face that was erased
    assert bool((changed > 0.05).all()) and bool((changed < 0.15).all())


def test_color_jitter_alone_changes_each_faces_brightness_and_contrast_within_its_range():
    x = 100 + 50 * torch.rand(256, 1, 48, 48, generator=torch.Generator().manual_seed(5))  # no clipping
    only_jitter = AugmentConfig(
        flip=False, max_rotation_deg=0, scale_range=(1.0, 1.0), max_shift=0, erase_probability=0, color_jitter=0.3
    )  # fmt: skip
    out = augment_batch(x, only_jitter, torch.Generator().manual_seed(0))
    flat_in, flat_out = x.flatten(1).double(), out.flatten(1).double()
    # Each face is an increasing linear map of itself: the mean moves by the brightness factor and
    # the spread by brightness x contrast.
    brightness = flat_out.mean(1) / flat_in.mean(1)
    spread = flat_out.std(1) / flat_in.std(1)
    assert bool(((brightness > 0.7 - 1e-3) & (brightness < 1.3 + 1e-3)).all())
    assert bool(((spread > 0.49 - 1e-3) & (spread < 1.69 + 1e-3)).all())
    assert float(brightness.std()) > 0.1 and float((spread / brightness).std()) > 0.1  # drawn per face
    centered_in = flat_in - flat_in.mean(1, keepdim=True)
    centered_out = flat_out - flat_out.mean(1, keepdim=True)
    correlation = (centered_in * centered_out).sum(1) / (centered_in.norm(dim=1) * centered_out.norm(dim=1))
    assert bool((correlation > 0.99999).all())


def test_color_jitter_keeps_pixels_in_range():
    x = batch(64)  # the whole 0..255 range: strong factors must clip, not overflow
    out = augment_batch(x, AugmentConfig(color_jitter=0.9), torch.Generator().manual_seed(2))
    assert out.min() == 0 and out.max() == 255  # clipped at both ends, not short of them


def test_runs_on_whole_batches_of_the_training_size():
    out = augment_batch(batch(512), AugmentConfig(), torch.Generator().manual_seed(0))
    assert out.shape == (512, 1, 48, 48)


def test_no_mixing_leaves_the_batch_and_labels_alone():
    x = batch()
    mixed = mix_batch(x, "none", 1.0, random.Random(0))
    assert mixed.pixels is x and mixed.weight == 1.0
    assert torch.equal(mixed.partner, torch.arange(len(x)))


def test_mixup_blends_every_face_with_its_partner_by_the_weight():
    x = batch(32)
    mixed = mix_batch(x, "mixup", 1.0, random.Random(5))
    assert 0.0 < mixed.weight < 1.0
    assert sorted(mixed.partner.tolist()) == list(range(32))  # every face is someone's partner once
    expected = mixed.weight * x + (1 - mixed.weight) * x[mixed.partner]
    assert torch.allclose(mixed.pixels, expected)


def test_cutmix_pastes_one_rectangle_whose_area_is_the_partner_share():
    # Faces of constant, distinct values: every pixel tells which face it came from.
    x = torch.arange(16, dtype=torch.float32).view(16, 1, 1, 1).expand(16, 1, 48, 48).clone()
    for seed in range(20):
        mixed = mix_batch(x, "cutmix", 1.0, random.Random(seed))
        from_partner = mixed.pixels != x
        own_is_partner = mixed.partner == torch.arange(16)
        share = from_partner[~own_is_partner].float().flatten(1).mean(1)
        # The pasted share matches 1 - weight exactly, for every face with another partner.
        assert torch.allclose(share, torch.full_like(share, 1 - mixed.weight))
        rows = from_partner[~own_is_partner][0, 0].any(1).nonzero().flatten()
        cols = from_partner[~own_is_partner][0, 0].any(0).nonzero().flatten()
        if len(rows):  # the pasted pixels form one solid rectangle
            block = from_partner[~own_is_partner][0, 0, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            assert bool(block.all())
        pasted = mixed.pixels[from_partner.expand_as(mixed.pixels)]
        assert torch.equal(pasted, x[mixed.partner][from_partner.expand_as(x)])


def test_mixing_replays_with_the_same_seed():
    x = batch()
    first, again = (mix_batch(x, "cutmix", 1.0, random.Random(9)) for _ in range(2))
    assert torch.equal(first.pixels, again.pixels) and first.weight == again.weight


def test_unknown_mix_mode_is_refused():
    with pytest.raises(ValueError, match="unknown mix mode"):
        mix_batch(batch(), "blend", 1.0, random.Random(0))


# ------------------------------------------------ the geometry, followed through bright dots on black

ONLY_GEOMETRY = AugmentConfig(flip=False, max_rotation_deg=0, scale_range=(1.0, 1.0), max_shift=0, erase_probability=0)
CENTRE = 23.5  # of a 48-pixel side, in pixel-index coordinates


def dots(n: int, row_offset: float, col_offset: float) -> torch.Tensor:
    """n black faces with one smooth bright dot at (row, col) offsets from the face's centre."""
    rows = torch.arange(48, dtype=torch.float32).view(48, 1)
    cols = torch.arange(48, dtype=torch.float32).view(1, 48)
    squared = (rows - CENTRE - row_offset) ** 2 + (cols - CENTRE - col_offset) ** 2
    return (255 * torch.exp(-squared / (2 * 1.5**2))).expand(n, 1, 48, 48).clone()


def dot_offsets(faces: torch.Tensor) -> torch.Tensor:
    """(n, 2) (row, col) of each face's brightness centroid, from the face's centre (any side)."""
    weights = faces[:, 0].double()
    side = faces.shape[-1]
    index = torch.arange(side, dtype=torch.float64)
    total = weights.sum((1, 2))
    rows = (weights.sum(2) * index).sum(1) / total
    cols = (weights.sum(1) * index).sum(1) / total
    return torch.stack([rows, cols], 1) - (side - 1) / 2


def test_rotation_alone_turns_each_face_rigidly_by_up_to_its_angle_both_ways():
    config = replace(ONLY_GEOMETRY, max_rotation_deg=AugmentConfig().max_rotation_deg)
    # Two dots at right angles, seen through the same draws: a rotation keeps both distances and the
    # right angle between them; a shear or a scale would not.
    right = dot_offsets(augment_batch(dots(128, 0, 14), config, torch.Generator().manual_seed(0)))
    down = dot_offsets(augment_batch(dots(128, 14, 0), config, torch.Generator().manual_seed(0)))
    assert torch.allclose(right.norm(dim=1), torch.full((128,), 14.0, dtype=torch.float64), atol=0.1)
    assert torch.allclose(down.norm(dim=1), torch.full((128,), 14.0, dtype=torch.float64), atol=0.1)
    assert float((right * down).sum(1).abs().max()) < 0.02 * 14 * 14  # still at right angles
    # ... turned the same way: down is right turned a quarter clockwise on screen, as before.
    assert torch.allclose(down, torch.stack([right[:, 1], -right[:, 0]], 1), atol=0.15)
    degrees = torch.rad2deg(torch.atan2(right[:, 0], right[:, 1]))
    assert float(degrees.abs().max()) < 10.2
    assert float(degrees.min()) < -9.5 and float(degrees.max()) > 9.5  # both ways, over the whole range


def test_scaling_alone_moves_each_dot_along_its_ray_by_the_zoom_range():
    config = replace(ONLY_GEOMETRY, scale_range=AugmentConfig().scale_range)
    moved = dot_offsets(augment_batch(dots(256, 0, 14), config, torch.Generator().manual_seed(0)))
    assert float(moved[:, 0].abs().max()) < 0.05  # along the ray: no turn
    # The zoom itself is uniform in [0.9, 1.1] (not its inverse, [0.91, 1.11]).
    assert float(moved[:, 1].min()) > 14 * 0.9 - 0.05 and float(moved[:, 1].max()) < 14 * 1.1 + 0.05
    assert float(moved[:, 1].min()) < 12.7 and float(moved[:, 1].max()) > 15.3  # zoomed out and in


def test_turning_and_zooming_together_keep_the_faces_shape():
    config = replace(ONLY_GEOMETRY, max_rotation_deg=10.0, scale_range=(0.9, 1.1))
    right = dot_offsets(augment_batch(dots(128, 0, 14), config, torch.Generator().manual_seed(0)))
    down = dot_offsets(augment_batch(dots(128, 14, 0), config, torch.Generator().manual_seed(0)))
    # A turn and a zoom: both dots at the same distance, still at right angles...
    assert torch.allclose(right.norm(dim=1), down.norm(dim=1), atol=0.1)
    assert torch.allclose(down, torch.stack([right[:, 1], -right[:, 0]], 1), atol=0.15)
    # ... by each one's own range: the zoom does not change the angle, nor the turn the distance.
    degrees = torch.rad2deg(torch.atan2(right[:, 0], right[:, 1]))
    assert float(degrees.abs().max()) < 10.2
    assert float(right.norm(dim=1).min()) > 14 * 0.9 - 0.1 and float(right.norm(dim=1).max()) < 14 * 1.1 + 0.1


def test_shifting_alone_moves_a_face_by_up_to_a_tenth_of_its_side_each_way():
    config = replace(ONLY_GEOMETRY, max_shift=AugmentConfig().max_shift)
    moved = dot_offsets(augment_batch(dots(256, 0, 0), config, torch.Generator().manual_seed(0)))
    limit = 0.1 * 48
    assert float(moved.abs().max()) < limit + 0.1
    for axis in (0, 1):  # both ways on both axes, over most of the range
        assert float(moved[:, axis].min()) < -0.8 * limit and float(moved[:, axis].max()) > 0.8 * limit
    assert float(moved.mean(0).abs().max()) < 0.6  # centred: no drift to one side


# ------------------------------------------------------------------------------ random erasing


def erased_rectangles(config: AugmentConfig, n: int = 512, seed: int = 0) -> list:
    """Each face's erased (top, left, height, width), or None; faces of -1 show any noise pixel."""
    out = augment_batch(torch.full((n, 1, 48, 48), -1.0), config, torch.Generator().manual_seed(seed))
    boxes = []
    for mask in out[:, 0] >= 0:
        if not bool(mask.any()):
            boxes.append(None)
            continue
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        top, left = int(rows[0]), int(cols[0])
        height, width = int(rows[-1]) - top + 1, int(cols[-1]) - left + 1
        assert bool(mask[top : top + height, left : left + width].all())  # one solid rectangle
        assert int(mask.sum()) == height * width
        boxes.append((top, left, height, width))
    return boxes


ALWAYS_ERASE = replace(ONLY_GEOMETRY, erase_probability=1.0, erase_area=AugmentConfig().erase_area)


def test_erased_rectangles_cover_the_configured_area_in_tall_and_wide_shapes_up_to_three_to_one():
    boxes = erased_rectangles(ALWAYS_ERASE)
    assert None not in boxes
    heights = torch.tensor([b[2] for b in boxes], dtype=torch.float64)
    widths = torch.tensor([b[3] for b in boxes], dtype=torch.float64)
    share = heights * widths / (48 * 48)
    # A side of h pixels covers floor(h) or ceil(h) rows, h on average: areas land within a
    # pixel's rim of [0.02, 0.2], and their mean on the middle of that range.
    assert float(share.min()) > 0.01 and float(share.max()) < 0.25
    assert abs(float(share.mean()) - 0.11) < 0.01
    # Aspect drawn log-uniformly in [1/3, 3]: as many tall as wide, none past 3:1 by more than a pixel.
    assert bool(((heights - 1) <= 3 * (widths + 1)).all()) and bool(((widths - 1) <= 3 * (heights + 1)).all())
    log_aspect = torch.log(heights / widths)
    assert abs(float(log_aspect.mean())) < 0.08
    assert float(log_aspect.max()) > math.log(2.2) and float(log_aspect.min()) < -math.log(2.2)


def test_erased_rectangles_land_anywhere_on_the_face():
    boxes = erased_rectangles(ALWAYS_ERASE)
    for start, side in ((0, 2), (1, 3)):  # rows, then columns
        room = torch.tensor([48 - b[side] for b in boxes], dtype=torch.float64)
        where = torch.tensor([b[start] for b in boxes], dtype=torch.float64)[room > 0] / room[room > 0]
        assert abs(float(where.mean()) - 0.5) < 0.05  # uniform over the room left
        assert float(where.min()) < 0.05 and float(where.max()) > 0.95


def test_erasing_paints_uniform_noise_over_the_whole_pixel_range():
    out = augment_batch(torch.full((64, 1, 48, 48), -1.0), ALWAYS_ERASE, torch.Generator().manual_seed(0))
    noise = out[out >= 0]
    assert float(noise.max()) <= 255 and float(noise.min()) < 0.5 and float(noise.max()) > 254.5
    assert abs(float(noise.mean()) - 127.5) < 3


def test_the_erase_probability_is_the_share_of_faces_erased():
    boxes = erased_rectangles(replace(ALWAYS_ERASE, erase_probability=0.3), n=1024)
    assert abs(sum(b is not None for b in boxes) / len(boxes) - 0.3) < 0.05


def test_the_recipes_draws_are_pinned_so_a_resumed_run_replays_its_epochs():
    """A run resumed at an epoch boundary draws again from the generator it saved: the order of the
    draws is part of the checkpoint format. Lighting, off in the recipe, must draw nothing."""
    boxes = erased_rectangles(AugmentConfig(), n=16, seed=0)
    assert boxes == PINNED_RECIPE_ERASURES
    # Every geometric draw is made whatever its setting, so flips alone show the recipe's flips.
    faces = batch(16)
    flipped = augment_batch(faces, replace(ONLY_GEOMETRY, flip=True), torch.Generator().manual_seed(0))
    mirrored = torch.isclose(flipped, faces.flip(-1), atol=1e-3).flatten(1).all(1)
    assert mirrored.nonzero().flatten().tolist() == PINNED_RECIPE_FLIPS


def test_the_smallest_erased_rectangle_is_one_pixel():
    boxes = erased_rectangles(replace(ALWAYS_ERASE, erase_area=(1e-5, 1e-5)), n=64)
    assert set(boxes) == {box[:2] + (1, 1) for box in boxes}


def test_lighting_clips_brightness_at_white_before_it_scales_contrast_as_torchvision_does():
    """A face 80% white, 10% at 60 and 10% at 120: brightness b and contrast c are read back from
    the dark pixels and the mean (contrast keeps it); the white pixels must then have been min(255 b,
    255) before contrast, as in torchvision's ColorJitter."""
    face = torch.full((1, 48, 48), 255.0)
    face[:, :5], face[:, 5:10] = 60.0, 120.0  # rows 0-4 and 5-9 of 48: 10.4% each
    counts = {"dark": 5 * 48, "mid": 5 * 48, "white": 38 * 48}
    only_jitter = replace(ONLY_GEOMETRY, color_jitter=0.5)
    out = augment_batch(face.expand(512, 1, 48, 48).clone(), only_jitter, torch.Generator().manual_seed(0)).double()
    dark, mid, white, mean = out[:, 0, 0, 0], out[:, 0, 7, 0], out[:, 0, 20, 0], out.mean((1, 2, 3))
    k = (white - dark) / (mid - dark)  # = (W - 60 b) / (60 b), W the white pixels after brightness
    b = counts["dark"] + counts["mid"] + counts["white"]
    b = b * mean / (counts["white"] * (60 + 60 * k) + counts["dark"] * 60 + counts["mid"] * 120)
    white_before_contrast = b * (60 + 60 * k)
    unclipped = (out.amax((1, 2, 3)) < 254.9) & (out.amin((1, 2, 3)) > 0.1) & (b > 1.05)
    assert int(unclipped.sum()) > 20
    assert torch.allclose(white_before_contrast[unclipped], torch.full_like(b[unclipped], 255.0), atol=0.05)


def test_mixing_with_alpha_zero_or_below_is_off():
    x = batch()
    for mode in ("mixup", "cutmix"):
        for alpha in (0.0, -1.0):
            mixed = mix_batch(x, mode, alpha, random.Random(0))
            assert mixed.pixels is x and mixed.weight == 1.0


def test_lighting_keeps_a_black_face_black_and_a_white_one_white_or_dimmed():
    faces = torch.cat([torch.zeros(64, 1, 48, 48), torch.full((64, 1, 48, 48), 255.0)])
    out = augment_batch(faces, replace(ONLY_GEOMETRY, color_jitter=0.5), torch.Generator().manual_seed(0))
    assert bool((out[:64] == 0).all())
    white = out[64:].flatten(1)
    assert bool((white == white[:, :1]).all())  # each stays one flat grey
    assert float(white.max()) == 255 and float(white.min()) < 160  # brightened: clipped; dimmed: grey


def cutmix_rectangle(height: int, width: int, seed: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the rectangle CutMix pasted into faces of distinct constant values."""
    faces = torch.arange(16, dtype=torch.float32).view(16, 1, 1, 1).expand(16, 1, height, width).clone()
    mixed = mix_batch(faces, "cutmix", 1.0, random.Random(seed))
    moved = mixed.partner != torch.arange(16)
    pasted = (mixed.pixels != faces)[moved][0, 0]
    rows, cols = pasted.any(1).nonzero().flatten(), pasted.any(0).nonzero().flatten()
    if not len(rows):
        return (0, 0, 0, 0)
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def test_cutmix_rectangles_have_the_faces_proportions_and_are_centred_anywhere():
    height, width = 40, 64  # not square, so that the two sides' formulas cannot be confused
    touching = {"top": 0, "bottom": 0, "left": 0, "right": 0, "none": 0}
    for seed in range(300):
        top, bottom, left, right = cutmix_rectangle(height, width, seed)
        if bottom == top:
            continue
        edges = {"top": top == 0, "bottom": bottom == height, "left": left == 0, "right": right == width}
        for edge, touches in edges.items():
            touching[edge] += touches
        if not any(edges.values()):
            touching["none"] += 1
            # Unclipped, both sides are the same share of the face's sides (sqrt(1 - weight)), rounded.
            assert abs((bottom - top) / height - (right - left) / width) <= 0.5 / height + 0.5 / width + 1e-9
    # Centres are drawn anywhere on the face, so rectangles run off every edge, and some off none.
    assert min(touching.values()) >= 20, touching


# (top, left, height, width) of each face's erased rectangle for the recipe's first 16 draws of seed 0.
PINNED_RECIPE_ERASURES = [
    (8, 14, 10, 6),
    (24, 3, 23, 19),
    None,
    (4, 24, 5, 9),
    (8, 7, 28, 10),
    (14, 18, 22, 11),
    (21, 26, 12, 18),
    (23, 16, 11, 14),
    (26, 9, 11, 31),
    None,
    None,
    (27, 16, 12, 29),
    None,
    (6, 26, 20, 17),
    (16, 39, 6, 9),
    (9, 19, 15, 8),
]
# Faces mirrored by the recipe's first 16 draws of seed 0.
PINNED_RECIPE_FLIPS = [0, 1, 2, 3, 4, 9, 11, 12, 13]


def test_a_crop_is_an_unscaled_window_anywhere_inside_the_augmented_face():
    # Two dots 10 pixels apart, through the same draws: a window keeps their distance (no resizing)
    # and moves both by the same offset, of up to (48 - 40) / 2 = 4 pixels each way on both axes.
    centre = augment_batch(dots(256, 0, 0), ONLY_GEOMETRY, torch.Generator().manual_seed(0), crop=40)
    right = augment_batch(dots(256, 0, 10), ONLY_GEOMETRY, torch.Generator().manual_seed(0), crop=40)
    assert centre.shape == (256, 1, 40, 40)
    seen_centre, seen_right = dot_offsets(centre), dot_offsets(right)
    expected = torch.tensor([0.0, 10.0], dtype=torch.float64).expand(256, 2)
    assert torch.allclose(seen_right - seen_centre, expected, atol=0.05)
    assert float(seen_centre.abs().max()) < 4.05
    for axis in (0, 1):  # anywhere: both ways on both axes, over most of the range
        assert float(seen_centre[:, axis].min()) < -3.5 and float(seen_centre[:, axis].max()) > 3.5


def test_a_crop_follows_the_faces_own_turn_and_zoom():
    # The window is cut from the augmented face, not from the raw one: two dots at right angles keep
    # the turn and zoom their face was given, whatever window is cut.
    config = replace(ONLY_GEOMETRY, max_rotation_deg=10.0, scale_range=(0.9, 1.1))
    centre = dot_offsets(augment_batch(dots(128, 0, 0), config, torch.Generator().manual_seed(0), crop=40))
    right = dot_offsets(augment_batch(dots(128, 0, 10), config, torch.Generator().manual_seed(0), crop=40)) - centre
    down = dot_offsets(augment_batch(dots(128, 10, 0), config, torch.Generator().manual_seed(0), crop=40)) - centre
    whole = dot_offsets(augment_batch(dots(128, 0, 10), config, torch.Generator().manual_seed(0)))
    assert torch.allclose(down, torch.stack([right[:, 1], -right[:, 0]], 1), atol=0.15)  # a turn, no shear
    assert float(torch.rad2deg(torch.atan2(right[:, 0], right[:, 1])).abs().max()) > 8  # turned
    turned_whole = torch.rad2deg(torch.atan2(whole[:, 0], whole[:, 1]))
    turned_window = torch.rad2deg(torch.atan2(right[:, 0], right[:, 1]))
    assert torch.allclose(turned_window, turned_whole, atol=0.5)  # by the face's own draw
    assert torch.allclose(right.norm(dim=1), whole.norm(dim=1), atol=0.1)  # zoomed by it too


def test_a_crop_of_the_whole_side_draws_nothing_so_48_pixel_runs_replay_unchanged():
    faces = batch(16)
    plain_generator, cropped_generator = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    plain = augment_batch(faces, AugmentConfig(), plain_generator)
    full = augment_batch(faces, AugmentConfig(), cropped_generator, crop=48)
    assert torch.equal(plain, full)
    assert torch.equal(torch.rand(4, generator=plain_generator), torch.rand(4, generator=cropped_generator))
