import numpy as np
import pytest
from PIL import Image

from fer.preprocess import to_gray48


def test_gray_48x48_passes_through_unchanged():
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    assert np.array_equal(to_gray48(face), face)


def test_color_order_is_explicit():
    red_rgb = np.zeros((48, 48, 3), np.uint8)
    red_rgb[..., 0] = 255
    # Luma weights: 0.299 for red, 0.114 for blue. The same array read as BGR is pure blue.
    assert to_gray48(red_rgb, "RGB")[0, 0] == 76
    assert to_gray48(red_rgb, "BGR")[0, 0] == 29
    rgba = np.dstack([red_rgb, np.full((48, 48), 255, np.uint8)])
    assert to_gray48(rgba, "RGB")[0, 0] == 76


def test_pil_images_and_any_size_become_48x48():
    image = Image.new("RGB", (200, 120), (0, 255, 0))
    out = to_gray48(image)
    assert out.shape == (48, 48) and out.dtype == np.uint8 and out[10, 10] == 150
    assert to_gray48(np.full((10, 7), 9, np.uint8)).shape == (48, 48)


def test_16_bit_and_float_images_are_scaled_to_8_bits():
    assert to_gray48(np.full((48, 48), 65535, np.uint16))[0, 0] == 255
    assert to_gray48(np.full((48, 48), 0.5, np.float32))[0, 0] == 127
    assert to_gray48(np.full((48, 48, 1), 200, np.uint8))[0, 0] == 200


@pytest.mark.parametrize("shape", [(48,), (48, 48, 2), (0, 48), (2, 2, 2, 2)])
def test_impossible_shapes_are_rejected(shape):
    with pytest.raises(ValueError):
        to_gray48(np.zeros(shape, np.uint8))


# Luma (ITU-R BT.601, as OpenCV weighs it): 0.299 R + 0.587 G + 0.114 B.
PURE = {"red": (255, 0, 0, 76), "green": (0, 255, 0, 150), "blue": (0, 0, 255, 29)}


@pytest.mark.parametrize("colour", sorted(PURE))
@pytest.mark.parametrize("order", ["RGB", "BGR"])
@pytest.mark.parametrize("alpha", [False, True])
def test_pure_colours_in_every_channel_order(colour, order, alpha):
    red, green, blue, gray = PURE[colour]
    channels = [red, green, blue] if order == "RGB" else [blue, green, red]
    if alpha:
        channels.append(128)  # half-transparent: alpha is dropped, never mixed into the gray
    image = np.empty((48, 48, len(channels)), np.uint8)
    image[...] = channels
    assert to_gray48(image, order)[0, 0] == gray, f"{colour} in {order}{'A' if alpha else ''}"


def real_face(side: int) -> np.ndarray:
    """The astronaut's face (scikit-image ships the photograph), gray, `side` pixels square."""
    from skimage import data

    gray = np.asarray(Image.fromarray(data.astronaut()).convert("L"))
    return np.asarray(Image.fromarray(gray[20:212, 140:332]).resize((side, side), Image.LANCZOS))


def test_shrinking_a_real_face_averages_blocks_of_pixels():
    face = real_face(192)  # 4x the model's input: each output pixel is the mean of a 4x4 block
    block_means = face.reshape(48, 4, 48, 4).mean((1, 3))
    out = to_gray48(face).astype(np.float64)
    assert np.abs(out - block_means).max() <= 1.0  # rounding only
    # Sampling instead of averaging (nearest or bilinear) misses most of every block: far off.
    sampled = face[1::4, 1::4].astype(np.float64)
    assert np.abs(sampled - block_means).mean() > 2.0


def test_enlarging_a_real_face_interpolates_smoothly():
    small = real_face(24)
    out = to_gray48(small).astype(np.float64)
    # Bilinear enlargement keeps the face: the same brightness, and shrunk back it is close to the
    # original (blurred a little by the interpolation) ...
    assert abs(out.mean() - small.mean()) < 1.0
    back = out.reshape(24, 2, 24, 2).mean((1, 3))
    assert np.abs(back - small).mean() < 10.0
    # ... and, unlike nearest-neighbour, does not repeat each pixel as a 2x2 block.
    repeated_blocks = (out[0::2, 0::2] == out[1::2, 1::2]) & (out[0::2, 0::2] == out[0::2, 1::2])
    assert repeated_blocks.mean() < 0.5
