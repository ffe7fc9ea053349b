"""Inference on the GPU: the Predictor's half precision against the CPU's float32, the API's dynamic
batching under concurrent requests, face detection (MTCNN) on the device and gathered across requests,
and the exported ONNX file on ONNX Runtime's CUDA provider."""

import asyncio

import httpx
import numpy as np
import pytest

from api import create_app
from api.service import gathers_detection
from api.settings import Settings
from fer.labels import EMOTIONS
from fer.predictor import Predictor
from tests.api.conftest import encode, metric_value, post_all, running_server

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Face-sized crops of a real photograph at many offsets and scales (not noise: half precision
    must keep the answers on inputs like the ones users send)."""
    from PIL import Image
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).convert("L"))
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(256):
        side = int(rng.integers(90, 200))
        x, y = (int(v) for v in rng.integers(0, 512 - side, size=2))
        crops.append(np.asarray(Image.fromarray(photo[y : y + side, x : x + side]).resize((48, 48))))
    return np.stack(crops)


@pytest.mark.parametrize("tta", ["none", "tencrop"])
def test_half_precision_agrees_with_the_cpu(exported_weights, faces, device, tta):
    on_device = Predictor.load(exported_weights, device=device, tta=tta, backend="torch")
    on_cpu = Predictor.load(exported_weights, device="cpu", tta=tta, backend="torch")
    if device == "cuda":
        assert on_device.precision == "float16"
    got, expected = on_device.predict_pixels(faces), on_cpu.predict_pixels(faces)
    assert got.shape == expected.shape == (len(faces), len(EMOTIONS))
    assert np.abs(got - expected).max() < 0.01  # probabilities; fp16 keeps about 3 significant digits
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.99  # a near-tie may flip, no more


def test_the_api_on_the_device_batches_concurrent_requests(exported_weights, faces, device):
    predictor = Predictor.load(exported_weights, device=device, tta="none", backend="torch")
    app = create_app(Settings(max_batch_size=64, max_wait_ms=50), predictor=predictor)
    with running_server(app) as url:
        served = httpx.get(f"{url}/v1/model").json()
        responses = asyncio.run(post_all(url, [encode(face, "PNG") for face in faces[:128]]))
        metrics = httpx.get(f"{url}/metrics").text
    assert served["device"] == device
    assert [r.status_code for r in responses] == [200] * 128
    expected = Predictor.load(exported_weights, device="cpu", tta="none", backend="torch").predict_pixels(faces[:128])
    for response, row in zip(responses, expected):
        scores = response.json()["faces"][0]["scores"]
        assert [scores[e] for e in EMOTIONS] == pytest.approx(row.tolist(), abs=0.01)
    passes = metric_value(metrics, "fer_batch_size_faces_count")
    assert metric_value(metrics, "fer_batch_size_faces_sum") == 128
    assert passes < 128  # concurrent requests shared forward passes on the device


def photos() -> list[np.ndarray]:
    """The astronaut at several sizes and places on 640x480 photos, and one photo without a face."""
    import cv2
    from skimage import data

    astronaut, photos = data.astronaut(), []
    for side, (x, y) in [(320, (0, 0)), (200, (400, 200)), (120, (50, 300)), (480, (160, 0))]:
        photo = np.full((480, 640, 3), 90, np.uint8)
        photo[y : y + side, x : x + side] = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
        photos.append(photo)
    return photos + [np.zeros((480, 640, 3), np.uint8)]


def test_face_detection_runs_on_the_device_and_finds_what_the_cpu_finds(exported_weights, device):
    on_device = Predictor.load(exported_weights, device=device, tta="none", backend="torch")
    on_cpu = Predictor.load(exported_weights, device="cpu", tta="none", backend="torch")
    assert on_device.detector.device == on_device.device  # "cuda:0" on a GPU
    together = on_device.find_faces_many(photos())
    for photo, (boxes, _, _) in zip(photos(), together):
        cpu_boxes, _, _ = on_cpu.find_faces(photo)
        assert len(boxes) == len(cpu_boxes)
        for box, cpu_box in zip(boxes, cpu_boxes):
            assert np.abs(np.subtract(box, cpu_box)).max() <= 2  # pixels; TF32 convolutions may round apart
    assert [len(found.boxes) for found in together] == [1, 1, 1, 1, 0]


def test_the_api_on_the_device_gathers_concurrent_photos_into_detection_runs(exported_weights, device):
    predictor = Predictor.load(exported_weights, device=device, tta="none", backend="torch")
    assert gathers_detection("auto", predictor) == (device == "cuda")
    # This is about gathering, not admission: on a loaded CPU (the dry run beside a trainer) 40 photos
    # with detection are priced over the default 5 s wait, and admission would answer some with 503.
    settings = Settings(gather_detection="on", max_expected_wait_s=60, request_timeout_s=120)
    app = create_app(settings, predictor=predictor)
    payloads = [encode(photo) for photo in photos()] * 8
    with running_server(app) as url:
        before = metric_value(httpx.get(f"{url}/metrics").text, "fer_detection_batch_size_images_sum")
        responses = asyncio.run(post_all(url, payloads, query="detect=true"))
        metrics = httpx.get(f"{url}/metrics").text
    assert [r.status_code for r in responses] == [200] * len(payloads)
    assert [len(r.json()["faces"]) for r in responses] == [1, 1, 1, 1, 0] * 8
    assert metric_value(metrics, "fer_detection_batch_size_images_sum") - before == len(payloads)


def test_onnx_runs_on_the_cuda_provider(exported_weights, faces, device):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip(f"this onnxruntime has no CUDA provider ({', '.join(onnxruntime.get_available_providers())})")
    onnx_path = exported_weights.with_suffix(".onnx")
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CUDAExecutionProvider"])
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    pixels = faces[:64, None].astype(np.float32)
    logits = session.run(None, {session.get_inputs()[0].name: pixels})[0]
    expected = Predictor.load(exported_weights, device="cpu", tta="none", backend="torch")
    reference = np.log(expected.predict_pixels(faces[:64]))
    shifted = logits - logits.max(1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    assert np.abs(log_probabilities - reference).max() < 1e-2
