"""The ONNX Runtime engine: used on the CPU only when the .onnx beside the weights gives their outputs."""

import json
import logging
import shutil

import numpy as np
import pytest
import torch

from fer.card import ModelCard
from fer.cpu import CpuInfo
from fer.errors import WeightsError
from fer.labels import EMOTIONS
from fer.predictor import Predictor
from tests.conftest import run_python, shipped_file

FACES = np.random.default_rng(0).integers(0, 256, size=(16, 48, 48), dtype=np.uint8)


def _copy_weights(exported_weights, tmp_path, onnx_from=None):
    """The exported weights and card in a folder of their own, with `onnx_from` as their .onnx and no
    int8 variant (which the CPU would run before the float32 .onnx)."""
    shutil.copy(exported_weights, tmp_path / "model.safetensors")
    card = json.loads(exported_weights.with_suffix(".json").read_text())
    card.pop("int8", None)
    (tmp_path / "model.json").write_text(json.dumps(card))
    if onnx_from is not None:
        shutil.copy(onnx_from, tmp_path / "model.onnx")
    return tmp_path / "model.safetensors"


def test_without_int8_auto_uses_onnx_runtime_with_the_same_results(exported_weights, tmp_path):
    weights = _copy_weights(exported_weights, tmp_path, onnx_from=exported_weights.with_suffix(".onnx"))
    fast = Predictor.load(weights, device="cpu", tta="flip")
    reference = Predictor.load(weights, device="cpu", tta="flip", backend="torch")
    assert (fast.backend, reference.backend) == ("onnxruntime", "torch")
    assert np.allclose(fast.predict_pixels(FACES), reference.predict_pixels(FACES), atol=1e-5)
    assert np.allclose(fast.predict_pixels(FACES, "tencrop"), reference.predict_pixels(FACES, "tencrop"), atol=1e-5)


def test_an_onnx_file_from_other_weights_is_never_used(exported_weights, tmp_path, caplog):
    weights = _copy_weights(exported_weights, tmp_path, onnx_from=shipped_file(".onnx"))
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
    weights = _copy_weights(exported_weights, tmp_path, onnx_from=shipped_file(".onnx"))
    image = tmp_path / "face.png"
    from PIL import Image

    Image.fromarray(FACES[0]).save(image)
    result = run_python("-m", "fer_cli", "predict", str(image), "--weights", str(weights), "--backend", "onnx")
    assert result.returncode == 2
    assert "does not give the same outputs" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- the int8 gate, on cards alone


def card_with_drops(float_accuracy: dict, drops: dict) -> ModelCard:
    """A card whose int8 variant measured `drops[mode]` below the float model in each mode."""
    return ModelCard.model_validate(
        {
            "arch": "vgg_slim",
            "labels": list(EMOTIONS),
            "metrics": {"validation": {mode: {"accuracy": acc} for mode, acc in float_accuracy.items()}},
            "int8": {
                "metrics": {
                    "validation": {mode: {"accuracy": float_accuracy[mode] - drop} for mode, drop in drops.items()}
                }
            },
        }
    )


FLOAT = {"none": 0.700, "flip": 0.705, "tencrop": 0.715}


@pytest.mark.parametrize(
    "drops, holds",
    [
        ({"none": 0.0, "flip": 0.0, "tencrop": 0.0}, True),
        ({"none": 0.004, "flip": 0.001, "tencrop": -0.002}, True),  # below 0.5 points everywhere
        ({"none": 0.005, "flip": 0.0, "tencrop": 0.001}, True),  # exactly 0.5 points still holds
        ({"none": 0.001, "flip": 0.006, "tencrop": 0.0}, False),  # one mode over: the largest drop decides
        ({"none": 0.0, "flip": 0.0, "tencrop": 0.0051}, False),  # just over, in the last mode
        ({"none": -0.01, "flip": -0.01, "tencrop": 0.02}, False),  # gains elsewhere do not buy a loss
    ],
)
def test_int8_holds_only_when_no_mode_loses_more_than_half_a_point(drops, holds):
    from fer.onnx_runtime import INT8_MAX_ACCURACY_DROP, int8_accuracy_holds

    assert INT8_MAX_ACCURACY_DROP == 0.005
    assert int8_accuracy_holds(card_with_drops(FLOAT, drops)) is holds


