"""The model card has one typed shape, whether it comes from an export or from a training checkpoint,
and cards written by earlier versions still read."""

import json

import pytest

from fer.card import ModelCard
from fer.errors import WeightsError
from fer.options import TTA_MODES
from fer.weights import load_model
from tests.conftest import shipped_file

INPUT = {"shape": [1, 48, 48], "color": "grayscale", "pixels": "0..255", "normalization": {"mean": 0.5, "std": 0.25}}


def test_the_shipped_card_reads_with_every_measurement_typed():
    card = ModelCard.read(shipped_file(".json"))
    assert card.arch == "vgg_slim" and card.default_tta in TTA_MODES
    assert set(card.metrics.validation) == set(TTA_MODES) == set(card.int8.metrics.validation)
    # Not the most accurate mode: issue 10's speed floor (2,500 faces/s) rules out TTA for the default.
    assert card.default_tta == "none" and 0.6 < card.validation_accuracy("none") < 1
    assert max(TTA_MODES, key=card.validation_accuracy) != "none"
    assert card.input.shape == [1, 48, 48] and card.input.normalization.std > 0


def test_a_checkpoint_and_its_export_give_cards_of_one_shape(trained_checkpoint, tmp_path):
    from training.export import export_checkpoint

    export_checkpoint(trained_checkpoint, tmp_path / "plain", onnx=False)
    _, from_checkpoint = load_model(trained_checkpoint)
    _, exported = load_model(tmp_path / "plain.safetensors")
    assert type(from_checkpoint) is type(exported) is ModelCard
    # The checkpoint knows its EMA's accuracy without TTA; the export (without --data) carries it over.
    assert set(from_checkpoint.metrics.validation) == set(exported.metrics.validation) == {"none"}
    assert from_checkpoint.validation_accuracy("none") == exported.validation_accuracy("none") is not None
    assert from_checkpoint.source_checkpoint == str(trained_checkpoint) and exported.sha256


def test_the_shipped_card_holds_the_capture_proxy_for_every_mode_and_engine():
    card = ModelCard.read(shipped_file(".json"))
    for metrics in (card.metrics, card.int8.metrics):
        assert set(metrics.capture_proxy) == set(TTA_MODES)
        for tta, on_proxy in metrics.capture_proxy.items():
            # Photo-like faces are harder than clean ones, and the goal is per class.
            assert 0.3 < on_proxy.accuracy < metrics.validation[tta].accuracy, tta
            assert set(on_proxy.recall) == set(card.labels) and on_proxy.n == metrics.validation[tta].n


def test_cards_from_before_the_capture_proxy_read_with_no_proxy_figures():
    shipped = json.loads(shipped_file(".json").read_text())
    for metrics in (shipped["metrics"], shipped["int8"]["metrics"]):
        del metrics["capture_proxy"]  # as fer-v2's card was, exported 2026-12-03, before the proxy existed
    card = ModelCard.model_validate(shipped)
    assert card.metrics.capture_proxy == {} == card.int8.metrics.capture_proxy
    assert ModelCard.model_validate(json.loads(card.to_json())).metrics.capture_proxy == {}


def test_the_old_checkpoint_shape_of_metrics_still_reads():
    old = {"arch": "vgg_slim", "labels": [], "metrics": {"validation": {"accuracy": 0.61, "tta": "none"}}}
    assert ModelCard.model_validate(old).validation_accuracy("none") == 0.61


def test_keys_a_newer_fer_adds_are_kept_through_a_round_trip(tmp_path):
    card = ModelCard.model_validate({"arch": "vgg_slim", "labels": [], "calibration": {"ece": 0.03}})
    path = tmp_path / "m.json"
    path.write_text(card.to_json())
    assert json.loads(path.read_text())["calibration"] == {"ece": 0.03}


@pytest.mark.parametrize(
    "broken, where",
    [
        ({"labels": []}, "arch"),
        ({"arch": "vgg_slim", "labels": [], "default_tta": "fivecrop"}, "default_tta"),
        # A window off the pixel grid's centre would make ten-crop's mirrors a pixel off their crops.
        ({"arch": "vgg_slim40", "labels": [], "input": {**INPUT, "window": 41}}, "input.window"),
        ({"arch": "vgg_slim40", "labels": [], "input": {**INPUT, "window": 56}}, "input.window"),
    ],
)
def test_an_invalid_card_is_one_clear_error_naming_the_field(tmp_path, broken, where):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(WeightsError, match=rf"the model card .*m\.json is not valid: {where}"):
        ModelCard.read(path)
