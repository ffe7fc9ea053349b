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