def test_int8_modes_measured_on_one_side_only_are_not_compared():
    from fer.onnx_runtime import int8_accuracy_holds

    card = card_with_drops(FLOAT, {"none": 0.001})  # int8 measured without TTA only
    assert int8_accuracy_holds(card) is True
    card.metrics.validation = {"flip": card.metrics.validation["flip"]}  # nothing in common
    assert int8_accuracy_holds(card) is False
    card.int8 = None
    assert int8_accuracy_holds(card) is False
    unmeasured = card_with_drops(FLOAT, {"none": 0.0})
    unmeasured.int8.metrics.validation["none"].accuracy = None  # a null in a hand-edited card
    assert int8_accuracy_holds(unmeasured) is False


@pytest.mark.parametrize(
    "weights, onnx",
    [
        ("w/model.safetensors", "w/model.onnx"),
        ("w/model.json", "w/model.onnx"),
        ("w/model", "w/model.onnx"),
        ("w/best.pt", None),
        ("w/best.pth", None),
    ],
)
def test_the_onnx_file_beside_weights(weights, onnx):
    from pathlib import Path

    from fer.onnx_runtime import onnx_path_for

    assert onnx_path_for(weights) == (Path(onnx) if onnx else None)


def test_agreement_is_judged_on_the_largest_logit_difference(exported_weights):
    import torch

    from fer.onnx_runtime import AGREEMENT_TOLERANCE, OnnxModel
    from fer.weights import load_model

    model = load_model(exported_weights)[0].eval()
    onnx_model = OnnxModel(exported_weights.with_suffix(".onnx"))
    assert onnx_model.agrees_with(model)

    class Shifted(torch.nn.Module):  # the same model with one logit moved by `shift`
        def __init__(self, shift):
            super().__init__()
            self.shift = shift

        def forward(self, x):
            logits = model(x).clone()
            logits[0, 3] += self.shift
            return logits

    assert AGREEMENT_TOLERANCE == 1e-3
    assert onnx_model.agrees_with(Shifted(2e-4))
    assert not onnx_model.agrees_with(Shifted(4e-3))  # a stale export is off by far more than this
    assert not onnx_model.agrees_with(Shifted(-4e-3))


# ---------------------------------------------------------------- the int8 file named by the card


def int8_stand_in(exported_weights, tmp_path, sha256=None):
    """The exported float .onnx copied as `model.int8.onnx` and named in the card, as an int8 variant
    would be: the checks on the card and the file are the same whatever the file holds."""
    from fer.weights import file_sha256

    int8 = tmp_path / "model.int8.onnx"
    shutil.copy(exported_weights.with_suffix(".onnx"), int8)
    card = card_with_drops(FLOAT, {"none": 0.0, "flip": 0.0, "tencrop": 0.0})
    card.int8.file, card.int8.sha256 = int8.name, sha256 or file_sha256(int8)
    card.int8.weight_bits = 7  # as fer export writes them: no CPU can make them saturate
    return tmp_path / "model.safetensors", card


def test_the_int8_file_loads_only_with_the_sha256_of_the_card(exported_weights, tmp_path):
    from fer.onnx_runtime import OnnxModel, load_int8_model

    weights, card = int8_stand_in(exported_weights, tmp_path)
    assert isinstance(load_int8_model(weights, card), OnnxModel)
    for recorded in ("0" * 64, "f" * 64):  # a changed file is refused whichever way its hash sorts
        _, stale = int8_stand_in(exported_weights, tmp_path, sha256=recorded)
        with pytest.raises(WeightsError, match="does not match the sha256"):
            load_int8_model(weights, stale)


def test_an_int8_file_that_onnx_runtime_cannot_load_is_a_clear_error(exported_weights, tmp_path):
    from fer.onnx_runtime import load_default_int8_model, load_int8_model
    from fer.weights import file_sha256

    weights, card = int8_stand_in(exported_weights, tmp_path)
    (tmp_path / "model.int8.onnx").write_bytes(b"not a protobuf at all")
    card.int8.sha256 = file_sha256(tmp_path / "model.int8.onnx")  # the card vouches for the bad file
    with pytest.raises(WeightsError, match="ONNX Runtime cannot load"):
        load_int8_model(weights, card)
    assert load_default_int8_model(weights, card)[0] is None


@pytest.mark.parametrize("missing", ["file", "sha256"])
def test_an_int8_entry_without_file_or_sha256_is_no_int8(exported_weights, tmp_path, missing):
    from fer.onnx_runtime import load_default_int8_model, load_int8_model

    weights, card = int8_stand_in(exported_weights, tmp_path)
    setattr(card.int8, missing, None)
    with pytest.raises(WeightsError, match="has no int8 variant"):
        load_int8_model(weights, card)
    assert load_default_int8_model(weights, card) == (None, "the model card names no int8 variant")


