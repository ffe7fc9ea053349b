import random

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
    assert out.min() >= 0 and out.max() <= 255


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
