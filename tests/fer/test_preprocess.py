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


@pytest.mark.parametrize("shape", [(48,), (48, 48, 2), (0, 48), (2, 2, 2, 2), (48, 48, 0), (48, 48, 1, 3)])
def test_impossible_shapes_are_rejected(shape):
    with pytest.raises(ValueError):
        to_gray48(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("shape", [(0, 48), (48, 0), (0, 0, 3)])
def test_empty_images_are_refused_by_name(shape):
    with pytest.raises(ValueError, match="empty image"):
        to_gray48(np.zeros(shape, np.uint8))


def test_a_one_pixel_wide_image_is_not_empty():
    assert (to_gray48(np.full((48, 1), 7, np.uint8)) == 7).all()


def test_other_integer_images_are_clipped_to_0_to_255():
    levels = np.array([[-5, 0, 77, 255, 300]], np.int32).repeat(48, 0).repeat(10, 1)[:, :48]
    out = to_gray48(levels)
    assert out[0, 0] == 0 and out[0, 47] == 255 and out[0, 20] == 77


def test_16_bit_keeps_the_high_byte():
    levels = np.arange(48 * 48, dtype=np.uint16).reshape(48, 48) * 28  # 0 .. 64,484
    assert np.array_equal(to_gray48(levels), (levels // 256).astype(np.uint8))


def test_boolean_masks_become_black_and_white():
    mask = np.zeros((48, 48), bool)
    mask[:, 24:] = True
    out = to_gray48(mask)
    assert (out[:, :24] == 0).all() and (out[:, 24:] == 255).all()


@pytest.mark.parametrize(
    "value, gray",
    [(0.0, 0), (0.25, 63), (1.0, 255), (1.5, 1), (200.0, 200), (300.0, 255), (-4.0, 0), (np.nan, 0)],
)
def test_floats_in_0_to_1_are_scaled_and_larger_ones_taken_as_0_to_255(value, gray):
    image = np.full((48, 48), value, np.float32)
    assert to_gray48(image)[0, 0] == gray


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


def test_a_crop_shrunk_one_way_and_enlarged_the_other_is_averaged_where_it_shrinks():
    # One white column in every four, 4x too many across: averaging gives an even 1/4 gray, while
    # sampling (bilinear lands between the black columns) loses the white ones. The height
    # (24 -> 48) is enlarged at the same time.
    stripes = np.zeros((24, 192), np.uint8)
    stripes[:, 0::4] = 255
    assert np.abs(to_gray48(stripes).astype(int) - 64).max() <= 1
    assert np.abs(to_gray48(stripes.T).astype(int) - 64).max() <= 1  # and the other way round


def test_a_crop_at_the_input_height_but_narrower_is_enlarged_smoothly():
    face = real_face(48)[:, ::2]  # (48, 24): nothing to shrink, the width doubles
    out = to_gray48(face)
    repeated_columns = (out[:, 0::2] == out[:, 1::2]).all(0)
    assert repeated_columns.mean() < 0.5  # interpolated, not each column repeated
