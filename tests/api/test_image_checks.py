"""api/image_checks.py: files whose structure would make decoding cost far more than their pixels are
refused before a decoder sees them, and what real encoders write is never refused."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from api.errors import ApiError
from api.image_checks import (
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    MAX_JPEG_STRAY_BYTES,
    MAX_PNG_CHUNKS_BEFORE_IMAGE,
    PNG_BYTES_PER_CHUNK,
    check_decoding_cost,
    sniff_format,
)
from bench.hostile_images import (
    chunk_flood_png,
    jpeg_segment,
    png_chunk,
    run_length_bmp,
    scan_bomb_jpeg,
    segment_flood_jpeg,
    split_data_png,
)


def refusal(data: bytes) -> tuple[int, str, str] | None:
    try:
        check_decoding_cost(data, sniff_format(data))
    except ApiError as error:
        return error.status, error.code, error.message
    return None


def pillow(array: np.ndarray, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, image_format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo(astronaut) -> np.ndarray:
    return astronaut


def real_files(photo: np.ndarray) -> dict[str, bytes]:
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    large_icc = bytes(1_000_000)  # split by Pillow into 16 APP2 segments of 64 KB
    return {
        "baseline JPEG": pillow(photo, "JPEG"),
        "progressive JPEG": pillow(photo, "JPEG", progressive=True),
        "progressive grey JPEG": pillow(grey, "JPEG", progressive=True),
        "JPEG with restart markers": pillow(photo, "JPEG", restart_marker_blocks=1),
        "JPEG with a 1 MB ICC profile and EXIF": pillow(photo, "JPEG", icc_profile=large_icc, exif=b"Exif\x00\x00"),
        "OpenCV progressive JPEG": cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
        "Pillow PNG": pillow(photo, "PNG"),
        "OpenCV PNG": cv2.imencode(".png", photo)[1].tobytes(),
        "uncompressed PNG": pillow(photo, "PNG", compress_level=0),
        "BMP": pillow(photo, "BMP"),
        "WebP": pillow(photo, "WEBP"),
    }


def test_what_real_encoders_write_is_never_refused(photo):
    for name, data in real_files(photo).items():
        assert refusal(data) is None, name


def test_a_progressive_jpeg_may_have_up_to_max_scans_and_no_more():
    assert refusal(scan_bomb_jpeg(640, 480, MAX_JPEG_SCANS)) is None
    status, code, message = refusal(scan_bomb_jpeg(640, 480, MAX_JPEG_SCANS + 1))
    assert (status, code) == (413, "too_complex")
    assert f"more than {MAX_JPEG_SCANS} scans" in message


def test_scans_inside_an_embedded_thumbnail_are_not_counted(photo):
    # An EXIF thumbnail is a whole JPEG inside an APP1 segment: its start-of-scan marker is data.
    thumbnail = pillow(photo[:64, :64], "JPEG")
    bomb = scan_bomb_jpeg(640, 480, MAX_JPEG_SCANS)
    with_thumbnail = bomb[:2] + jpeg_segment(0xE1, b"Exif\x00\x00" + thumbnail) + bomb[2:]
    assert refusal(with_thumbnail) is None


def test_scan_bombs_are_refused_at_any_size():
    for width, height, scans in ((5000, 5000, 20_000), (5000, 5000, 3_000), (1000, 1000, 3_000), (48, 48, 500)):
        assert refusal(scan_bomb_jpeg(width, height, scans))[:2] == (413, "too_complex")


def test_a_jpeg_may_have_up_to_max_segments_and_no_more(photo):
    jpeg = pillow(photo[:64, :64], "JPEG")
    segments = jpeg.count(b"\xff\xdb") + jpeg.count(b"\xff\xc4") + 3  # tables, SOF0, SOS, APP0 (JFIF)
    assert refusal(segment_flood_jpeg(jpeg, 4 * (MAX_JPEG_SEGMENTS - segments))) is None
    status, code, message = refusal(segment_flood_jpeg(jpeg, 4 * (MAX_JPEG_SEGMENTS - segments + 1)))
    assert (status, code) == (413, "too_complex") and "marker segments" in message
    for marker in (0xFE, 0xE1, 0xEF):  # comments and application segments alike
        assert refusal(segment_flood_jpeg(jpeg, 1_000_000, marker))[:2] == (413, "too_complex")


def test_a_png_may_have_max_chunks_before_its_image_data_and_no_more():
    def with_chunks_before_image(count: int) -> bytes:
        png = chunk_flood_png(0)
        at = png.index(b"IDAT") - 4
        return png[:at] + png_chunk(b"teXt", b"") * (count - 1) + png[at:]  # IHDR is the first chunk

    assert refusal(with_chunks_before_image(MAX_PNG_CHUNKS_BEFORE_IMAGE)) is None
    status, code, message = refusal(with_chunks_before_image(MAX_PNG_CHUNKS_BEFORE_IMAGE + 1))
    assert (status, code) == (413, "too_complex") and "before its image data" in message
    assert refusal(chunk_flood_png(10_000_000))[:2] == (413, "too_complex")


def test_png_image_data_in_tiny_chunks_is_refused_and_in_libpngs_is_not(photo):
    assert refusal(split_data_png(1_000_000))[:2] == (413, "too_complex")
    # libpng's 8 KiB chunks, and far smaller ones, stay within one chunk per PNG_BYTES_PER_CHUNK.
    whole = pillow(photo, "PNG")
    start = whole.index(b"IDAT") - 4
    length = int.from_bytes(whole[start : start + 4], "big")
    data = whole[start + 8 : start + 8 + length]
    for piece in (8192, 2 * PNG_BYTES_PER_CHUNK):
        pieces = b"".join(png_chunk(b"IDAT", data[i : i + piece]) for i in range(0, len(data), piece))
        resplit = whole[:start] + pieces + whole[start + 12 + length :]
        assert refusal(resplit) is None, piece
        assert Image.open(io.BytesIO(resplit)).size == (512, 512)


def test_run_length_encoded_bmps_are_unsupported(photo):
    status, code, message = refusal(run_length_bmp())
    assert (status, code) == (415, "unsupported_format") and "RLE8" in message
    rle4 = bytearray(run_length_bmp())
    rle4[28], rle4[30] = 4, 2  # 4 bits a pixel, RLE4
    assert "RLE4" in refusal(bytes(rle4))[2]
    assert refusal(pillow(photo, "BMP")) is None
    assert refusal(pillow(photo[:, :, 0], "BMP")) is None  # 8-bit palette, uncompressed


def test_stray_bytes_between_segments_are_skipped_up_to_a_limit(photo):
    # Pillow steps over fill bytes and junk before the first scan one byte at a time, in Python.
    jpeg = pillow(photo[:64, :64], "JPEG")
    at = 4 + int.from_bytes(jpeg[4:6], "big")  # after the first segment (JFIF's APP0)
    for stray in (b"\xff", b"junk", b"\xff\x00"):
        small = jpeg[:at] + stray * (MAX_JPEG_STRAY_BYTES // len(stray)) + jpeg[at:]
        assert refusal(small) is None, stray
        assert Image.open(io.BytesIO(small)).size == (64, 64)
        flood = jpeg[:at] + stray * (1_000_000 // len(stray)) + jpeg[at:]
        assert refusal(flood)[:2] == (413, "too_complex"), stray


def test_junk_after_a_scan_does_not_hide_the_scans_behind_it():
    # libjpeg skips junk between segments in C, so a scan bomb could hide behind a byte of it.
    bomb = scan_bomb_jpeg(640, 480, 3_000)
    first_scan_end = bomb.index(b"\xff\xda", bomb.index(b"\xff\xda") + 2)
    hidden = bomb[:first_scan_end] + b"junk" + bomb[first_scan_end:]
    assert refusal(hidden)[:2] == (413, "too_complex")
