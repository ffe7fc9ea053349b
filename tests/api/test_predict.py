"""The prediction routes answer what the README promises, for every kind of image users send."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from fer.cpu import cpu_info
from fer.labels import EMOTIONS
from tests.api.conftest import encode


def _check_face(face):
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    assert set(face["scores"]) == set(EMOTIONS)
    assert abs(sum(face["scores"].values()) - 1) < 1e-3
    assert face["emotion"] == max(face["scores"], key=face["scores"].get)
    assert face["score"] == pytest.approx(face["scores"][face["emotion"]])


def test_multipart_photo_gives_the_face_and_its_emotions(client, astronaut_jpeg):
    response = client.post("/v1/predict", files={"file": ("photo.jpg", astronaut_jpeg, "image/jpeg")})
    assert response.status_code == 200
    body = response.json()
    assert len(body["faces"]) == 1
    _check_face(body["faces"][0])
    x, y, w, h = body["faces"][0]["box"]
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200  # the astronaut's face, upper middle
    assert body["image"] == {"width": 512, "height": 512}
    assert body["dropped_faces"] == 0
    assert body["model"].startswith("tiny@") and body["elapsed_ms"] > 0


def test_json_base64_gives_the_same_answer_as_multipart(client, astronaut_jpeg):
    multipart = client.post("/v1/predict", files={"file": ("a.jpg", astronaut_jpeg)}).json()
    as_json = client.post("/v1/predict", json={"image": base64.b64encode(astronaut_jpeg).decode()}).json()
    assert as_json["faces"] == multipart["faces"]


def test_base64_data_url_from_a_browser_is_accepted(client, astronaut_jpeg):
    url = "data:image/jpeg;base64," + base64.b64encode(astronaut_jpeg).decode()
    assert len(client.post("/v1/predict", json={"image": url}).json()["faces"]) == 1


def test_declared_content_type_is_ignored_in_favour_of_the_bytes(client, astronaut_jpeg):
    response = client.post("/v1/predict", files={"file": ("notes.txt", astronaut_jpeg, "text/plain")})
    assert response.status_code == 200 and len(response.json()["faces"]) == 1


def test_detect_false_treats_the_image_as_one_face_crop(client, small_predictor, astronaut):
    crop = astronaut[60:170, 170:280]
    body = client.post("/v1/predict?detect=false", files={"file": ("c.png", encode(crop, "PNG"))}).json()
    assert [face["box"] for face in body["faces"]] == [[0, 0, 110, 110]]
    expected = small_predictor.predict_faces([crop])[0]
    assert [body["faces"][0]["scores"][e] for e in EMOTIONS] == pytest.approx(expected.tolist(), abs=1e-5)


def test_tta_parameter_changes_the_computation(client, astronaut):
    crop = encode(astronaut[60:170, 170:280], "PNG")
    scores = {
        tta: client.post(f"/v1/predict?detect=false&tta={tta}", files={"file": ("c.png", crop)}).json()["faces"][0]
        for tta in ("none", "flip", "tencrop")
    }
    assert scores["none"]["scores"] != scores["tencrop"]["scores"]
    for face in scores.values():
        _check_face(face)


def test_an_image_without_faces_is_200_with_an_empty_list(client):
    sky = np.full((240, 320, 3), (120, 170, 230), dtype=np.uint8)
    response = client.post("/v1/predict", files={"file": ("sky.jpg", encode(sky))})
    assert response.status_code == 200
    assert response.json()["faces"] == [] and response.json()["image"] == {"width": 320, "height": 240}


def test_faces_beyond_the_limit_are_dropped_smallest_first(make_client, astronaut):
    # Three copies of the astronaut, at three sizes, side by side: three faces.
    copies = [np.asarray(Image.fromarray(astronaut).resize((s, s))) for s in (512, 400, 320)]
    canvas = np.full((512, 1232, 3), 255, dtype=np.uint8)
    left = 0
    for copy in copies:
        canvas[: len(copy), left : left + len(copy)] = copy
        left += len(copy)
    client = make_client(max_faces=2)
    body = client.post("/v1/predict", files={"file": ("group.jpg", encode(canvas))}).json()
    assert len(body["faces"]) == 2 and body["dropped_faces"] >= 1
    areas = [w * h for _, _, w, h in (face["box"] for face in body["faces"])]
    assert areas == sorted(areas, reverse=True)


def test_exif_orientation_is_applied(client, astronaut):
    # Stored turned a quarter counterclockwise (512 wide, 400 high), as a phone held sideways writes it;
    # EXIF orientation 6 tells viewers to turn it clockwise, back to the upright 400x512 astronaut.
    stored = np.ascontiguousarray(np.rot90(astronaut[:, :400]))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", exif=exif)
    body = client.post("/v1/predict", files={"file": ("phone.jpg", buffer.getvalue())}).json()
    assert body["image"] == {"width": 400, "height": 512}
    assert len(body["faces"]) == 1


@pytest.mark.parametrize(
    "name, make",
    [
        ("grayscale", lambda a: encode(np.asarray(Image.fromarray(a).convert("L")), "PNG")),
        ("rgba", lambda a: encode(np.dstack([a, np.full(a.shape[:2], 255, np.uint8)]), "PNG")),
        ("palette", lambda a: _save(Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE), "PNG")),
        (
            "16-bit",
            lambda a: _save(Image.fromarray(np.asarray(Image.fromarray(a).convert("L"), np.uint16) * 257), "PNG"),
        ),
        ("webp", lambda a: encode(a, "WEBP", quality=90)),
        ("bmp", lambda a: encode(a, "BMP")),
    ],
)
def test_every_allowed_kind_of_image_works(client, astronaut, name, make):
    response = client.post("/v1/predict", files={"file": (name, make(astronaut))})
    assert response.status_code == 200, response.text
    assert len(response.json()["faces"]) == 1


def _save(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def test_batch_keeps_order_and_isolates_a_bad_image(client, astronaut_jpeg):
    sky = encode(np.full((64, 96, 3), 200, dtype=np.uint8))  # 3:2, no face crop's shape: no whole-image answer
    files = [("files", ("a.jpg", astronaut_jpeg)), ("files", ("b.gif", b"GIF89a\x01\x00")), ("files", ("c.jpg", sky))]
    response = client.post("/v1/predict/batch", files=files)
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 3
    assert len(results[0]["faces"]) == 1 and "error" not in results[0]
    assert results[1] == {"error": {"code": "unsupported_format", "message": results[1]["error"]["message"]}}
    assert results[2]["faces"] == []


def test_batch_as_json(client, astronaut_jpeg):
    image = base64.b64encode(astronaut_jpeg).decode()
    results = client.post("/v1/predict/batch", json={"images": [image, "not base64!"]}).json()["results"]
    assert len(results[0]["faces"]) == 1 and results[1]["error"]["code"] == "invalid_base64"


def test_batch_over_the_image_limit_is_refused(make_client, astronaut_jpeg):
    client = make_client(max_batch_images=2)
    response = client.post("/v1/predict/batch", files=[("files", ("a.jpg", astronaut_jpeg))] * 3)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_images"


def test_model_card_describes_the_model(client):
    card = client.get("/v1/model").json()
    assert card["labels"] == list(EMOTIONS) and card["arch"] == "vgg_slim"
    assert card["input"]["shape"] == [1, 48, 48] and card["default_tta"] == "none"
    assert card["device"] == "cpu" and card["version"] and card["id"].startswith("tiny@")
    assert "validation" in card["metrics"]
    # The full card rides along, typed: what the weights' own JSON card says.
    assert card["card"]["arch"] == "vgg_slim" and card["card"]["name"] == "tiny"
    # The figures of the engine that runs: the int8 variant has its own (on its capture proxy the tiny
    # model's int8 and float32 differ by a face, so comparing with float32's held on some CPUs only).
    engine_card = card["card"]["int8"] if card["precision"] == "int8" else card["card"]
    assert card["metrics"] == engine_card["metrics"]
    # Which engine runs, why, and on which CPU: int8 speed and accuracy depend on the instruction set.
    assert card["engine_reason"] and card["cpu"] == cpu_info().describe()


def test_the_openapi_schema_declares_the_model_card(client):
    components = client.get("/openapi.json").json()["components"]["schemas"]
    served = components["ServedModel"]["properties"]
    assert served["card"]["$ref"].endswith("/ModelCard") and served["metrics"]["$ref"].endswith("/Metrics")
    card = components["ModelCard"]["properties"]
    assert {"arch", "labels", "metrics", "default_tta", "int8", "sha256"} <= set(card)
    assert set(components["Metrics"]["properties"]["validation"]["propertyNames"]["enum"]) == {
        "none",
        "flip",
        "tencrop",
    }


def test_probes(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readiness_is_503_before_the_model_is_loaded(small_predictor):
    from fastapi.testclient import TestClient

    from api import create_app

    client = TestClient(create_app(predictor=small_predictor))  # lifespan not started: nothing loaded
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    response = client.post("/v1/predict", files={"file": ("a.jpg", b"\xff\xd8\xff")})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_draining_server_reports_not_ready_and_still_answers_what_reaches_it(client, astronaut_jpeg):
    # A load balancer sends requests until it sees readiness turn; refusing them made them 503s under a
    # rolling restart (tests/bench/test_load_balancer.py). The closed port stops new connections.
    client.app.state.service.draining = True
    assert client.get("/readyz").json() == {"status": "draining"}
    response = client.post("/v1/predict", files={"file": ("a.jpg", astronaut_jpeg)})
    assert response.status_code == 200 and len(response.json()["faces"]) == 1
    assert client.get("/healthz").status_code == 200


def test_metrics_count_requests_faces_and_batches(client, astronaut_jpeg):
    client.post("/v1/predict", files={"file": ("a.jpg", astronaut_jpeg)})
    client.post("/v1/predict", files={"file": ("a.gif", b"GIF89a")})
    text = client.get("/metrics").text
    assert 'fer_requests_total{route="/v1/predict",status="200"} 1.0' in text
    assert 'fer_requests_total{route="/v1/predict",status="415"} 1.0' in text
    assert 'fer_rejections_total{reason="unsupported_format"} 1.0' in text
    assert "fer_faces_detected_total 1.0" in text
    assert "fer_batch_size_faces_count" in text and "fer_queue_depth 0.0" in text
    assert "fer_request_duration_seconds_bucket" in text


def test_metrics_name_every_route_by_its_template_and_unknown_paths_as_unmatched(client):
    for path in ("/docs", "/openapi.json", "/static/app.js", "/static/nothing-here.js", "/nope", "/v1/nope"):
        client.get(path)
    client.put("/docs")  # the path matches, the method does not: still that route's
    text = client.get("/metrics").text
    assert 'fer_requests_total{route="/docs",status="200"} 1.0' in text
    assert 'fer_requests_total{route="/docs",status="405"} 1.0' in text
    assert 'fer_requests_total{route="/openapi.json",status="200"} 1.0' in text
    assert 'fer_requests_total{route="/static",status="200"} 1.0' in text
    assert 'fer_requests_total{route="/static",status="404"} 1.0' in text
    assert 'fer_requests_total{route="unmatched",status="404"} 2.0' in text  # clients never create series
    assert "nothing-here" not in text and "/nope" not in text


def test_page_is_served_without_outside_resources(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text
    assert client.get("/static/app.js").status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_openapi_documents_every_route_with_examples(client):
    schema = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/predict/batch", "/v1/model", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    predict = schema["paths"]["/v1/predict"]["post"]
    assert {"multipart/form-data", "application/json"} == set(predict["requestBody"]["content"])
    assert {"200", "400", "413", "415", "422", "503", "504"} <= set(predict["responses"])
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("backend, detector", [("auto", "mtcnn"), ("onnx", "haar")])
def test_shipped_weights_end_to_end(astronaut_jpeg, backend, detector):
    """The app as `make run` starts it (the shipped int8 variant holds its accuracy, so a CPU runs it;
    the MTCNN detector) and with FER_BACKEND=onnx FER_DETECTOR=haar: shipped weights, the card's
    default TTA, the astronaut smiles."""
    from fastapi.testclient import TestClient

    from api import create_app
    from api.settings import Settings
    from fer.weights import DEFAULT_WEIGHTS_NAME, default_weights_path

    shipped = json.loads(default_weights_path().with_suffix(".json").read_text())
    with TestClient(create_app(Settings(device="cpu", backend=backend, detector=detector))) as client:
        card = client.get("/v1/model").json()
        assert card["detector"] == detector
        assert card["name"] == DEFAULT_WEIGHTS_NAME and card["default_tta"] == shipped["default_tta"]
        assert card["backend"] == {"auto": "onnxruntime-int8", "onnx": "onnxruntime"}[backend]
        assert card["precision"] == {"auto": "int8", "onnx": "float32"}[backend]
        assert card["id"].endswith("+int8") == (backend == "auto")
        assert card["metrics"]["validation"][card["default_tta"]]["accuracy"] > 0.6
        body = client.post("/v1/predict", files={"file": ("astronaut.jpg", astronaut_jpeg)}).json()
    assert len(body["faces"]) == 1 and body["faces"][0]["emotion"] == "happy"
    assert body["faces"][0]["score"] > 0.8


def test_uploads_never_touch_the_disk_or_the_logs(client, astronaut, tmp_path, monkeypatch, caplog):
    import logging
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where any spooled upload would land
    big = encode(np.asarray(Image.fromarray(astronaut).resize((2048, 2048))), "JPEG", quality=100)
    assert len(big) > 1024 * 1024  # over Starlette's 1 MB in-memory limit for form files
    with caplog.at_level(logging.DEBUG):
        multipart = client.post("/v1/predict", files={"file": ("big.jpg", big)})
        as_json = client.post("/v1/predict", json={"image": base64.b64encode(big).decode()})
        failed = client.post("/v1/predict", json={"image": base64.b64encode(b"secret bytes").decode()})
    assert multipart.status_code == 200 and as_json.status_code == 200 and failed.status_code == 400
    assert list(tmp_path.iterdir()) == []
    assert base64.b64encode(big[:300]).decode()[:100] not in caplog.text
    assert "secret bytes" not in caplog.text


def test_base64_with_whitespace_everywhere_is_decoded_within_a_few_copies_of_its_size(astronaut_jpeg):
    # Before: split into words, a string with a space every 2 characters took 25x its size.
    import tracemalloc

    from api.uploads import decode_base64

    encoded = base64.b64encode(astronaut_jpeg * 4).decode()
    spaced = " ".join(encoded[i : i + 2] for i in range(0, len(encoded), 2))
    tracemalloc.start()
    try:
        decoded = decode_base64(spaced)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded == astronaut_jpeg * 4
    assert peak < 3.5 * len(spaced), peak / len(spaced)
