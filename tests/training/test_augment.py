import torch

from training.augment import AugmentConfig, augment_batch


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


def test_runs_on_whole_batches_of_the_training_size():
    out = augment_batch(batch(512), AugmentConfig(), torch.Generator().manual_seed(0))
    assert out.shape == (512, 1, 48, 48)
