import json

import numpy as np
import onnxruntime
import pytest
import torch

from fer.card import ModelCard
from fer.errors import WeightsError
from fer.options import TTA_MODES
from fer.weights import file_sha256, load_checkpoint, load_model
from tests.conftest import run_python
from training.export import export_checkpoint


def test_export_writes_weights_card_and_onnx(exported_weights, trained_checkpoint):
    prefix = exported_weights.with_suffix("")
    card = json.loads(prefix.with_suffix(".json").read_text())
    assert card["arch"] == "vgg_slim"
    assert card["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert card["input"]["shape"] == [1, 48, 48] and card["input"]["normalization"]["std"] > 0
    assert card["input"].get("window") is None  # it classifies the whole face
    assert card["sha256"] == file_sha256(exported_weights)
    assert card["training"]["config"]["epochs"] == 2 and card["dataset"]["name"] == "FER2013"
    assert card["parameters"] > 0 and card["flops_per_face"] > 0
    assert prefix.with_suffix(".onnx").stat().st_size > 0


def test_exported_weights_are_the_checkpoints_ema(exported_weights, trained_checkpoint):
    model, _ = load_model(exported_weights)
    ema = load_checkpoint(trained_checkpoint)["ema"]["module"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, ema[name]), name


def test_onnx_matches_pytorch_for_any_batch_size(exported_weights):
    model, _ = load_model(exported_weights)
    session = onnxruntime.InferenceSession(
        str(exported_weights.with_suffix(".onnx")), providers=["CPUExecutionProvider"]
    )
    for batch in (1, 7, 64):
        pixels = np.random.default_rng(batch).uniform(0, 255, (batch, 1, 48, 48)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(pixels)).numpy()
        (actual,) = session.run(None, {"pixels": pixels})
        np.testing.assert_allclose(actual, expected, atol=1e-3)


def test_export_with_data_records_accuracy_for_every_tta(trained_checkpoint, kaggle_zip, tmp_path):
    steps = []
    card = export_checkpoint(trained_checkpoint, tmp_path / "m", data=str(kaggle_zip), onnx=False, report=steps.append)
    assert set(card.metrics.validation) == {"none", "flip", "tencrop"}
    best = max(card.metrics.validation.values(), key=lambda m: m.accuracy)
    assert card.metrics.validation[card.default_tta] == best
    assert not (tmp_path / "m.onnx").exists()
    # Each measurement is reported as it finishes, with its figure: a long export is never silent.
    validation, proxy = card.metrics.validation, card.metrics.capture_proxy
    assert [step.split(" (")[0] for step in steps] == [
        line
        for tta in TTA_MODES
        for line in (
            f"validation accuracy, float32, tta {tta}: {validation[tta].accuracy:.2%}",
            f"capture proxy accuracy, float32, tta {tta}: {proxy[tta].accuracy:.2%}",
        )
    ]


def test_the_card_holds_each_modes_capture_proxy_figures_and_recall(trained_checkpoint, kaggle_zip, tmp_path):
    from fer.datasets import VALIDATION, load_splits, select_split
    from fer.predictor import Predictor
    from training.capture import proxy_crops

    card = export_checkpoint(trained_checkpoint, tmp_path / "m", data=str(kaggle_zip), onnx=False)
    split = select_split(load_splits(str(kaggle_zip)), VALIDATION, str(kaggle_zip))
    crops = proxy_crops(split.images)["proxy"]
    assert set(card.metrics.capture_proxy) == set(TTA_MODES)
    for tta in TTA_MODES:
        # Measured apart from the export: the Predictor with that mode, on the proxy's crops.
        predicted = Predictor.load(tmp_path / "m.safetensors", device="cpu", tta=tta).predict_faces(crops).argmax(1)
        figures = card.metrics.capture_proxy[tta]
        assert figures.accuracy == pytest.approx(float((predicted == split.labels).mean()))
        assert figures.n == len(split.labels) and set(figures.recall) == set(card.labels)
        for label, recall in figures.recall.items():
            mine = split.labels == card.labels.index(label)
            assert recall == pytest.approx(float((predicted[mine] == split.labels[mine]).mean())), label
    reread = ModelCard.read(tmp_path / "m.json")
    assert reread.metrics.capture_proxy == card.metrics.capture_proxy


def test_exporting_a_non_checkpoint_fails_clearly(tmp_path):
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="is not a fer training checkpoint"):
        export_checkpoint(tmp_path / "other.pt", tmp_path / "x")


def test_exported_files_are_readable_by_other_users(trained_checkpoint, tmp_path):
    # The Docker image runs as its own user (uid 10001) and copies weights/: 0600 files would not load.
    import os
    import stat

    from training.export import export_checkpoint

    previous = os.umask(0o022)
    try:
        export_checkpoint(trained_checkpoint, tmp_path / "mine")
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
    assert set(modes) == {"mine.safetensors", "mine.json", "mine.onnx"}
    assert set(modes.values()) == {0o644}, modes


def test_exporting_where_nothing_can_be_written_fails_first_in_one_line(trained_checkpoint, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_python("-m", "fer_cli", "export", str(trained_checkpoint), "--out", str(blocker / "sub" / "m"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"fer: error: cannot write the export to {blocker / 'sub'}: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_each_tta_modes_figure_on_the_card_is_that_modes_own(trained_checkpoint, tmp_path):
    """Validation faces on which the TTA modes disagree, labelled with ten-crop's answers: ten-crop
    scores 100% and the others less. The card's figure for each mode must be the one the predictor
    gives with that mode, measured here apart from the export."""
    import cv2

    from fer.labels import EMOTIONS
    from fer.predictor import Predictor
    from tests.conftest import KAGGLE_FOLDER_ORDER, kaggle_files, write_zip

    # The tiny model reads the row of a bright band (tests/conftest.py: make_face); bands at any row,
    # between the classes' rows, are where ten-crop's shifted crops change its answer (about 1 in 4).
    rng = np.random.default_rng(5)
    faces = rng.integers(0, 90, size=(42, 48, 48), dtype=np.uint8)
    for face, row in zip(faces, rng.integers(0, 43, len(faces))):
        face[row : row + 6, :30] = 230
    predicted = {
        tta: Predictor.load(trained_checkpoint, device="cpu", tta=tta, backend="torch").predict_pixels(faces).argmax(1)
        for tta in TTA_MODES
    }
    labels = predicted["tencrop"]
    expected = {tta: float((predicted[tta] == labels).mean()) for tta in TTA_MODES}
    assert len(set(expected.values())) > 1, f"the modes agree on every face: nothing to tell apart ({expected})"
    files = {name: data for name, data in kaggle_files().items() if name.startswith("train/")}
    for i, (face, label) in enumerate(zip(faces, labels)):
        assert EMOTIONS[label] in KAGGLE_FOLDER_ORDER
        files[f"test/{EMOTIONS[label]}/PublicTest_{i:05d}.png"] = cv2.imencode(".png", face)[1].tobytes()  # lossless
    data = write_zip(tmp_path / "noise.zip", files)

    card = export_checkpoint(trained_checkpoint, tmp_path / "m", data=str(data), onnx=False)
    assert {tta: card.metrics.validation[tta].accuracy for tta in TTA_MODES} == pytest.approx(expected)
    assert all(card.metrics.validation[tta].n == 42 for tta in TTA_MODES)
    assert card.default_tta == "tencrop"  # the best
