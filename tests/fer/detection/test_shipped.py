"""fer/detection/shipped.py: every detector's model file ships inside fer, and a missing or changed
one is a clear error before any detector runs on it."""

import pytest

import fer.detection.shipped as shipped
from fer.detection import create_detector
from fer.errors import FerError
from fer.options import DETECTORS


def test_every_shipped_file_is_checked_and_every_detector_loads_from_them():
    assert sorted(path.name for path in shipped.FOLDER.glob("*.onnx")) == sorted(shipped.SHA256)
    for name in shipped.SHA256:
        assert shipped.model_file(name) == shipped.FOLDER / name
    for name in DETECTORS:
        assert create_detector(name).name == name
    assert (shipped.FOLDER / "NOTICE.md").is_file()


@pytest.mark.parametrize("detector", ["mtcnn", "yunet", "blazeface"])
def test_a_missing_or_changed_model_file_is_a_clear_error(detector, monkeypatch, tmp_path):
    for path in shipped.FOLDER.glob("*.onnx"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(shipped, "FOLDER", tmp_path)
    assert create_detector(detector).name == detector  # the copies are the shipped files
    for path in tmp_path.glob("*.onnx"):
        path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
    with pytest.raises(FerError, match="is not the face detector model fer was measured with"):
        create_detector(detector)
    for path in tmp_path.glob("*.onnx"):
        path.unlink()
    with pytest.raises(FerError, match="model file .* is missing: reinstall fer"):
        create_detector(detector)


def test_a_name_fer_does_not_ship_is_refused():
    with pytest.raises(ValueError, match="fer ships no detector model file 'yolo.onnx'"):
        shipped.model_file("yolo.onnx")
