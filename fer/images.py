"""Reading user images into arrays: EXIF orientation applied; grayscale, RGB, RGBA, palette and 16-bit
images all become uint8 RGB (H, W, 3) or grayscale (H, W) arrays.

`sniff_format` names an image format from its first bytes, so that a server can decide what to do with
an upload from its content rather than from the name or content type its sender declared.
"""

import io
import os
import re
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
    ("QOI", 0, b"qoif"),
]
_NETPBM = re.compile(rb"P[1-7]\s+[0-9#]")  # PBM, PGM, PPM, PAM: magic, whitespace, a size or a comment
_TGA_FOOTER = b"TRUEVISION-XFILE.\x00"  # TGA 2.0 ends so; older TGA files have no signature at all


def sniff_format(data: bytes) -> str | None:
    """The image format that `data` starts like ("JPEG", "PNG", "GIF", ...), or None."""
    for name, offset, signature in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature and (name != "WEBP" or data[:4] == b"RIFF"):
            return name
    if _NETPBM.match(data[:16]):
        return "PPM"  # Pillow's name for the Netpbm family
    if data.endswith(_TGA_FOOTER):
        return "TGA"
    text = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()  # SVG is XML text, perhaps with a BOM
    if text.startswith(b"<svg") or (text.startswith((b"<?xml", b"<!doctype svg")) and b"<svg" in text):
        return "SVG"
    return None


def fewest_bytes_for(data: bytes, image_format: str, width: int, height: int) -> int:
    """A lower bound on the size of any `image_format` file of `width` x `height` pixels (0 where none is
    known). A file smaller than this has a header that lies about its size, which the decoder would only
    notice after allocating the full image: 290 MB for a 64x64 JPEG whose header says 5000x4999.

    - JPEG (Huffman-coded, baseline or progressive): every 8x8 block of the first component carries a DC
      code of at least one bit. Arithmetic coding has no such floor: no bound then.
    - PNG: deflate expands at most about 1032:1, so the compressed data is at least 1/1032 of the raw
      scanlines (a filter byte and the packed samples of each row)."""
    if image_format == "JPEG" and _jpeg_is_huffman_coded(data):
        return -(-width // 8) * -(-height // 8) // 8
    if image_format == "PNG" and len(data) >= 26 and data[12:16] == b"IHDR":
        bit_depth, color_type = data[24], data[25]
        samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color_type, 1)
        return height * (1 + -(-width * samples * bit_depth // 8)) // _DEFLATE_MAX_RATIO
    return 0


_DEFLATE_MAX_RATIO = 1032
_JPEG_ARITHMETIC_FRAMES = frozenset({0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})  # SOF9-11, SOF13-15


def _jpeg_is_huffman_coded(data: bytes) -> bool:
    """Walk the JPEG's marker segments to its frame header (SOFn) and tell its entropy coding."""
    position = 2  # after SOI
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header
            return marker not in _JPEG_ARITHMETIC_FRAMES
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return False  # no frame header found: claim nothing (the decoder will refuse the file)


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
