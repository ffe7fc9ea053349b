"""Every kind of bad input gets its status code and the uniform error body, never a 5xx."""

import base64
import struct
import zlib

import numpy as np
import pytest

from tests.api.conftest import encode


def _error(response, status: int, code: str):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def decompression_bomb_png(side: int = 12000) -> bytes:
    """A real PNG of side x side black grayscale pixels: 144 megapixels in about 140 KB."""
    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def test_declared_oversized_body_is_refused_before_reading(make_client):
    client = make_client(max_body_bytes=1000)
    response = client.post("/v1/predict", content=b"x" * 5000, headers={"content-type": "application/json"})
    _error(response, 413, "body_too_large")
    # Refused before routing, and still counted under its route (it was "unmatched").
    assert 'fer_requests_total{route="/v1/predict",status="413"} 1.0' in client.get("/metrics").text


def test_chunked_oversized_body_is_refused(make_client):
    client = make_client(max_body_bytes=10_000)

    def chunks():  # no Content-Length: the size shows only while streaming
        for _ in range(100):
            yield b"0" * 1000

    response = client.post("/v1/predict/batch", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    _error(response, 413, "body_too_large")
    assert 'fer_requests_total{route="/v1/predict/batch",status="413"} 1.0' in client.get("/metrics").text


def test_decompression_bomb_is_refused_before_decoding(client):
    bomb = decompression_bomb_png()
    assert len(bomb) < 300_000
    body = _error(client.post("/v1/predict", files={"file": ("bomb.png", bomb)}), 413, "too_many_pixels")
    assert "12000x12000" in body["error"]["message"]


def test_pixel_limit_is_a_setting(make_client, astronaut_jpeg):
    client = make_client(max_pixels=100 * 100)
    _error(client.post("/v1/predict", files={"file": ("a.jpg", astronaut_jpeg)}), 413, "too_many_pixels")


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"hello, this is text", "not_an_image"),
        (b"", "empty_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "bad_image"),
    ],
)
def test_not_an_image_is_400(client, payload, code):
    _error(client.post("/v1/predict", files={"file": ("x.jpg", payload)}), 400, code)


