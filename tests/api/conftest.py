"""Fixtures for the API tests: real images, a small trained model, an in-process TestClient factory
and a real uvicorn server on loopback."""

import asyncio
import io
import re
import socket
import threading
import time
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image
from skimage import data as skimage_data

from api import create_app
from api.settings import Settings
from fer.predictor import Predictor


def encode(array: np.ndarray, image_format: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real photograph with one frontal face (512x512 RGB), shipped inside scikit-image."""
    return skimage_data.astronaut()


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut) -> bytes:
    return encode(astronaut)


@pytest.fixture(scope="session")
def small_predictor(exported_weights) -> Predictor:
    """The small model trained by the session fixture, without test-time augmentation (fast)."""
    return Predictor.load(exported_weights, device="cpu", tta="none")


@pytest.fixture
def make_client(small_predictor):
    """make_client(**settings) -> a TestClient (lifespan started) of an app serving the small model."""
    from fastapi.testclient import TestClient

    clients = []

    def make(predictor=None, **settings) -> TestClient:
        app = create_app(Settings(**settings), predictor=predictor or small_predictor)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


class SlowPredictor(Predictor):
    """The real small model, made slow: each forward pass first waits `delay_s` (what a big model on a
    busy machine looks like to the server)."""

    def __init__(self, predictor: Predictor, delay_s: float):
        vars(self).update(vars(predictor))  # the same engine, card and settings
        self.delay_s = delay_s

    def predict_pixels(self, pixels, tta=None):
        time.sleep(self.delay_s)
        return super().predict_pixels(pixels, tta)


def metric_value(text: str, name: str) -> float:
    """The value of the sample NAME (with its labels, if any) in a Prometheus /metrics text."""
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} not in metrics"
    return float(match.group(1))


def wait_for_metric(url: str, name: str, at_least: float, limit_s: float = 30) -> None:
    """Wait until the server's /metrics sample NAME reaches AT_LEAST: what a test sets up (requests
    admitted, bytes received) has happened in the server, not only been sent."""
    deadline = time.monotonic() + limit_s
    while metric_value(httpx.get(f"{url}/metrics", timeout=5).text, name) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} stayed under {at_least} for {limit_s} s")
        time.sleep(0.02)


async def admitted(client: httpx.AsyncClient, count: int, limit_s: float = 30) -> None:
    """Wait until the server reports COUNT prediction requests admitted and not yet answered: a fixed
    sleep raced the requests' own upload on a loaded machine, and a later request took the slot first."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while metric_value((await client.get("/metrics")).text, "fer_queue_depth") < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"fewer than {count} requests were admitted after {limit_s} s")
        await asyncio.sleep(0.02)


async def post_all(url: str, payloads: list[bytes], query: str = "detect=false") -> list[httpx.Response]:
    """POST every payload to /v1/predict at once (one connection each); the responses in order."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        requests = [client.post(f"/v1/predict?{query}", files={"file": ("f.png", p)}) for p in payloads]
        return await asyncio.gather(*requests)


def seconds_until_closed(client: socket.socket, trickle: bytes = b"", limit: float = 10) -> float:
    """Send `trickle` a byte every 0.2 s (nothing when empty) until the server closes the connection."""
    started = time.monotonic()
    client.settimeout(0.2)
    for byte in [trickle[i : i + 1] for i in range(len(trickle))] or [b""] * int(limit / 0.2):
        try:
            if byte:
                client.sendall(byte)
            if client.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
    raise AssertionError(f"the connection was still open after {time.monotonic() - started:.1f} s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(app, **config):
    """A real uvicorn server on loopback in a background thread; yields its base URL. `config`: more
    uvicorn.Config settings (`fer serve`'s protocol, say)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def live_server(small_predictor):
    """live_server(**settings) -> base URL of a real uvicorn server; predictor= overrides the model."""
    stack = []

    def start(predictor=None, **settings) -> str:
        context = running_server(create_app(Settings(**settings), predictor=predictor or small_predictor))
        stack.append(context)
        return context.__enter__()

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)
