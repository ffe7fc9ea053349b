"""Reading user images into arrays: EXIF orientation applied; grayscale, RGB, RGBA, palette and 16-bit
images all become uint8 RGB (H, W, 3) or grayscale (H, W) arrays."""

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fer.errors import FerError

# What the Predictor accepts as an image: a path, encoded bytes, a PIL image or an array.
ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray

# Image files by name: what `fer predict` picks from folders and dataset readers read.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".pgm"})
WRITABLE_IMAGE_SUFFIXES = IMAGE_SUFFIXES - {".gif"}  # OpenCV cannot write GIF


def read_image(source: str | os.PathLike | bytes | Image.Image) -> np.ndarray:
    """RGB (H, W, 3) or grayscale (H, W) uint8 array from a path, encoded bytes or a PIL image."""
    if isinstance(source, Image.Image):
        return pil_to_array(source)
    try:
        opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source))
        with opened as image:
            image.load()  # decode now, inside the try: truncated files fail here
            return pil_to_array(image)
    except FileNotFoundError:
        raise FerError(f"no such file: {source}") from None
    except IsADirectoryError:
        raise FerError(f"{source} is a directory, not an image") from None
    except Exception as error:  # Pillow's decoders raise many kinds of error on damaged or crafted files
        name = "the image" if isinstance(source, bytes) else str(source)
        raise FerError(f"cannot read {name} as an image ({error})") from None


def pil_to_array(image: Image.Image) -> np.ndarray:
    """uint8 RGB or grayscale array of a decoded image. Written to copy as little as it can: a server
    decodes images of up to 25 megapixels, where every extra full-size copy costs 75-200 MB."""
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)  # a rotated copy (never the caller's image, rotated in place)
    if image.mode in ("I;16", "I;16B", "I;16L"):
        # 16-bit grayscale: scale to 8 bits (x * 255 / 65535 is x / 257) instead of letting PIL clip at 255.
        return (np.asarray(image) // 257).astype(np.uint8)
    if image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        high = 65535.0 if values.max() > 255 else 255.0
        if image.mode == "F" and values.max() <= 1.0:
            high = 1.0
        return np.clip(values * (255.0 / high), 0, 255).astype(np.uint8)
    if image.mode in ("L", "RGB"):
        return np.asarray(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return _over_white(image if image.mode == "RGBA" else image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


EXIF_ORIENTATION = 0x0112
_ROWS_PER_BLOCK = 256


def _over_white(rgba: Image.Image) -> np.ndarray:
    """Transparent areas become white, as a viewer shows them, instead of whatever color they hide.
    Composited a block of rows at a time, so that no full-size 16-bit copy is ever made."""
    width, height = rgba.size
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, _ROWS_PER_BLOCK):
        block = np.asarray(rgba.crop((0, top, width, min(height, top + _ROWS_PER_BLOCK))), dtype=np.uint16)
        alpha = block[:, :, 3:4]
        rgb[top : top + _ROWS_PER_BLOCK] = (block[:, :, :3] * alpha + 255 * (255 - alpha) + 127) // 255
    return rgb
