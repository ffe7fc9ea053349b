"""The engine protocol and the choice of engine (fer/engines.py), on the shipped weights. Which engine
"auto" takes for each kind of card and file is in test_onnx_runtime.py and training/test_quantize.py."""

import numpy as np
import pytest

from fer.engines import choose_engine
from fer.errors import FerError
from fer.predictor import Predictor
from fer.weights import DEFAULT_WEIGHTS_NAME, default_weights_path

PIXELS = np.random.default_rng(0).integers(0, 256, (6, 1, 48, 48)).astype(np.float32)


@pytest.mark.parametrize(
    "backend, name, precision",
    [("torch", "torch", "float32"), ("onnx", "onnxruntime", "float32"), ("int8", "onnxruntime-int8", "int8")],
)
def test_each_backend_gives_an_engine_that_names_itself_and_why_it_runs(backend, name, precision):
    engine, card, reason = choose_engine(default_weights_path(), "cpu", backend)
    assert (engine.name, engine.precision, engine.device) == (name, precision, "cpu")
    assert reason == f"asked for (backend {backend})"
    assert card.name == DEFAULT_WEIGHTS_NAME
    logits = engine(PIXELS)
    assert logits.shape == (6, 7) and logits.dtype == np.float32 and np.isfinite(logits).all()


def test_a_predictor_reports_the_engine_it_was_given_and_its_answers_are_that_engines():
    pytorch = Predictor(*choose_engine(default_weights_path(), "cpu", "torch")[:2], tta="flip")
    onnx = Predictor.load(backend="onnx", tta="flip")
    assert (pytorch.backend, pytorch.precision, pytorch.device, pytorch.quantized) == ("torch", "float32", "cpu", False)
    faces = PIXELS[:, 0].astype(np.uint8)
    assert np.allclose(pytorch.predict_pixels(faces), onnx.predict_pixels(faces), atol=1e-5)


def test_int8_is_the_quantized_engine_with_its_own_validation_figures():
    int8 = Predictor.load(backend="int8")
    assert int8.quantized and int8.precision == "int8"
    assert int8.validation_metrics == int8.card.int8.metrics != int8.card.metrics


@pytest.mark.parametrize("backend", ["onnx", "int8"])
def test_a_cpu_only_engine_asked_for_on_a_gpu_is_refused_before_anything_loads(tmp_path, backend):
    missing = tmp_path / "never-read.safetensors"
    with pytest.raises(FerError, match=f"^backend {backend} runs on the CPU only; this device is cuda$"):
        choose_engine(missing, "cuda:0", backend)


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'; choose from auto, torch, onnx, int8"):
        choose_engine(default_weights_path(), "cpu", "tensorrt")
