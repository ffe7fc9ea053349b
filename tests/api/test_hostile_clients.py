"""Clients that misbehave on purpose or by accident, against a real uvicorn server on loopback: each
gets a 4xx or is let go, never a 5xx, and nothing they do is logged as a server failure (issue 15)."""

import logging
import socket
import time

import httpx
import pytest

from api import create_app
from api.protocol import HeaderTimeoutH11Protocol
from api.settings import Settings
from tests.api.conftest import metric_value, running_server, seconds_until_closed


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
