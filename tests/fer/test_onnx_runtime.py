"""The ONNX Runtime engine: used on the CPU only when the .onnx beside the weights gives their outputs."""

import logging
import shutil

import numpy as np
import pytest

from fer.errors import WeightsError
from fer.predictor import Predictor
from tests.conftest import REPO, run_python

FACES = np.random.default_rng(0).integers(0, 256, size=(16, 48, 48), dtype=np.uint8)


def _copy_weights(exported_weights, tmp_path, onnx_from=None):
    """The exported weights and card in a folder of their own, with `onnx_from` as their .onnx."""
    for suffix in (".safetensors", ".json"):
        shutil.copy(exported_weights.with_suffix(suffix), tmp_path / f"model{suffix}")
    if onnx_from is not None:
        shutil.copy(onnx_from, tmp_path / "model.onnx")
    return tmp_path / "model.safetensors"


def test_auto_uses_onnx_runtime_with_the_same_results(exported_weights):
    fast = Predictor.load(exported_weights, device="cpu", tta="flip")
    reference = Predictor.load(exported_weights, device="cpu", tta="flip", backend="torch")
    assert (fast.backend, reference.backend) == ("onnxruntime", "torch")
    assert np.allclose(fast.predict_pixels(FACES), reference.predict_pixels(FACES), atol=1e-5)
    assert np.allclose(fast.predict_pixels(FACES, "tencrop"), reference.predict_pixels(FACES, "tencrop"), atol=1e-5)


def test_an_onnx_file_from_other_weights_is_never_used(exported_weights, tmp_path, caplog):
    weights = _copy_weights(exported_weights, tmp_path, onnx_from=REPO / "weights" / "fer-v1.onnx")
    with caplog.at_level(logging.WARNING):
        predictor = Predictor.load(weights, device="cpu")
    assert predictor.backend == "torch"
    assert "outputs differ from the weights" in caplog.text
    with pytest.raises(WeightsError, match="does not give the same outputs"):
        Predictor.load(weights, device="cpu", backend="onnx")


def test_without_an_onnx_file_auto_runs_pytorch_and_onnx_is_an_error(exported_weights, tmp_path):
    weights = _copy_weights(exported_weights, tmp_path)
    assert Predictor.load(weights, device="cpu").backend == "torch"
    with pytest.raises(WeightsError, match="no ONNX file"):
        Predictor.load(weights, device="cpu", backend="onnx")


def test_a_damaged_onnx_file_falls_back_to_pytorch(exported_weights, tmp_path):
    weights = _copy_weights(exported_weights, tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"not a protobuf at all")
    assert Predictor.load(weights, device="cpu").backend == "torch"


def test_training_checkpoints_run_with_pytorch(trained_checkpoint):
    assert Predictor.load(trained_checkpoint, device="cpu").backend == "torch"


def test_cli_reports_a_required_onnx_that_does_not_match(exported_weights, tmp_path):
    weights = _copy_weights(exported_weights, tmp_path, onnx_from=REPO / "weights" / "fer-v1.onnx")
    image = tmp_path / "face.png"
    from PIL import Image

    Image.fromarray(FACES[0]).save(image)
    result = run_python("-m", "fer.cli", "predict", str(image), "--weights", str(weights), "--backend", "onnx")
    assert result.returncode == 2
    assert "does not give the same outputs" in result.stderr and "Traceback" not in result.stderr
