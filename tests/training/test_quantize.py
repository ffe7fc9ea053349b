"""The int8 variant: written by `fer export --data`, described in the card, loaded only as described."""

import json
import shutil

import numpy as np
import pytest

from fer.datasets import VALIDATION, load_splits
from fer.errors import WeightsError
from fer.predictor import Predictor
from fer.weights import file_sha256
from tests.conftest import run_python
from training.export import export_checkpoint


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory, trained_checkpoint, kaggle_zip):
    prefix = tmp_path_factory.mktemp("int8") / "model"
    card = export_checkpoint(trained_checkpoint, prefix, data=str(kaggle_zip))
    return prefix.with_name("model.safetensors"), card


def _copy(weights, folder):
    for name in ("model.safetensors", "model.json", "model.onnx", "model.int8.onnx"):
        shutil.copy(weights.with_name(name), folder / name)
    return folder / "model.safetensors"


def test_export_writes_the_int8_model_with_its_own_validation_accuracy(int8_export):
    weights, card = int8_export
    int8 = weights.with_name("model.int8.onnx")
    assert card.int8.file == "model.int8.onnx"
    assert card.int8.sha256 == file_sha256(int8)
    assert set(card.int8.metrics.validation) == {"none", "flip", "tencrop"}
    assert "Training faces" in card.int8.method
    # Int8 weights take about a quarter of the float32 file.
    assert int8.stat().st_size < 0.4 * weights.with_name("model.onnx").stat().st_size
    assert json.loads(weights.with_suffix(".json").read_text())["int8"] == card.int8.model_dump(exclude_none=True)


def test_int8_predictions_are_close_to_float32_and_the_card_accuracy_is_reproduced(int8_export, kaggle_zip):
    weights, card = int8_export
    faces = load_splits(kaggle_zip)[VALIDATION]
    int8 = Predictor.load(weights, device="cpu", tta="none", backend="int8")
    reference = Predictor.load(weights, device="cpu", tta="none", backend="torch")
    assert int8.backend == "onnxruntime-int8"
    fast, exact = int8.predict_pixels(faces.images), reference.predict_pixels(faces.images)
    assert np.abs(fast - exact).max() < 0.05  # probabilities
    accuracy = float((fast.argmax(1) == faces.labels).mean())
    assert accuracy == pytest.approx(card.int8.metrics.validation["none"].accuracy)


def test_a_changed_int8_file_is_refused(int8_export, tmp_path):
    weights = _copy(int8_export[0], tmp_path)
    (tmp_path / "model.int8.onnx").write_bytes(b"something else entirely")
    with pytest.raises(WeightsError, match="does not match the sha256"):
        Predictor.load(weights, device="cpu", backend="int8")


def test_a_missing_int8_file_is_refused(int8_export, tmp_path):
    weights = _copy(int8_export[0], tmp_path)
    (tmp_path / "model.int8.onnx").unlink()
    with pytest.raises(WeightsError, match="no int8 model at"):
        Predictor.load(weights, device="cpu", backend="int8")


def test_weights_without_an_int8_variant_say_how_to_make_one(trained_checkpoint, tmp_path):
    export_checkpoint(trained_checkpoint, tmp_path / "plain", onnx=False)  # no --data: no int8 variant
    for weights in (tmp_path / "plain.safetensors", trained_checkpoint):
        with pytest.raises(WeightsError, match="has no int8 variant"):
            Predictor.load(weights, device="cpu", backend="int8")


def test_the_card_cannot_point_the_int8_file_outside_its_folder(int8_export, tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    weights = _copy(int8_export[0], inner)
    card_path = weights.with_suffix(".json")
    card = json.loads(card_path.read_text())
    shutil.copy(weights.with_name("model.int8.onnx"), tmp_path / "outside.int8.onnx")
    card["int8"]["file"] = "../outside.int8.onnx"
    card_path.write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="no int8 model at"):
        Predictor.load(weights, device="cpu", backend="int8")


