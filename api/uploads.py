"""Getting images out of a request and into arrays, with every check a public server needs.

A request carries images as multipart file fields or as base64 strings in JSON. The body is already
bounded by `BodyIntake` (api/middleware.py), so it is parsed in memory: nothing is spooled to a temporary file, and no
upload ever touches the disk. Formats are told apart by their bytes, never by a declared name or
content type, and an image's pixel count and structure are checked before it is decoded
(api/image_checks.py). A decode whose request was abandoned stops at its next read.
"""

import base64
import binascii
import io
import json
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import ApiError
from api.image_checks import check_decoding_cost, fewest_bytes_for, sniff_format
from fer.images import pil_to_array

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
MAX_MULTIPART_PARTS = 256  # far more than any real request; stops a body of thousands of tiny parts
JSON_SPARE_COMMAS = 64  # commas a JSON request may hold beyond two per image (separators, data: URLs)
_BASE64_WHITESPACE = b" \n\r\t"


@dataclass
class Upload:
    field: str
    raw: bytes | str  # multipart bytes, or the base64 text from JSON (decoded on demand, so that in a
    # batch one bad string fails only its own image)

    def content(self) -> bytes:
        if isinstance(self.raw, str):
            self.raw = decode_base64(self.raw)  # once: admission and prediction both read it
        return self.raw

    def pixels(self, max_pixels: int) -> int:
        """Width x height from the image's header, without decoding it. Raises what `open_image` raises."""
        with open_image(self.content(), max_pixels) as image:
            return image.width * image.height

    def declared_pixels(self, max_pixels: int) -> int:
        """`pixels`, or 0 for an image `open_image` refuses (in a batch, the error is reported when the
        image is decoded, for that image alone)."""
        try:
            return self.pixels(max_pixels)
        except ApiError:
            return 0


# ---- request bodies --------------------------------------------------------------------------------


