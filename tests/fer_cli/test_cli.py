import json

import pytest
from PIL import Image

from fer.card import ModelCard
from fer.options import TTA_MODES
from tests.conftest import run_python


def fer(*args, **kwargs):
    return run_python("-m", "fer_cli", *args, **kwargs)


def astronaut_file(tmp_path):
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_predict_json(exported_weights, tmp_path):
    image = astronaut_file(tmp_path)
    result = fer("predict", str(image), "--json", "--weights", str(exported_weights), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    answer = json.loads(line)
    assert answer["path"] == str(image) and len(answer["faces"]) == 1
    assert set(answer["faces"][0]) == {"box", "emotion", "score", "scores", "detected"}


def test_predict_text_and_no_detect(exported_weights, tmp_path):
    image = astronaut_file(tmp_path)
    result = fer("predict", str(image), "--no-detect", "--weights", str(exported_weights), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert f"{image}: 1 face" in result.stdout and "box [0, 0, 512, 512]" in result.stdout


def test_predict_with_each_face_detector(exported_weights, tmp_path):
    image = astronaut_file(tmp_path)
    boxes = {}
    for detector in ("mtcnn", "haar", "blazeface"):
        result = fer("predict", str(image), "--json", "--weights", str(exported_weights), "--detector", detector)
        assert result.returncode == 0, result.stderr
        [face] = json.loads(result.stdout)["faces"]
        boxes[detector] = face["box"]
    assert len({tuple(box) for box in boxes.values()}) == 3  # each frames the face its own way
    for x, y, w, h in boxes.values():
        assert x < 230 < x + w and y < 120 < y + h  # around the astronaut's nose


def test_predict_keeps_going_past_a_bad_file_then_exits_2(exported_weights, tmp_path):
    image = astronaut_file(tmp_path)
    result = fer(
        "predict", str(tmp_path / "missing.jpg"), str(image), "--weights", str(exported_weights), "--device", "cpu"
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"fer: error: no such file: {tmp_path / 'missing.jpg'}"
    assert f"{image}: 1 face" in result.stdout


def test_a_folder_without_images_is_an_error_not_a_silent_success(exported_weights, tmp_path):
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "notes" / "readme.txt").write_text("no faces here")
    image = astronaut_file(tmp_path)
    result = fer("predict", str(empty), str(image), "--weights", str(exported_weights), "--device", "cpu")
    assert result.returncode == 2
    assert result.stderr.startswith(f"fer: error: no images or videos in {empty} (looked for ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"{image}: 1 face" in result.stdout  # the other inputs are still answered


@pytest.mark.parametrize(
    "args, message",
    [
        (["predict", "x.jpg", "--tta", "bogus"], "fer predict: error: argument --tta: invalid choice: 'bogus'"),
        (["bogus"], "fer: error: argument COMMAND: invalid choice: 'bogus'"),
        (["evaluate"], "fer evaluate: error: the following arguments are required: DATA"),
    ],
)
def test_a_bad_flag_is_one_line_that_points_to_help(args, message):
    result = fer(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert "--help)" in result.stderr


def test_unreadable_image_is_one_line(exported_weights, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    result = fer("predict", str(bad), "--weights", str(exported_weights), "--device", "cpu")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "cannot read" in result.stderr


def test_missing_weights_and_data_exit_2(tmp_path, kaggle_zip):
    result = fer("predict", "x.jpg", "--weights", str(tmp_path / "none.safetensors"))
    assert result.returncode == 2 and "no weights file" in result.stderr and "Traceback" not in result.stderr
    result = fer("evaluate", str(tmp_path / "none.zip"), "--weights", str(tmp_path / "none.pt"))
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_bad_flag_values_exit_2():
    for args in (["predict", "x.jpg", "--tta", "sideways"], ["evaluate", "d.zip", "--split", "dev"], ["frobnicate"]):
        result = fer(*args)
        assert result.returncode == 2 and "invalid choice" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = fer("predict", "x.jpg", "--weights", str(tmp_path / "none.safetensors"), "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr and "WeightsError" in result.stderr


def test_models_lists_every_architecture():
    result = fer("models")
    assert result.returncode == 0
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"vgg", "vgg_slim", "vgg40", "vgg_slim40", "resnet18", "resnet_slim"} <= listed
    assert "MFLOPs/face" in result.stdout


def test_export_command(trained_checkpoint, tmp_path):
    result = fer("export", str(trained_checkpoint), "--out", str(tmp_path / "w"), "--no-onnx")
    assert result.returncode == 0, result.stderr
    assert "exported vgg_slim" in result.stdout
    assert (tmp_path / "w.safetensors").exists() and (tmp_path / "w.json").exists()


def test_export_reports_each_measurement_as_it_finishes(trained_checkpoint, kaggle_zip, tmp_path):
    result = fer(
        "export", str(trained_checkpoint), "--out", str(tmp_path / "w"), "--no-onnx", "--data", str(kaggle_zip)
    )
    assert result.returncode == 0, result.stderr
    steps = result.stderr.splitlines()
    assert [step.split(":")[0] for step in steps] == [
        f"{what} accuracy, float32, tta {t}" for t in TTA_MODES for what in ("validation", "capture proxy")
    ]
    card = ModelCard.read(tmp_path / "w.json")
    proxy = card.metrics.capture_proxy["none"].accuracy
    # The summary stays on stdout.
    assert f"validation accuracy, tta none: {card.metrics.validation['none'].accuracy:.2%}; " in result.stdout
    assert f"; capture proxy {proxy:.2%}" in result.stdout
    best = max(TTA_MODES, key=lambda tta: card.metrics.validation[tta].accuracy)
    assert card.default_tta == best and f"default tta {best}" in result.stdout


def test_export_can_fix_the_default_tta_and_refuses_an_unknown_one(trained_checkpoint, tmp_path):
    result = fer("export", str(trained_checkpoint), "--out", str(tmp_path / "w"), "--no-onnx", "--default-tta", "flip")
    assert result.returncode == 0, result.stderr
    assert ModelCard.read(tmp_path / "w.json").default_tta == "flip"
    refused = fer("export", str(trained_checkpoint), "--out", str(tmp_path / "v"), "--default-tta", "fivecrop")
    assert refused.returncode == 2 and "fivecrop" in refused.stderr
    assert not (tmp_path / "v.json").exists()


def test_installed_console_script(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    script = shutil.which("fer") or str(Path(sys.executable).parent / "fer")
    result = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("fer ")
