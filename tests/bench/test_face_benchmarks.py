"""bench/faces.py, bench/framing.py and bench/capture.py, as issues 11's and 30's figures are made: run
end to end on an archive in the Kaggle layout whose validation faces are real (48x48 crops of the
astronaut photograph that scikit-image ships), they report each detector's findings, a calibration a
face could have, and the classifier on the capture proxy."""

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from fer.labels import EMOTIONS
from tests.conftest import KAGGLE_FOLDER_ORDER, encode_jpeg, make_face, run_python, shipped_file, write_zip
from training.capture import PROXY_FRAMING_ERRORS_FILE, load_framing_errors


@pytest.fixture(scope="module")
def astronaut_archive(tmp_path_factory):
    """Validation faces: the astronaut's face, cut a little differently for each, tight as FER2013's."""
    face = np.asarray(Image.fromarray(data.astronaut()).convert("L"))[30:200, 150:320]
    rng = np.random.default_rng(0)
    files = {}
    for emotion in KAGGLE_FOLDER_ORDER:
        label = EMOTIONS.index(emotion)
        files[f"train/{emotion}/Training_{label}00000.jpg"] = encode_jpeg(make_face(label, rng))
        for i in range(2):
            x, y = rng.integers(10, 30, size=2)
            crop = np.asarray(Image.fromarray(face[y : y + 130, x : x + 130]).resize((48, 48)))
            files[f"test/{emotion}/PublicTest_{label}{i:05d}.jpg"] = encode_jpeg(crop)
    return write_zip(tmp_path_factory.mktemp("astronaut") / "fer2013.zip", files)


def test_the_detection_benchmark_reports_each_detector_on_the_same_scenes(astronaut_archive, tmp_path):
    out = tmp_path / "faces.json"
    result = run_python(
        "bench/faces.py", "--data", str(astronaut_archive), "--scenes", "6", "--detectors", "mtcnn", "haar",
        "--speed-scenes", "2", "--runs", "1", "--alone", "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["scenes"] == 6 and set(report["detectors"]) == {"mtcnn", "haar"}
    mtcnn = report["detectors"]["mtcnn"]
    assert mtcnn["found"] >= 0.5  # the astronaut's face, tight, on generated backgrounds
    assert 0 <= mtcnn["end_to_end_accuracy"] <= mtcnn["found"]
    assert mtcnn["photos_per_second"] > 0
    assert report["detectors"]["haar"]["faces"] == mtcnn["faces"]  # the same scenes for both
    # Alone on a plain background MTCNN finds every one of the astronaut's faces, so of those it finds
    # in the photos what it finds of all.
    assert mtcnn["found_alone"] == 1.0
    assert mtcnn["found_of_found_alone"] == mtcnn["found"]
    assert 0 <= report["detectors"]["haar"]["found_of_found_alone"] <= 1
    assert "mtcnn" in result.stdout and "haar" in result.stdout


def test_the_framing_calibration_fits_boxes_to_the_faces_and_measures_the_fit(astronaut_archive, tmp_path):
    out = tmp_path / "framing.json"
    result = run_python(
        "bench/framing.py", "--data", str(astronaut_archive), "--scenes", "6", "--detectors", "mtcnn",
        "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    mtcnn = json.loads(out.read_text())["detectors"]["mtcnn"]
    assert mtcnn["framing"]["fitted_on_faces"] > 0 and mtcnn["alignment"]["fitted_on_faces"] > 0
    assert 0.8 < mtcnn["framing"]["fitted"]["side"] < 1.6  # a FER2013 crop is about MTCNN's box, a bit wider
    assert 1.5 < mtcnn["alignment"]["fitted"]["side"] < 3.5  # in eye-to-mouth distances
    for figures in (mtcnn["framing"], mtcnn["alignment"]):
        assert all(0 <= figures[f"end_to_end_{label}"] <= 1 for label in ("before", "fitted", "shipped"))


def test_the_capture_proxy_reports_each_effect_and_per_class_recall_for_each_model(astronaut_archive, tmp_path):
    out = tmp_path / "capture.json"
    weights = str(shipped_file(".safetensors"))
    result = run_python(
        "bench/capture.py", "--data", str(astronaut_archive), "--weights", weights, "--backend", "onnx",
        "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["faces"] == 14 and report["framing_errors"] == len(load_framing_errors(PROXY_FRAMING_ERRORS_FILE))
    (name,) = report["models"]
    assert "onnxruntime float32" in name
    figures = report["models"][name]
    assert set(figures["accuracy"]) == {"clean", "light", "framing", "turn", "blur", "resolution", "jpeg", "proxy"}
    assert all(0 <= accuracy <= 1 for accuracy in figures["accuracy"].values())
    assert figures["drop"] == pytest.approx(figures["accuracy"]["clean"] - figures["accuracy"]["proxy"])
    for condition in ("clean", "proxy"):
        assert set(figures[condition]["recall"]) == set(EMOTIONS)
        assert np.array(figures[condition]["confusion_matrix"]).sum(1).tolist() == [2] * 7  # 2 faces a class
    assert "proxy" in result.stdout and "each effect alone" in result.stdout


def test_the_detectors_framing_errors_are_measured_on_scenes_and_saved_for_the_trainer(astronaut_archive, tmp_path):
    out = tmp_path / "errors.json"
    result = run_python(
        "bench/capture.py", "--data", str(astronaut_archive), "--scenes", "6", "--save-framing-errors", str(out)
    )
    assert result.returncode == 0, result.stderr
    errors = load_framing_errors(out)
    assert len(errors) >= 4  # MTCNN finds the astronaut in most of the 6 scenes (one or two faces each)
    assert all(abs(e.dx) < 0.3 and abs(e.dy) < 0.3 and abs(e.log_scale) < 0.5 for e in errors)
    assert f"{len(errors)} framing errors written to {out}" in result.stdout


def test_the_capture_proxy_says_so_when_the_detector_finds_no_face_to_measure(kaggle_zip):
    result = run_python("bench/capture.py", "--data", str(kaggle_zip), "--measure-framing", "--scenes", "3")
    assert result.returncode != 0
    assert "the detector found none of the faces in 3 scenes" in result.stderr