def read_uploads(
    body: bytes | bytearray, content_type: str, file_field: str, json_field: str, max_images: int
) -> list[Upload]:
    """All uploads in a multipart body (its `file_field` parts) or a JSON body (`json_field`: one base64
    string, or a list of them). 413 for a JSON body that cannot hold `max_images` or fewer."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        parts = [part for part in parse_multipart(body, content_type) if part.field == file_field]
        if not parts:
            raise ApiError(422, "invalid_request", f"multipart field {file_field!r} is missing")
        return parts
    if media_type == "application/json" or media_type.endswith("+json"):
        # Counted before parsing: {"images": ["", "", ...]} of 3.4 million entries (10 MB) took json.loads
        # 10 s of the event loop and 358 MB. A list of n values has n - 1 commas, and a request has only
        # a comma per image and one per data: URL beyond those, and a few for other fields.
        if body.count(b",") > 2 * max_images + JSON_SPARE_COMMAS:
            raise ApiError(413, "too_many_images", f"the JSON body lists more values than {max_images} images can have")
        return [Upload(json_field, text) for text in _json_images(body, json_field)]
    raise ApiError(
        415,
        "unsupported_media_type",
        f"send multipart/form-data (field {file_field!r}) or application/json ({{{json_field!r}: base64}}), "
        f"not {media_type or 'a body without a content type'}",
    )


def parse_multipart(body: bytes | bytearray, content_type: str) -> list[Upload]:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(400, "invalid_multipart", "the multipart content type has no boundary")
    uploads: list[Upload] = []
    part = {"headers": {}, "field": b"", "value": b"", "data": bytearray()}

    def on_part_begin():
        part.update(headers={}, field=b"", value=b"", data=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def on_header_end():
        part["headers"][part["field"].lower()] = part["value"]
        part["field"], part["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part["data"] += data[start:end]

    def on_part_end():
        if len(uploads) >= MAX_MULTIPART_PARTS:
            raise ApiError(413, "too_many_parts", f"more than {MAX_MULTIPART_PARTS} multipart parts")
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        uploads.append(Upload(disposition.get(b"name", b"").decode("latin-1"), bytes(part["data"])))

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as error:  # a malformed body, and also a boundary over 256 bytes (the constructor's)
        raise ApiError(400, "invalid_multipart", f"the multipart body is malformed ({error})") from None
    return uploads


def _json_images(body: bytes | bytearray, field: str) -> list[str]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    value = document.get(field) if isinstance(document, dict) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    raise ApiError(422, "invalid_request", f"JSON body needs {field!r}: a base64 string (or a list of them)")


def decode_base64(text: str) -> bytes:
    """Standard base64, with or without a data: URL prefix (what a browser's FileReader gives)."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        data = text.encode("ascii")
        # Line-wrapped base64: the whitespace deleted in one copy. Splitting the text into words made a
        # 10 MB string with a space every 2 characters a list of 3 million strings (+240 MB).
        if any(space in data for space in _BASE64_WHITESPACE):
            data = data.translate(None, _BASE64_WHITESPACE)
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError
        raise ApiError(400, "invalid_base64", "the image is not valid base64") from None


# ---- images ----------------------------------------------------------------------------------------


def open_image(data: bytes, max_pixels: int, abandoned: threading.Event | None = None) -> Image.Image:
    """Encoded bytes -> an image whose header is read and checked, its pixels not yet decoded (cheap: the
    caller can budget for `width * height` before `to_array`). Raises ApiError: 400 not an image,
    damaged, or a header that claims more pixels than its bytes can hold; 413 too many pixels, or a
    structure that would cost far more to decode than its pixels; 415 a format outside ALLOWED_FORMATS.
    Once `abandoned` is set, `to_array` stops decoding at its next read (DecodeAbandoned)."""
    if not data:
        raise ApiError(400, "empty_image", "the uploaded image is empty")
    image_format = sniff_format(data)
    if image_format is None:
        raise ApiError(400, "not_an_image", "the upload is not an image")
    if image_format not in ALLOWED_FORMATS:
        raise ApiError(
            415, "unsupported_format", f"{image_format} images are not accepted; send {', '.join(ALLOWED_FORMATS)}"
        )
    check_decoding_cost(data, image_format)
    try:
        # Only the sniffed format's decoder ever sees the bytes, and open() reads just the header.
        image = Image.open(_EncodedImage(data, abandoned or threading.Event()), formats=[image_format])
    except Image.DecompressionBombError:
        raise _too_many_pixels(max_pixels) from None
    except Exception:  # Pillow's decoders raise many kinds of error on damaged or crafted files
        raise ApiError(400, "bad_image", f"the {image_format} image is damaged and cannot be read") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise _too_many_pixels(max_pixels, width, height)
    if len(data) < fewest_bytes_for(data, image_format, width, height):
        image.close()
        message = f"the {image_format} image is damaged: {len(data):,} bytes cannot hold {width}x{height} pixels"
        raise ApiError(400, "bad_image", message)
    return image


class DecodeAbandoned(Exception):
    """Raised in a decoding thread whose request nobody waits for any more."""


class _EncodedImage(io.BytesIO):
    """The bytes Pillow decodes from. Pillow feeds its C decoders a block (64 KB) at a time and reads
    between blocks; once `abandoned` is set, the next read raises, and the decode ends there instead of
    holding a core and the decode budget for seconds after its request was answered 504."""

    def __init__(self, data: bytes, abandoned: threading.Event):
        super().__init__(data)
        self.abandoned = abandoned

    def read(self, size: int | None = -1) -> bytes:
        if self.abandoned.is_set():
            raise DecodeAbandoned
        return super().read(size)


def to_array(image: Image.Image) -> np.ndarray:
    """Decode an image from `open_image` -> uint8 RGB or grayscale array, EXIF orientation applied.
    Raises ApiError 400 for a truncated or damaged file; DecodeAbandoned once its request was abandoned."""
    with image:
        try:
            image.load()
            return pil_to_array(image)
        except DecodeAbandoned:
            raise
        except Exception:
            raise ApiError(400, "bad_image", f"the {image.format} image is truncated or damaged") from None


def _too_many_pixels(max_pixels: int, width: int | None = None, height: int | None = None) -> ApiError:
    size = f" ({width}x{height})" if width else ""
    return ApiError(413, "too_many_pixels", f"the image{size} has more than {max_pixels:,} pixels")