def test_cli_evaluates_the_int8_variant(int8_export, kaggle_zip):
    weights, card = int8_export
    result = run_python(
        "-m", "fer_cli", "evaluate", str(kaggle_zip), "--weights", str(weights), "--backend", "int8",
        "--tta", "flip", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accuracy"] == pytest.approx(card.int8.metrics.validation["flip"].accuracy)


def test_the_inference_benchmark_measures_every_cpu_engine(int8_export):
    weights, card = int8_export
    result = run_python(
        "bench/infer.py", "--weights", str(weights), "--backends", "eager", "onnx", "int8",
        "--batch-sizes", "1", "8", "--warmup", "1", "--runs", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "eager = torch float32, onnx = onnxruntime float32, int8 = onnxruntime-int8 int8" in result.stdout
    # Without --tta it measures the default configuration: the card's TTA.
    assert f"tta {card.default_tta} (the card's default)" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.strip().split(" ")[0].isdigit()]
    assert [row[0] for row in rows] == ["1", "8"]
    assert all(float(cell.replace(",", "")) > 0 for row in rows for cell in row[1:])


def _set_int8_accuracy(weights, drop):
    """Rewrite the copied card so that the int8 variant measured `drop` below the float model."""
    card_path = weights.with_suffix(".json")
    card = json.loads(card_path.read_text())
    for mode, metrics in card["metrics"]["validation"].items():
        card["int8"]["metrics"]["validation"][mode]["accuracy"] = metrics["accuracy"] - drop
    card_path.write_text(json.dumps(card))


def test_auto_runs_the_int8_variant_when_its_accuracy_holds(int8_export, tmp_path):
    weights = _copy(int8_export[0], tmp_path)
    _set_int8_accuracy(weights, drop=0.004)
    assert Predictor.load(weights, device="cpu").backend == "onnxruntime-int8"
    assert Predictor.load(weights, device="cpu", backend="onnx").backend == "onnxruntime"


def test_auto_keeps_float32_when_the_int8_variant_lost_accuracy(int8_export, tmp_path):
    weights = _copy(int8_export[0], tmp_path)
    _set_int8_accuracy(weights, drop=0.006)
    assert Predictor.load(weights, device="cpu").backend == "onnxruntime"
    # Asked for by name, it still runs: the card says what it costs.
    assert Predictor.load(weights, device="cpu", backend="int8").backend == "onnxruntime-int8"


def test_auto_skips_a_changed_int8_file_with_a_warning(int8_export, tmp_path, caplog):
    import logging

    weights = _copy(int8_export[0], tmp_path)
    _set_int8_accuracy(weights, drop=0.0)
    (tmp_path / "model.int8.onnx").write_bytes(b"tampered")
    with caplog.at_level(logging.WARNING):
        assert Predictor.load(weights, device="cpu").backend == "onnxruntime"
    assert "ignoring the int8 variant" in caplog.text and "sha256" in caplog.text


@pytest.mark.parametrize("int8_entry", ["model.int8.onnx", {"metrics": "high"}, {"metrics": {"validation": []}}])
def test_auto_treats_a_malformed_int8_card_entry_as_no_int8(int8_export, tmp_path, int8_entry):
    weights = _copy(int8_export[0], tmp_path)
    card_path = weights.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["int8"] = int8_entry
    card_path.write_text(json.dumps(card))
    assert Predictor.load(weights, device="cpu").backend == "onnxruntime"
    with pytest.raises(WeightsError, match="has no int8 variant"):
        Predictor.load(weights, device="cpu", backend="int8")


# ---------------------------------------------------------------- int8 that holds on every CPU


def test_the_export_writes_7_bit_weights_that_cannot_saturate_without_vnni(int8_export):
    from training.quantize import INT16_MAX, largest_pair_sum

    weights, card = int8_export
    # Two uint8 x int8 products summed in int16 (VPMADDUBSW, AVX2) must fit: 255 x 64 x 2 = 32,640.
    assert largest_pair_sum(weights.with_name("model.int8.onnx")) <= INT16_MAX
    assert card.int8.weight_bits == 7 and "reduce_range" in card.int8.method


def test_the_shipped_int8_model_cannot_saturate_without_vnni():
    from fer.weights import default_weights_path, read_card
    from training.quantize import INT16_MAX, largest_pair_sum

    weights = default_weights_path()
    card = read_card(weights)
    assert card.int8.weight_bits == 7
    assert largest_pair_sum(weights.parent / card.int8.file) <= INT16_MAX


def test_8_bit_weights_are_found_to_saturate(tmp_path):
    """The check itself: a DequantizeLinear of int8 weights reaching 127, beside an int32 bias that
    does not count (biases are added in int32), is 2 x 255 x 127 = 64,770."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from training.quantize import largest_pair_sum, weight_bits

    initializers = [
        numpy_helper.from_array(np.array([127, -3, 5], dtype=np.int8), "w"),
        numpy_helper.from_array(np.array([100_000], dtype=np.int32), "bias"),
        numpy_helper.from_array(np.array(0.1, dtype=np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "scale"], ["w_float"]),
        helper.make_node("DequantizeLinear", ["bias", "scale"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [], [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])], initializers
    )
    path = tmp_path / "eight_bit.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert largest_pair_sum(path) == 64_770 and weight_bits(path) == 8


def test_the_card_names_the_cpu_that_measured_it_and_the_agreement_with_float32(int8_export):
    from fer.cpu import cpu_info

    _, card = int8_export
    here = {"cpu": cpu_info().model, "isa": cpu_info().isa()}
    assert card.metrics.measured_on.model_dump() == here
    assert card.int8.metrics.measured_on.model_dump() == here
    assert 0.5 < card.int8.agreement.top1 <= 1.0
    assert 0.0 <= card.int8.agreement.largest_probability_difference < 0.05


def _set_weight_bits(weights, bits):
    card_path = weights.with_suffix(".json")
    card = json.loads(card_path.read_text())
    if bits is None:
        card["int8"].pop("weight_bits", None)  # as cards written before 2026-12-03
    else:
        card["int8"]["weight_bits"] = bits
    card_path.write_text(json.dumps(card))


AVX2_ONLY = ("AMD EPYC 7B12", {"avx2", "fma"})
AVX512_VNNI = ("AMD EPYC 9B14", {"avx2", "avx512f", "avx512_vnni"})


@pytest.mark.parametrize(
    "bits, cpu, engine",
    [
        (7, AVX2_ONLY, "onnxruntime-int8"),  # 7-bit weights hold everywhere
        (7, AVX512_VNNI, "onnxruntime-int8"),
        (8, AVX512_VNNI, "onnxruntime-int8"),  # VNNI sums in int32: 8-bit weights hold there
        (8, AVX2_ONLY, "onnxruntime"),  # they would saturate: float32 runs instead
        (None, AVX2_ONLY, "onnxruntime"),  # an older card: taken as 8-bit
    ],
)
def test_auto_runs_int8_only_where_its_weights_cannot_saturate(int8_export, tmp_path, monkeypatch, bits, cpu, engine):
    from fer.cpu import CpuInfo

    weights = _copy(int8_export[0], tmp_path)
    _set_weight_bits(weights, bits)
    machine = CpuInfo(cpu[0], frozenset(cpu[1]))
    monkeypatch.setattr("fer.onnx_runtime.cpu_info", lambda: machine)
    predictor = Predictor.load(weights, device="cpu")
    assert predictor.backend == engine
    if engine == "onnxruntime":
        assert predictor.engine_reason.startswith("float32 ONNX Runtime, as the int8 variant has 8-bit weights")
        assert f"saturate without VNNI ({machine.describe()})" in predictor.engine_reason
    else:
        assert predictor.engine_reason.startswith("int8 is within 0.5% of float32")
    # Asked for by name, int8 runs anyway: the user chose it.
    assert Predictor.load(weights, device="cpu", backend="int8").backend == "onnxruntime-int8"


def test_fer_models_says_which_engine_runs_and_why(int8_export):
    weights, _ = int8_export
    result = run_python("-m", "fer_cli", "models", "--weights", str(weights), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "runs on cpu with onnxruntime-int8 (int8)" in result.stdout
    assert "why: int8 is within 0.5% of float32 on validation and its 7-bit weights cannot saturate" in result.stdout
    assert "CPU: " in result.stdout


def test_exported_weights_can_be_exported_again_with_their_training_record(int8_export, kaggle_zip, tmp_path):
    weights, card = int8_export
    again = export_checkpoint(weights, tmp_path / "again", data=str(kaggle_zip), default_tta="none")
    assert (again.arch, again.epoch, again.training) == (card.arch, card.epoch, card.training)
    assert file_sha256(tmp_path / "again.safetensors") == file_sha256(weights)
    assert again.metrics.validation["tencrop"].accuracy == pytest.approx(card.metrics.validation["tencrop"].accuracy)
    assert again.int8.weight_bits == 7
