"""What an upload's bytes say before a decoder sees them: its format, whether its header's size can be
true, and whether decoding it would cost far more than its pixels.

Every check here reads the encoded bytes only, in C-speed searches or in walks of at most a few hundred
steps, so that it can run on the event loop before a request is admitted. The costs they bound were
found by hostile clients (issue 33), measured on 2 cores with Pillow 13:

- a 5000x5000 progressive JPEG of 1,000 scans (91 KB) took 17 s to decode: each scan walks every block
  of a component, however little data it holds;
- a 10 MB JPEG of empty comment or APPn segments took Pillow 24-32 s to open, one of stray bytes
  between two segments 7-21 s, and a 10 MB PNG of empty chunks 23 s: all are read a segment or a byte
  at a time in Python, on the event loop;
- a 10 MB PNG whose image data is split into 12-byte chunks took 18 s to decode;
- run-length-encoded BMP is decoded in pure Python, up to a loop step per pixel: 21 KB took 6-10 s.
"""

import re

from api.errors import ApiError

# A progressive JPEG from libjpeg (Pillow, OpenCV, cjpeg, jpegtran) has 10 scans in colour and 6 in
# grey; a baseline one has 1 (or one per component). Scan bombs have thousands.
MAX_JPEG_SCANS = 64
# Marker segments of any kind (APPn, COM, DQT, DHT, SOS, ...). A real photo has a dozen or two; one with
# its EXIF, ICC profile and XMP split into 64 KB segments (the most a segment holds) has at most about
# 160 in a 10 MB body.
MAX_JPEG_SEGMENTS = 512
# PNG chunks before the image data (IHDR, palette, colour space, text: a few dozen in real files), and
# overall: at least one per KiB is allowed beyond that (libpng writes the image data in 8 KiB chunks,
# Pillow in 64 KiB ones).
MAX_PNG_CHUNKS_BEFORE_IMAGE = 256
PNG_BYTES_PER_CHUNK = 1024
_BMP_RUN_LENGTH = {1: "RLE8", 2: "RLE4"}

# Bytes between segments that are not a marker: 0xFF fill bytes, or junk that decoders skip. Real files
# have none or a few; Pillow steps over each in Python before the first scan (10 MB: 10 million steps).
MAX_JPEG_STRAY_BYTES = 4096
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI: no length follows
_JPEG_NEXT_MARKER = re.compile(rb"\xff+[^\x00\xff]")  # fill bytes, then a marker (0xFF00 is not one)
# In entropy-coded data a 0xFF byte is followed by 0x00 (a stuffed byte), a restart marker (D0-D7) or
# another 0xFF (fill); anything else is the next marker.
_JPEG_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

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
    """The image format that `data` starts like ("JPEG", "PNG", "GIF", ...), or None. A server decides
    what to do with an upload from its content, never from the name or type its sender declared."""
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


def check_decoding_cost(data: bytes, image_format: str) -> None:
    """Refuse a file whose structure would make decoding cost far more than its pixels: 413
    `too_complex` for too many JPEG scans or segments or PNG chunks, 415 `unsupported_format` for a
    run-length-encoded BMP. A damaged structure is left for the decoder to report."""
    if image_format == "JPEG":
        _check_jpeg_structure(data)
    elif image_format == "PNG":
        _check_png_chunks(data)
    elif image_format == "BMP" and _bmp_compression(data) in _BMP_RUN_LENGTH:
        kind = _BMP_RUN_LENGTH[_bmp_compression(data)]
        raise ApiError(
            415,
            "unsupported_format",
            f"run-length-encoded BMP ({kind}) is not accepted: its decoder is pure Python and slow; "
            "send an uncompressed BMP, or PNG, JPEG or WebP",
        )


def _check_jpeg_structure(data: bytes) -> None:
    """Walk the JPEG as libjpeg does: marker segments, each scan's entropy-coded data up to the next
    marker, stray bytes between segments skipped. Pillow reads everything before the first scan a byte
    or a segment at a time in Python; libjpeg reads the rest."""
    position, segments, scans, stray = 2, 0, 0, 0  # after SOI
    while (found := _JPEG_NEXT_MARKER.search(data, position)) is not None:
        if not scans:
            stray += found.end() - 2 - position  # fill bytes and junk, which Pillow skips a byte at a time
            if stray > MAX_JPEG_STRAY_BYTES:
                raise _too_complex(f"the JPEG has more than {MAX_JPEG_STRAY_BYTES:,} stray bytes between its segments")
        marker, position = data[found.end() - 1], found.end()
        if marker == 0xD9:  # EOI
            return
        if marker in _JPEG_STANDALONE_MARKERS:
            continue
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise _too_complex(f"the JPEG has more than {MAX_JPEG_SEGMENTS} marker segments")
        position += int.from_bytes(data[position : position + 2], "big")
        if marker == 0xDA:  # SOS: a scan's header, then its entropy-coded data up to the next marker
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise _too_complex(f"the JPEG has more than {MAX_JPEG_SCANS} scans (a progressive photo has about 10)")
            after = _JPEG_MARKER_AFTER_SCAN.search(data, position)
            if after is None:
                return  # truncated: the decoder reports it
            position = after.start()


def _check_png_chunks(data: bytes) -> None:
    position, chunks, image_seen = 8, 0, False  # after the signature
    allowed = MAX_PNG_CHUNKS_BEFORE_IMAGE + len(data) // PNG_BYTES_PER_CHUNK
    while position + 8 <= len(data):
        kind = data[position + 4 : position + 8]
        chunks += 1
        image_seen = image_seen or kind == b"IDAT"
        if not image_seen and chunks > MAX_PNG_CHUNKS_BEFORE_IMAGE:
            raise _too_complex(f"the PNG has more than {MAX_PNG_CHUNKS_BEFORE_IMAGE} chunks before its image data")
        if chunks > allowed:
            raise _too_complex(f"the PNG has more than {allowed:,} chunks (its image data in pieces of a few bytes)")
        if kind == b"IEND":
            return
        position += 12 + int.from_bytes(data[position : position + 4], "big")  # length, type, data, CRC


def _bmp_compression(data: bytes) -> int | None:
    """The BITMAPINFOHEADER's compression field; None for the older 12-byte header, which has none."""
    if len(data) < 34 or int.from_bytes(data[14:18], "little") < 40:
        return None
    return int.from_bytes(data[30:34], "little")


def _too_complex(why: str) -> ApiError:
    return ApiError(413, "too_complex", f"{why}; decoding it would cost far more than its pixels")


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
