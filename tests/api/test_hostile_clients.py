"""Clients that misbehave on purpose or by accident, against a real uvicorn server on loopback: each
gets a 4xx or is let go, never a 5xx, and nothing they do is logged as a server failure (issue 15)."""

import base64
import io
import logging
import socket
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from api import create_app
from api.middleware import MAX_HEADER_BYTES, MAX_HEADER_FIELDS
from api.protocol import HeaderTimeoutH11Protocol
from api.settings import Settings
from bench.hostile_images import (
    chunk_flood_png,
    png,
    run_length_bmp,
    scan_bomb_jpeg,
    segment_flood_jpeg,
    split_data_png,
    with_jpeg_size,
)
from tests.api.conftest import encode, metric_value, running_server, seconds_until_closed, wait_for_metric


def test_a_multipart_boundary_over_256_characters_is_400_not_500(live_server, caplog):
    url = live_server()
    boundary = "B" * 257  # python-multipart refuses boundaries over 256 bytes with its own error type
    with caplog.at_level(logging.ERROR, logger="api"):
        response = httpx.post(
            f"{url}/v1/predict",
            content=b"x",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_multipart"
    assert "Boundary length 257" in response.json()["error"]["message"]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def _metrics(url: str) -> str:
    return httpx.get(f"{url}/metrics").text


def _count(text: str, name: str) -> float:
    try:
        return metric_value(text, name)
    except AssertionError:
        return 0.0


def test_a_client_that_disconnects_mid_upload_is_not_a_server_error(live_server, caplog):
    url = live_server()
    host, port = url.removeprefix("http://").split(":")
    with caplog.at_level(logging.ERROR):
        with socket.create_connection((host, int(port))) as client:
            client.sendall(
                b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 40000\r\n\r\n"
                + b"--b\r\n" + b"x" * 94
            )  # fmt: skip
            time.sleep(0.3)  # the request is being read
        deadline = time.monotonic() + 10
        label = 'fer_requests_total{route="/v1/predict",status="499"}'
        while _count(_metrics(url), label) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    text = _metrics(url)
    assert _count(text, label) == 1  # counted as the client's doing (nginx's 499), not as a 500
    assert _count(text, 'fer_requests_total{route="/v1/predict",status="500"}') == 0
    assert _count(text, 'fer_rejections_total{reason="client_disconnected"}') == 1
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.fixture
def fer_serve_protocol(small_predictor, monkeypatch):
    """A real server with `fer serve`'s HTTP protocol and a 1 s header deadline; yields (host, port)."""
    monkeypatch.setenv("FER_HEADER_TIMEOUT_S", "1")
    app = create_app(Settings(), predictor=small_predictor)
    with running_server(app, http=HeaderTimeoutH11Protocol) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def test_a_silent_connection_is_closed_after_the_header_timeout(fer_serve_protocol):
    with socket.create_connection(fer_serve_protocol) as client:
        assert 0.8 < seconds_until_closed(client) < 3


def test_headers_trickled_a_byte_at_a_time_are_cut_off(fer_serve_protocol):
    slowloris = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Padding: " + b"a" * 100
    with socket.create_connection(fer_serve_protocol) as client:
        assert seconds_until_closed(client, trickle=slowloris) < 3  # 30 s of trickle otherwise


def test_prompt_requests_on_a_kept_alive_connection_are_served(fer_serve_protocol):
    host, port = fer_serve_protocol
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        for _ in range(3):  # one connection, kept alive, 0.6 s apart: each request's own deadline counts
            assert client.get("/healthz").status_code == 200
            time.sleep(0.6)
        assert client.get("/v1/model").status_code == 200


# ---- slow uploaders and the upload budget ---------------------------------------------------------


def _start_upload(url: str, declared: int | None, first_bytes: bytes = b"--b\r\n") -> socket.socket:
    """A connection that sends a /v1/predict request's headers and the first bytes of its body, then
    nothing: what a slow (or hostile) uploader looks like to the server."""
    host, port = url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)))
    length = f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked"
    body = first_bytes if declared is not None else b"%x\r\n%s\r\n" % (len(first_bytes), first_bytes)
    head = f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n{length}\r\n\r\n"
    client.sendall(head.encode() + body)
    return client