def test_auto_takes_the_int8_file_only_when_its_accuracy_holds(exported_weights, tmp_path, caplog):
    from fer.onnx_runtime import OnnxModel, load_default_int8_model

    weights, card = int8_stand_in(exported_weights, tmp_path)
    assert isinstance(load_default_int8_model(weights, card)[0], OnnxModel)
    card.int8.metrics.validation["flip"].accuracy -= 0.01  # one mode lost a point
    assert load_default_int8_model(weights, card)[0] is None
    weights, card = int8_stand_in(exported_weights, tmp_path, sha256="0" * 64)
    with caplog.at_level(logging.WARNING):
        assert load_default_int8_model(weights, card)[0] is None  # a changed file: warned and skipped
    assert "ignoring the int8 variant" in caplog.text


AVX2_ONLY = CpuInfo("AMD EPYC 7B12", frozenset({"avx2", "fma"}))
WITH_VNNI = CpuInfo("AMD EPYC 9B14", frozenset({"avx2", "avx512f", "avx512_vnni"}))


@pytest.mark.parametrize(
    "bits, cpu, why",
    [
        (7, AVX2_ONLY, "its 7-bit weights cannot saturate on any CPU"),
        (7, WITH_VNNI, "its 7-bit weights cannot saturate on any CPU"),
        (8, WITH_VNNI, "its 8-bit weights cannot saturate with VNNI"),
        (None, WITH_VNNI, "its 8-bit weights cannot saturate with VNNI"),  # cards before weight_bits: 8-bit
        (8, AVX2_ONLY, None),
        (None, AVX2_ONLY, None),
    ],
)
def test_auto_runs_int8_only_where_its_weights_cannot_saturate(exported_weights, tmp_path, bits, cpu, why):
    """The CPU is the one passed, never this machine's: an AVX2-only CPU sums 8-bit weights' pairs in
    int16, which saturate (fer-v2's 8-bit int8 lost 1.8 points on one, issue 29)."""
    from fer.onnx_runtime import OnnxModel, load_default_int8_model

    weights, card = int8_stand_in(exported_weights, tmp_path)
    card.int8.weight_bits = bits
    model, reason = load_default_int8_model(weights, card, cpu)
    if why is None:
        assert model is None
        assert reason == (
            f"the int8 variant has 8-bit weights, which saturate without VNNI ({cpu.describe()}); "
            "fer export writes 7-bit ones that hold on every CPU"
        )
    else:
        assert isinstance(model, OnnxModel)
        assert reason == f"int8 is within 0.5% of float32 on validation and {why}"


def onnx_file(path, nodes, input_shape, output_shape, initializers=()):
    """A small valid ONNX model from `nodes`, reading "pixels" and writing "logits"."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        path.stem,
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, output_shape)],
        initializer=list(initializers),
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_an_onnx_file_for_other_inputs_never_agrees(exported_weights, tmp_path):
    # A valid ONNX model that expects 24x24 faces: ONNX Runtime refuses 48x48 input, which must mean
    # "does not agree" (and PyTorch runs the model), not a crash at load.
    from onnx import helper

    from fer.onnx_runtime import OnnxModel
    from fer.weights import load_model

    path = onnx_file(
        tmp_path / "other.onnx", [helper.make_node("Identity", ["pixels"], ["logits"])], [4, 1, 24, 24], [4, 1, 24, 24]
    )
    assert OnnxModel(path).agrees_with(load_model(exported_weights)[0].eval()) is False


@pytest.mark.parametrize("classes", [6, 8])
def test_an_onnx_file_with_another_number_of_classes_never_agrees(exported_weights, tmp_path, classes):
    # (B, 1, 48, 48) -> the first `classes` pixels of each face as its logits: a model for another
    # label set. Fewer or more columns than the weights' 7 must mean "does not agree", not a crash.
    import numpy as np
    from onnx import helper, numpy_helper

    from fer.onnx_runtime import OnnxModel
    from fer.weights import load_model

    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["logits"]),
    ]
    constants = [
        numpy_helper.from_array(np.array([0], np.int64), "starts"),
        numpy_helper.from_array(np.array([classes], np.int64), "ends"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
    ]
    path = onnx_file(tmp_path / f"classes{classes}.onnx", nodes, ["batch", 1, 48, 48], ["batch", classes], constants)
    assert OnnxModel(path)(torch.zeros(2, 1, 48, 48)).shape == (2, classes)
    assert OnnxModel(path).agrees_with(load_model(exported_weights)[0].eval()) is False


def test_the_engine_never_imports_torch():
    # The int8 and float32 CPU paths run without torch (a server on a CPU stays 380 MB idle, not 1 GB).
    result = run_python("-c", "import sys, fer.onnx_runtime; print('torch' in sys.modules)")
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
