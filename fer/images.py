"""Reading user images into arrays: EXIF orientation applied; grayscale, RGB, RGBA, palette and 16-bit
images all become uint8 RGB (H, W, 3) or grayscale (H, W) arrays.

`sniff_format` names an image format from its first bytes, so that a server can decide what to do with
an upload from its content rather than from the name or content type its sender declared.
"""

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

# Signatures (offset, bytes) of the formats people upload, Pillow's format name first.
_SIGNATURES = [
    ("JPEG", 0, b"\xff\xd8\xff"),
    ("PNG", 0, b"\x89PNG\r\n\x1a\n"),
    ("WEBP", 8, b"WEBP"),  # after b"RIFF" and a 4-byte length
    ("BMP", 0, b"BM"),
    ("GIF", 0, b"GIF8"),
    ("TIFF", 0, b"II*\x00"),
    ("TIFF", 0, b"MM\x00*"),
    ("ICO", 0, b"\x00\x00\x01\x00"),
    ("PSD", 0, b"8BPS"),
    ("JPEG2000", 0, b"\x00\x00\x00\x0cjP  "),
    ("HEIF", 4, b"ftyp"),  # HEIC and AVIF photos from phones
    ("PDF", 0, b"%PDF"),
]


def sniff_format(data: bytes) -> str | None:
    """The image format that `data` starts like ("JPEG", "PNG", "GIF", ...), or None."""
    for name, offset, signature in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature and (name != "WEBP" or data[:4] == b"RIFF"):
            return name
    return None


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
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float grayscale: scale to 8 bits instead of letting PIL clip at 255.
        values = np.asarray(image, dtype=np.float64)
        high = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        if image.mode == "F" and values.max() <= 1.0:
            high = 1.0
        return np.clip(values * (255.0 / high), 0, 255).astype(np.uint8)
    if image.mode == "L":
        return np.asarray(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, as a viewer shows them, instead of whatever color they hide.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))