def test_truncated_jpeg_is_400(client, astronaut_jpeg):
    truncated = astronaut_jpeg[: len(astronaut_jpeg) // 2]
    _error(client.post("/v1/predict", files={"file": ("cut.jpg", truncated)}), 400, "bad_image")


def test_corrupt_jpeg_is_400(client, astronaut_jpeg):
    corrupt = astronaut_jpeg[:3] + bytes(range(256)) * 4  # a JPEG signature, then no valid marker
    response = client.post("/v1/predict", files={"file": ("bad.jpg", corrupt)})
    _error(response, 400, "bad_image")


@pytest.mark.parametrize("image_format", ["GIF", "TIFF"])
def test_formats_outside_the_allow_list_are_415(client, image_format):
    payload = encode(np.zeros((32, 32, 3), dtype=np.uint8), image_format)
    body = _error(client.post("/v1/predict", files={"file": ("x.jpg", payload)}), 415, "unsupported_format")
    assert image_format in body["error"]["message"]


QOI_1X1 = b"qoif\x00\x00\x00\x01\x00\x00\x00\x01\x03\x00" + b"\xfe\x10\x20\x30" + b"\x00" * 7 + b"\x01"
SVG = b'\xef\xbb\xbf<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'


@pytest.mark.parametrize(
    "name, payload",
    [
        ("PPM", encode(np.zeros((32, 32, 3), dtype=np.uint8), "PPM")),
        ("PPM", encode(np.zeros((32, 32), dtype=np.uint8), "PPM")),  # written as a PGM
        ("TGA", encode(np.zeros((32, 32, 3), dtype=np.uint8), "TGA")),
        ("QOI", QOI_1X1),
        ("SVG", SVG),
        ("SVG", b"  <svg viewBox='0 0 9 9'><circle r='4'/></svg>"),
    ],
)
def test_image_formats_told_by_more_than_a_leading_signature_are_415_too(client, name, payload):
    # Before: 400 not_an_image, though the README promises 415 for the image formats it does not take.
    body = _error(client.post("/v1/predict", files={"file": ("x.jpg", payload)}), 415, "unsupported_format")
    assert body["error"]["message"].startswith(f"{name} images are not accepted")


def test_text_that_merely_mentions_svg_is_not_an_image(client):
    payload = b"P1 is a phrase, and <svg> a tag"
    _error(client.post("/v1/predict", files={"file": ("x.txt", payload)}), 400, "not_an_image")


def test_body_that_is_neither_multipart_nor_json_is_415(client, astronaut_jpeg):
    response = client.post("/v1/predict", content=astronaut_jpeg, headers={"content-type": "image/jpeg"})
    _error(response, 415, "unsupported_media_type")


def test_missing_file_field_is_422(client, astronaut_jpeg):
    _error(client.post("/v1/predict", files={"image": ("a.jpg", astronaut_jpeg)}), 422, "invalid_request")
    _error(client.post("/v1/predict", json={"picture": "abc"}), 422, "invalid_request")


def test_two_files_on_the_single_image_route_is_422(client, astronaut_jpeg):
    files = [("file", ("a.jpg", astronaut_jpeg)), ("file", ("b.jpg", astronaut_jpeg))]
    _error(client.post("/v1/predict", files=files), 422, "invalid_request")


@pytest.mark.parametrize("query", ["tta=twelve", "detect=maybe"])
def test_bad_parameter_is_422(client, astronaut_jpeg, query):
    body = _error(
        client.post(f"/v1/predict?{query}", files={"file": ("a.jpg", astronaut_jpeg)}), 422, "invalid_request"
    )
    assert query.split("=")[0] in body["error"]["message"]


def test_invalid_base64_is_400(client):
    _error(client.post("/v1/predict", json={"image": "this is *not* base64"}), 400, "invalid_base64")


def test_invalid_json_is_400(client):
    response = client.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
    _error(response, 400, "invalid_json")


def test_malformed_multipart_is_400(client):
    response = client.post(
        "/v1/predict", content=b"garbage", headers={"content-type": "multipart/form-data"}
    )  # no boundary
    _error(response, 400, "invalid_multipart")


def test_a_multipart_body_of_thousands_of_tiny_parts_is_413(client):
    boundary = "b"
    parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="x{i}"\r\n\r\nv\r\n' for i in range(300))
    body = (parts + f"--{boundary}--\r\n").encode()
    response = client.post(
        "/v1/predict", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    _error(response, 413, "too_many_parts")


def test_unknown_route_and_method_use_the_error_body(client):
    _error(client.get("/v2/predict"), 404, "not_found")
    _error(client.get("/v1/predict"), 405, "method_not_allowed")


class TestApiKey:
    KEY = "s3cret-key"

    @pytest.fixture
    def keyed(self, make_client):
        return make_client(api_key=self.KEY)

    def test_v1_routes_need_the_key(self, keyed, astronaut_jpeg):
        response = keyed.post("/v1/predict", files={"file": ("a.jpg", astronaut_jpeg)})
        _error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        _error(keyed.get("/v1/model"), 401, "unauthorized")

    def test_wrong_key_is_401(self, keyed):
        _error(keyed.get("/v1/model", headers={"X-API-Key": "guess"}), 401, "unauthorized")
        _error(keyed.get("/v1/model", headers={"Authorization": "Bearer guess"}), 401, "unauthorized")

    def test_bearer_and_header_keys_both_work(self, keyed, astronaut_jpeg):
        assert keyed.get("/v1/model", headers={"Authorization": f"Bearer {self.KEY}"}).status_code == 200
        response = keyed.post("/v1/predict", files={"file": ("a.jpg", astronaut_jpeg)}, headers={"X-API-Key": self.KEY})
        assert response.status_code == 200

    def test_probes_stay_open(self, keyed):
        assert keyed.get("/healthz").status_code == 200
        assert keyed.get("/readyz").status_code == 200
        assert keyed.get("/metrics").status_code == 200

    def test_metrics_can_be_made_to_need_the_key_too(self, make_client):
        client = make_client(api_key=self.KEY, metrics_need_key=True)
        _error(client.get("/metrics"), 401, "unauthorized")
        _error(client.get("/metrics", headers={"Authorization": "Bearer guess"}), 401, "unauthorized")
        scraped = client.get("/metrics", headers={"Authorization": f"Bearer {self.KEY}"})
        assert scraped.status_code == 200 and "fer_requests_total" in scraped.text
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_no_route_takes_a_url_or_a_server_path(client):
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                assert parameter["name"] not in {"url", "path", "file_path", "uri"}, (path, parameter)
    # A path in place of the image is just text that is not an image.
    response = client.post("/v1/predict", json={"image": base64.b64encode(b"/etc/passwd").decode()})
    _error(response, 400, "not_an_image")
