import shutil

import pytest
import torch

from fer.card import ModelCard
from fer.errors import WeightsError
from fer.models import build_model
from fer.weights import load_model, save_weights

CARD = ModelCard(arch="vgg_slim", labels=["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"])


def test_round_trip_gives_the_same_outputs(tmp_path):
    model = build_model("vgg_slim").eval()
    save_weights(model.state_dict(), CARD, tmp_path / "m")
    for path in (tmp_path / "m.safetensors", tmp_path / "m.json", tmp_path / "m"):
        loaded, card = load_model(path)
        x = torch.rand(3, 1, 48, 48) * 255
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))
        assert card.arch == "vgg_slim" and len(card.sha256) == 64


def test_other_labels_are_refused(tmp_path):
    save_weights(
        build_model("vgg_slim").state_dict(), CARD.model_copy(update={"labels": sorted(CARD.labels)}), tmp_path / "m"
    )
    with pytest.raises(WeightsError, match="was trained for labels"):
        load_model(tmp_path / "m.safetensors")


def test_weights_of_another_architecture_are_refused(tmp_path):
    save_weights(build_model("resnet_slim").state_dict(), CARD, tmp_path / "m")  # card claims vgg_slim
    with pytest.raises(WeightsError, match="do not fit architecture 'vgg_slim'"):
        load_model(tmp_path / "m.safetensors")


def test_unknown_architecture_is_refused(tmp_path):
    save_weights(build_model("vgg_slim").state_dict(), CARD.model_copy(update={"arch": "vit"}), tmp_path / "m")
    with pytest.raises(WeightsError, match="architecture 'vit'"):
        load_model(tmp_path / "m.safetensors")


def test_changed_weights_fail_the_checksum(tmp_path):
    save_weights(build_model("vgg_slim").state_dict(), CARD, tmp_path / "m")
    data = bytearray((tmp_path / "m.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "m.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match the sha256"):
        load_model(tmp_path / "m.safetensors")


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="no weights file"):
        load_model(tmp_path / "none.safetensors")
    save_weights(build_model("vgg_slim").state_dict(), CARD, tmp_path / "m")
    shutil.move(tmp_path / "m.safetensors", tmp_path / "lonely.safetensors")
    with pytest.raises(WeightsError, match="has no model card"):
        load_model(tmp_path / "lonely.safetensors")
    (tmp_path / "m.json").write_text("{broken")
    shutil.copy(tmp_path / "lonely.safetensors", tmp_path / "m.safetensors")
    with pytest.raises(WeightsError, match="cannot read the model card"):
        load_model(tmp_path / "m.safetensors")


def test_not_safetensors_is_a_clear_error(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(b"\x00" * 32)
    (tmp_path / "m.json").write_text(CARD.to_json())
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_model(tmp_path / "m.safetensors")


def test_a_checkpoint_loads_its_ema_weights(trained_checkpoint):
    model, card = load_model(trained_checkpoint)
    assert card.arch == "vgg_slim" and card.epoch in (1, 2)
    assert model(torch.zeros(1, 1, 48, 48)).shape == (1, 7)