def _answer(client: socket.socket, timeout: float = 10) -> tuple[int, bytes]:
    """The status and raw bytes of the server's answer on a raw connection."""
    client.settimeout(timeout)
    received = b""
    while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < _content_length(received):
        chunk = client.recv(65536)
        if not chunk:
            break
        received += chunk
    return int(received.split(b" ", 2)[1]), received


def _content_length(response: bytes) -> int:
    for line in response.split(b"\r\n\r\n", 1)[0].lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_a_request_is_served_while_200_slow_uploaders_are_connected(live_server, astronaut_jpeg):
    # Before the fix the body was read inside an inference slot: 128 slow uploads held all of them and
    # every other request got 503 until they were cut off.
    url = live_server()
    slow = [_start_upload(url, declared=40_000) for _ in range(200)]
    try:
        time.sleep(0.5)  # every slow request has reached the app
        started = time.monotonic()
        response = httpx.post(f"{url}/v1/predict", files={"file": ("a.jpg", astronaut_jpeg)}, timeout=10)
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < 3
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert metric_value(_metrics(url), "fer_queue_depth") == 0  # none of them holds a slot
    finally:
        for client in slow:
            client.close()


def test_a_body_not_received_by_the_body_deadline_gets_408(live_server, caplog):
    url = live_server(body_timeout_s=1)
    with caplog.at_level(logging.ERROR):
        with _start_upload(url, declared=40_000) as client:
            started = time.monotonic()
            status, answer = _answer(client)
            waited = time.monotonic() - started
    assert status == 408 and b"body_timeout" in answer
    assert 0.8 < waited < 4
    text = _metrics(url)
    assert _count(text, 'fer_requests_total{route="/v1/predict",status="408"}') == 1
    assert _count(text, 'fer_rejections_total{reason="body_timeout"}') == 1
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_declared_bodies_beyond_the_upload_budget_get_503_at_once(live_server, astronaut_jpeg):
    url = live_server(upload_budget_bytes=100_000, body_timeout_s=2)
    with _start_upload(url, declared=80_000, first_bytes=b"--b\r\n" + b"x" * 79_000) as holder:
        wait_for_metric(url, "fer_upload_budget_bytes_held", 79_000)  # its bytes are in
        started = time.monotonic()
        with _start_upload(url, declared=40_000) as late:
            status, answer = _answer(late)
        assert status == 503 and b"upload_budget_full" in answer and b"retry-after: 1" in answer.lower()
        assert time.monotonic() - started < 1  # refused before its body is read, not after a wait
        # A small request still fits beside the held 80,000 bytes.
        small = httpx.post(f"{url}/v1/predict", files={"file": ("a.jpg", astronaut_jpeg[:15_000])})
        assert small.status_code == 400  # a truncated JPEG, but read and answered: the budget let it in
        assert _answer(holder)[0] == 408  # the holder is cut off at its body deadline...
    response = httpx.post(f"{url}/v1/predict", content=b"x" * 40_000, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 415  # ...and its 80,000 bytes are given back: a 40,000-byte body is read


def test_connections_that_send_only_headers_hold_none_of_the_upload_budget(live_server, astronaut_jpeg):
    # Before: each reserved its whole declared length, so 7 silent 10 MB declarations (64 MB budget)
    # made every real upload get 503 until their body deadline, and again for as long as they came back.
    url = live_server(upload_budget_bytes=len(astronaut_jpeg) + 10_000)
    silent = [_start_upload(url, declared=len(astronaut_jpeg), first_bytes=b"") for _ in range(7)]
    try:
        time.sleep(0.3)  # every one has reached the app
        for _ in range(3):
            response = httpx.post(f"{url}/v1/predict", files={"file": ("a.jpg", astronaut_jpeg)}, timeout=10)
            assert response.status_code == 200, response.text
    finally:
        for client in silent:
            client.close()


def _framed_two_ways(server: tuple[str, int], head: bytes) -> tuple[int, bytes, float]:
    """Send `head` and then 64 KB of chunks; the status, the answer and the seconds until the server
    closed the connection."""
    with socket.create_connection(server) as client:
        client.sendall(head)
        try:
            for _ in range(16):
                client.sendall(b"1000\r\n" + b"{" * 4096 + b"\r\n")
        except OSError:
            pass  # the server has answered and closed: the rest is not read
        status, answer = _answer(client)
        return status, answer, seconds_until_closed(client)


def test_a_body_framed_by_both_length_and_chunks_is_refused_unread(fer_serve_protocol, caplog):
    # Before: `Content-Length: 0` made the intake treat the body as complete while h11 read it by its
    # chunks, so no size limit, budget or deadline applied (a 768 MB chunked body was read whole).
    head = (
        b"POST /v1/predict?detect=false HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with caplog.at_level(logging.ERROR):
        status, answer, closing = _framed_two_ways(fer_serve_protocol, head)
    assert status == 400 and b"ambiguous_framing" in answer and b"connection: close" in answer.lower()
    assert closing < 2
    host, port = fer_serve_protocol
    assert _count(_metrics(f"http://{host}:{port}"), 'fer_rejections_total{reason="ambiguous_framing"}') == 1
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def _raw_request(server: tuple[str, int], request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(server) as client:
        client.sendall(request)  # in one write: h11 bounds only a header block that arrives in pieces
        return _answer(client)


@pytest.mark.parametrize(
    "headers",
    [
        [b"X-Big: " + b"a" * 100_000],  # one 100 KB header
        [b"X-%d: v" % i for i in range(5000)],  # 5,000 headers (39 KB)
        [b"X-%d: v" % i for i in range(MAX_HEADER_FIELDS + 1)],  # one field too many
        [b"X-Big: " + b"a" * MAX_HEADER_BYTES],  # just past the size in all
    ],
    ids=["100 KB header", "5,000 headers", "101 headers", "32 KB header"],
)
def test_too_many_or_too_large_headers_get_431(fer_serve_protocol, headers):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
    status, answer = _raw_request(fer_serve_protocol, request)
    assert status == 431 and b"headers_too_large" in answer and b"connection: close" in answer.lower()


def test_headers_within_the_limits_are_served(fer_serve_protocol):
    fields = [b"X-%d: %s" % (i, b"a" * 200) for i in range(MAX_HEADER_FIELDS - 1)]  # 99 + Host, 21 KB
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    assert _raw_request(fer_serve_protocol, request)[0] == 200


def test_a_chunked_body_under_http_1_0_is_refused(fer_serve_protocol):
    head = b"POST /v1/predict HTTP/1.0\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, answer, _ = _framed_two_ways(fer_serve_protocol, head)
    assert status == 400 and b"Transfer-Encoding under HTTP/1.0" in answer


def test_a_chunked_body_is_counted_against_the_budget_as_it_arrives(live_server):
    url = live_server(upload_budget_bytes=50_000)

    def chunks():
        for _ in range(10):
            yield b"x" * 10_000

    response = httpx.post(
        f"{url}/v1/predict", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 503 and response.json()["error"]["code"] == "upload_budget_full"
    assert (
        httpx.post(
            f"{url}/v1/predict?detect=false", content=b"{}", headers={"Content-Type": "application/json"}
        ).status_code
        == 422
    )


# ---- images that lie, and images that are big on purpose ------------------------------------------


def test_a_jpeg_whose_header_claims_far_more_pixels_than_its_data_is_bad_image(live_server, astronaut):
    # Before the fix it was decoded at 5000x4999 (290 MB) and answered 200 with no faces.
    url = live_server()
    liar = with_jpeg_size(encode(astronaut[:64, :64]), 5000, 4999)
    response = httpx.post(f"{url}/v1/predict", files={"file": ("liar.jpg", liar)})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_image"
    assert "cannot hold 5000x4999 pixels" in response.json()["error"]["message"]


def test_a_png_whose_header_claims_far_more_pixels_than_its_data_is_bad_image(live_server):
    url = live_server()
    liar = png(5000, 5000, 16, 6, (b"\x00" + b"\x7f" * 8 * 64) * 64)  # 64x64 rows under a 5000x5000 header
    response = httpx.post(f"{url}/v1/predict?detect=false", files={"file": ("liar.png", liar)})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_image"


def test_pixel_bombs_within_the_limits_are_decoded_within_the_decode_budget(live_server):
    # One-colour 16-bit RGBA PNGs: 3,000 x 3,000 pixels in 40 KB each. Four at once over a budget of
    # one image's pixels: decoded one after another, and every one answered.
    url = live_server(decode_budget_pixels=9_000_000, request_timeout_s=60)  # the budget is tested, not speed
    bomb = png(3000, 3000, 16, 6, (b"\x00" + b"\x12\x34" * 4 * 3000) * 3000)
    assert len(bomb) < 100_000
    files = [("files", (f"bomb{i}.png", bomb)) for i in range(4)]
    response = httpx.post(f"{url}/v1/predict/batch?detect=false", files=files, timeout=60)
    assert response.status_code == 200, response.text
    assert [result["image"] for result in response.json()["results"]] == [{"width": 3000, "height": 3000}] * 4
    assert metric_value(_metrics(url), "fer_decode_budget_pixels_held") == 0


def test_a_batch_whose_images_total_more_pixels_than_a_request_may_have_is_413(live_server):
    # 16 such bombs are 3.2 MB on the wire and 400 megapixels to decode: more than the deadline allows.
    url = live_server(max_request_pixels=20_000_000)
    bomb = png(3000, 3000, 16, 6, (b"\x00" + b"\x12\x34" * 4 * 3000) * 3000)
    files = [("files", (f"bomb{i}.png", bomb)) for i in range(3)]
    response = httpx.post(f"{url}/v1/predict/batch", files=files, timeout=60)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_pixels"
    assert "27,000,000 pixels" in response.json()["error"]["message"]


# ---- JSON bodies built to cost more than their size ----------------------------------------------------


def test_a_json_batch_of_a_million_empty_strings_is_refused_before_it_is_parsed(live_server):
    # Before: 3.4 million entries (10 MB) took 9.4 s of the event loop (healthz waited as long) and 358 MB.
    url = live_server()
    body = b'{"images": [' + b'"",' * 1_000_000 + b'""]}'
    started = time.monotonic()
    response = httpx.post(
        f"{url}/v1/predict/batch", content=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_images"
    assert "more values than 16 images can have" in response.json()["error"]["message"]
    assert time.monotonic() - started < 3
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_a_batch_of_data_urls_has_room_for_every_comma_it_needs(live_server, astronaut_jpeg):
    url = live_server(max_batch_images=4)
    image = "data:image/jpeg;base64," + base64.b64encode(astronaut_jpeg[:2000]).decode()
    response = httpx.post(f"{url}/v1/predict/batch?detect=false", json={"images": [image] * 4}, timeout=30)
    assert response.status_code == 200 and len(response.json()["results"]) == 4


# ---- images that cost far more to decode than their pixels ------------------------------------------


@pytest.fixture(scope="module")
def decoding_bombs(astronaut) -> dict[str, tuple[bytes, int]]:
    """Each with the status it gets. Before the checks, each held a core (and the event loop, for the
    floods) for seconds: a 5000x5000 JPEG of 20,000 scans got 504 at 10 s, and so did a photo beside it."""
    jpeg = encode(astronaut[:64, :64])
    after_app0 = 4 + int.from_bytes(jpeg[4:6], "big")
    return {
        "20,000-scan JPEG": (scan_bomb_jpeg(5000, 5000, 20_000), 413),
        "3,000-scan JPEG": (scan_bomb_jpeg(5000, 5000, 3_000), 413),
        "comment-segment flood": (segment_flood_jpeg(jpeg, 1_000_000), 413),
        "stray bytes between segments": (jpeg[:after_app0] + b"\xff" * 1_000_000 + jpeg[after_app0:], 413),
        "PNG chunk flood": (chunk_flood_png(1_000_000), 413),
        "PNG image data in 1-byte chunks": (split_data_png(1_000_000), 413),
        "run-length-encoded BMP": (run_length_bmp(), 415),
    }


def _post_image(url: str, data: bytes, query: str = "") -> httpx.Response:
    return httpx.post(f"{url}/v1/predict{query}", files={"file": ("upload", data)}, timeout=30)


def test_images_built_to_cost_far_more_than_their_pixels_are_refused_undecoded(live_server, decoding_bombs):
    url = live_server()
    for name, (bomb, status) in decoding_bombs.items():
        response = _post_image(url, bomb)
        expected = "too_complex" if status == 413 else "unsupported_format"
        assert (response.status_code, response.json()["error"]["code"]) == (status, expected), name
    assert metric_value(_metrics(url), "fer_decode_budget_pixels_held") == 0


def test_photos_sent_beside_a_stream_of_decoding_bombs_are_all_answered(live_server, decoding_bombs, astronaut_jpeg):
    url = live_server()
    stop, bomb_statuses = threading.Event(), []

    def send_bombs() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                for bomb, _ in decoding_bombs.values():
                    bomb_statuses.append(client.post("/v1/predict", files={"file": ("b", bomb)}).status_code)

    senders = [threading.Thread(target=send_bombs) for _ in range(3)]
    for sender in senders:
        sender.start()
    try:
        photos = [_post_image(url, astronaut_jpeg) for _ in range(10)]
    finally:
        stop.set()
        for sender in senders:
            sender.join()
    assert [response.status_code for response in photos] == [200] * 10
    assert len(bomb_statuses) >= len(decoding_bombs) and set(bomb_statuses) <= {413, 415}


# 64 megapixels, above the default limit of 25, so that the decode lasts several times the fixed costs
# of a request (upload, routing, polling the metrics) on a fast idle CPU as on a slow busy one: the
# 16-megapixel photo this test used took 1.7 s on 2 busy cores but 0.13 s on CI's, less than its timeout.
LARGE_PHOTO_SIDE = 8000


@pytest.fixture(scope="module")
def large_progressive_photo(astronaut) -> bytes:
    """The astronaut at 8000x8000 as a progressive JPEG (about 5 MB): read by Pillow 64 KB at a time."""
    side = LARGE_PHOTO_SIDE
    return encode(np.asarray(Image.fromarray(astronaut).resize((side, side))), progressive=True, quality=90)


def test_a_decode_that_outlives_its_request_is_stopped(live_server, large_progressive_photo):
    # Before: the decoding thread went on for 5 s after its 504, holding a core and the decode budget.
    # The deadline is a fifth of a whole decode on this machine; a decode left running would hold the
    # budget for the other four fifths, one that stops at its next read for about 1/80 more.
    started = time.monotonic()
    Image.open(io.BytesIO(large_progressive_photo)).load()
    full_decode_s = time.monotonic() - started
    pixels = LARGE_PHOTO_SIDE**2
    url = live_server(
        request_timeout_s=full_decode_s / 5,
        max_pixels=pixels,
        max_request_pixels=pixels,
        decode_budget_pixels=pixels,
    )
    response = _post_image(url, large_progressive_photo, "?detect=false")
    assert response.status_code == 504, response.text
    answered = time.monotonic()
    while metric_value(_metrics(url), "fer_decode_budget_pixels_held") > 0:
        time.sleep(0.005)
    held_after_answer_s = time.monotonic() - answered
    assert metric_value(_metrics(url), "fer_abandoned_decodes_total") == 1  # started, then stopped
    assert held_after_answer_s < 0.4 * full_decode_s  # given back long before the decode could end


def test_slow_images_cannot_lock_large_photos_out_of_an_idle_server(live_server, decoding_bombs, astronaut):
    # The probe's sequence: four slow 25-megapixel JPEGs, then a 25-megapixel photo, which got
    # "503 overloaded (0.0 s of work is queued)" for good. The scan bombs it used are refused now; JPEGs
    # of as many scans as are allowed are still slow, and priced so. An idle server admits the photo.
    url = live_server(max_expected_wait_s=1.0)
    for _ in range(4):
        assert _post_image(url, decoding_bombs["3,000-scan JPEG"][0]).status_code == 413
    slowest_allowed = scan_bomb_jpeg(5000, 5000, 64)
    for _ in range(4):
        assert _post_image(url, slowest_allowed).status_code == 200
    photo = encode(np.asarray(Image.fromarray(astronaut).resize((5000, 5000))), quality=85)
    response = _post_image(url, photo)
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"width": 5000, "height": 5000}
