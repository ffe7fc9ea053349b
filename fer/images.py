"""Reading user images into arrays: EXIF orientation applied; grayscale, RGB, RGBA, palette and 16-bit
images all become uint8 RGB (H, W, 3) or grayscale (H, W) arrays."""

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer.errors import FerError


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
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
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
