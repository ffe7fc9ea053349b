"""Property tests: whatever bytes arrive, the answer is 200 or a 4xx with the error body, never a 5xx."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import encode

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def shared_client(small_predictor):
    from fastapi.testclient import TestClient

    from api import create_app
    from api.settings import Settings

    with TestClient(create_app(Settings(max_pixels=4_000_000), predictor=small_predictor)) as client:
        yield client


def _assert_handled(response):
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.json()["error"]["code"]


@SETTINGS
@given(payload=st.binary(max_size=4096))
def test_arbitrary_bytes_never_cause_a_server_error(shared_client, payload):
    _assert_handled(shared_client.post("/v1/predict", files={"file": ("x", payload)}))


@SETTINGS
@given(
    prefix=st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF\x00\x00\x00\x00WEBP"]),
    rest=st.binary(max_size=2048),
)
def test_bytes_behind_a_real_signature_never_cause_a_server_error(shared_client, prefix, rest):
    _assert_handled(shared_client.post("/v1/predict", files={"file": ("x", prefix + rest)}))


@pytest.fixture(scope="module")
def valid_jpeg(astronaut):
    return encode(astronaut[40:200, 150:310], "JPEG", quality=80)


@SETTINGS
@given(data=st.data())
def test_mutated_jpegs_never_cause_a_server_error(shared_client, valid_jpeg, data):
    mutated = bytearray(valid_jpeg)
    for _ in range(data.draw(st.integers(1, 20), label="mutations")):
        position = data.draw(st.integers(0, len(mutated) - 1), label="position")
        mutated[position] = data.draw(st.integers(0, 255), label="byte")
    cut = data.draw(st.integers(1, len(mutated)), label="length")
    detect = data.draw(st.booleans(), label="detect")
    _assert_handled(
        shared_client.post(f"/v1/predict?detect={str(detect).lower()}", files={"file": ("m.jpg", bytes(mutated[:cut]))})
    )


@SETTINGS
@given(text=st.text(max_size=200))
def test_arbitrary_json_strings_never_cause_a_server_error(shared_client, text):
    _assert_handled(shared_client.post("/v1/predict", json={"image": text}))
