"""Images built to cost a server more than their size says: the payloads of the hostile-client tests
(tests/api/test_hostile_clients.py) and of the soak (bench/api_hostile.py). Each is written byte by
byte, so that it is exactly the structure it is named for, whatever the installed encoders do.
"""

import struct
import zlib

# ---- PNG ------------------------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, bit_depth: int, color_type: int, scanlines: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(scanlines, 9))
        + png_chunk(b"IEND", b"")
    )


def pixel_bomb_png(side: int = 5000) -> bytes:
    """One-colour side x side 16-bit RGBA PNG: about 200 KB for 25 megapixels."""
    return png(side, side, 16, 6, (b"\x00" + b"\x12\x34\x56\x78" * 2 * side) * side)


def chunk_flood_png(size: int = 10_000_000) -> bytes:
    """A 64x64 grey PNG preceded by `size` bytes of empty ancillary chunks, which Pillow reads one at a
    time in Python when it opens the file (23 s for 10 MB on 2 cores)."""
    head = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0))
    flood = png_chunk(b"teXt", b"") * (size // 12)
    return head + flood + png_chunk(b"IDAT", zlib.compress(b"\x00" * 65 * 64)) + png_chunk(b"IEND", b"")


def split_data_png(size: int = 10_000_000) -> bytes:
    """A 64x64 grey PNG whose image data is followed by `size` bytes of empty IDAT chunks, each a Python
    step of Pillow's decoder (18 s for 10 MB)."""
    head = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0))
    data = png_chunk(b"IDAT", zlib.compress(b"\x00" * 65 * 64))
    return head + data + png_chunk(b"IDAT", b"") * (size // 12) + png_chunk(b"IEND", b"")


# ---- JPEG -----------------------------------------------------------------------------------------


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def with_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The baseline JPEG with its frame header (SOF0) rewritten to claim width x height."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]


def scan_bomb_jpeg(width: int, height: int, scans: int) -> bytes:
    """A valid grey progressive JPEG of `scans` scans: one DC scan, then AC scans of one coefficient each
    that say only "every block is zero" in a few bytes (end-of-band runs of up to 32,767 blocks). Each
    scan still walks every block: a 5000x5000 one of 1,000 scans is 91 KB and took Pillow 17 s to decode."""
    blocks = -(-width // 8) * -(-height // 8)
    runs = []
    while sum(runs) < blocks:
        runs.append(min(32767, max(16384, blocks - sum(runs))))
    one_code = bytes([1] + [0] * 15)  # a Huffman table of a single 1-bit code
    ac_scan = jpeg_segment(0xDA, b"\x01\x01\x00\x01\x01\x00") + _entropy_coded(
        "".join("0" + format(run - 16384, "014b") for run in runs)  # EOB14 (symbol 0xE0) + 14 bits
    )
    return b"".join(
        [
            b"\xff\xd8",
            jpeg_segment(0xDB, b"\x00" + b"\x01" * 64),
            jpeg_segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"),
            jpeg_segment(0xC4, b"\x00" + one_code + b"\x00"),  # DC: difference category 0 only
            jpeg_segment(0xC4, b"\x10" + one_code + b"\xe0"),  # AC: end-of-band runs only
            jpeg_segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + _entropy_coded("0" * blocks),
            ac_scan * (scans - 1),
            b"\xff\xd9",
        ]
    )


def segment_flood_jpeg(jpeg: bytes, size: int = 10_000_000, marker: int = 0xFE) -> bytes:
    """The JPEG with `size` bytes of empty segments (comments by default) after its start marker, which
    Pillow parses one at a time in Python when it opens the file (24-32 s for 10 MB)."""
    return jpeg[:2] + jpeg_segment(marker, b"") * (size // 4) + jpeg[2:]


def _entropy_coded(bits: str) -> bytes:
    bits += "1" * (-len(bits) % 8)  # padded with 1s, as the standard asks
    data = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return data.replace(b"\xff", b"\xff\x00")  # byte stuffing


# ---- BMP ------------------------------------------------------------------------------------------


def run_length_bmp(width: int = 5000, height: int = 5000) -> bytes:
    """An 8-bit run-length-encoded (RLE8) BMP whose every row is one pixel and an end-of-line code:
    4 bytes a row, which Pillow's pure-Python decoder pads out a pixel at a time (21 KB: 6-10 s)."""
    rows = b"\x01\x00\x00\x00" * height + b"\x00\x01"  # 1 pixel of colour 0, end of line; end of bitmap
    palette = b"\x00\x00\x00\x00" * 256
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + palette + rows
