"""Knowledge distillation as users run it: `python -m training.distill` writes teachers' soft targets
from real checkpoints, and `python -m training.train --distill FILE` learns from them.

The fixtures `teacher` and `targets` live in conftest.py; a distilled run that resumes after a crash
is tested beside the other resume tests, in test_train.py."""

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from fer.datasets import TRAIN, VALIDATION, load_splits, select_split
from fer.errors import FerError
from fer.weights import load_checkpoint
from tests.conftest import kaggle_files, run_python, write_zip
from tests.training.test_train import assert_same_weights, train_args
from training.config import TrainConfig, parse_config
from training.distill import SoftTargets, distillation_loss, images_digest, write_targets


def test_targets_are_the_teachers_tta_probabilities_for_every_training_face(kaggle_zip, teacher, targets):
    from fer.predictor import Predictor

    path, log = targets
    stored = SoftTargets.load(path)
    train = select_split(load_splits(kaggle_zip), TRAIN, kaggle_zip)
    assert stored.probabilities.shape == (len(train), 7)
    assert stored.digest == images_digest(train) and stored.tta == "tencrop"
    assert stored.teachers == [str(teacher), str(teacher)]
    # Measured independently: the same checkpoint through the predictor, with ten-crop.
    expected = Predictor.load(teacher, device="cpu", tta="tencrop", backend="torch").predict_pixels(train.images)
    np.testing.assert_allclose(stored.probabilities, expected, atol=2e-3)  # stored as float16
    val = select_split(load_splits(kaggle_zip), VALIDATION, kaggle_zip)
    val_probabilities = Predictor.load(teacher, device="cpu", tta="tencrop", backend="torch").predict_pixels(val.images)
    np.testing.assert_allclose(stored.validation_probabilities, val_probabilities, atol=2e-3)
    assert stored.validation_digest == images_digest(val)
    accuracy = float((val_probabilities.argmax(1) == val.labels).mean())
    # Two copies of one teacher: the ensemble is that teacher.
    assert stored.validation_accuracy == {str(teacher): pytest.approx(accuracy), "ensemble": pytest.approx(accuracy)}
    assert f"ensemble of 2: {accuracy:.2%} on validation" in log
    assert path.stat().st_size < 50_000


def test_targets_written_before_stand_in_for_their_teacher(kaggle_zip, teacher, targets, tmp_path):
    """A finished run's committed targets are a teacher without its checkpoint: mixed with a model,
    each file counts as one teacher."""
    path, _ = targets
    out = tmp_path / "mixed.npz"
    write_targets(str(kaggle_zip), [str(path), str(teacher)], "tencrop", str(out))  # the CLI: `targets`
    mixed, first = SoftTargets.load(out), SoftTargets.load(path)
    assert mixed.teachers == [str(path), str(teacher)]
    # The file holds the teacher's probabilities twice over, so the mean of it and the teacher is the teacher.
    np.testing.assert_allclose(mixed.probabilities, first.probabilities, atol=2e-3)
    np.testing.assert_allclose(mixed.validation_probabilities, first.validation_probabilities, atol=2e-3)
    assert mixed.validation_accuracy["ensemble"] == pytest.approx(first.validation_accuracy["ensemble"])

    with pytest.raises(FerError, match="holds tencrop probabilities, not flip: ask for --tta tencrop"):
        write_targets(str(kaggle_zip), [str(path)], "flip", str(tmp_path / "flip.npz"))
    other_faces = write_zip(tmp_path / "other.zip", kaggle_files(seed=9))
    with pytest.raises(FerError, match="were computed for other validation faces"):
        write_targets(str(other_faces), [str(path)], "tencrop", str(tmp_path / "other.npz"))
    assert not (tmp_path / "flip.npz").exists() and not (tmp_path / "other.npz").exists()


def test_the_soft_targets_change_what_is_learned_only_by_their_weight(kaggle_zip, targets, tmp_path):
    from training.train import train

    path, _ = targets
    weights = {}
    for name, distill, weight in (("plain", "", 0.5), ("zero", str(path), 0.0), ("half", str(path), 0.5)):
        config = TrainConfig(
            data=str(kaggle_zip), arch="vgg_slim", epochs=1, batch_size=16, device="cpu", out=str(tmp_path / name),
            distill=distill, distill_weight=weight, max_samples=70, seed=2,
        )  # fmt: skip
        train(config)
        weights[name] = load_checkpoint(tmp_path / name / "last.pt")["model"]
    assert_same_weights(weights["plain"], weights["zero"])
    assert any(not torch.equal(weights["plain"][k], weights["half"][k]) for k in weights["plain"]), "nothing learned"


def test_the_soft_target_loss_pulls_the_student_to_the_teacher():
    teacher = torch.tensor([[0.7, 0.1, 0.05, 0.05, 0.04, 0.03, 0.03], [0.02, 0.02, 0.02, 0.9, 0.02, 0.01, 0.01]])
    for temperature in (1.0, 4.0):
        matching = teacher.log() + 5.0  # logits whose softmax is the teacher's: no loss, at any temperature
        assert distillation_loss(matching, teacher, temperature).item() == pytest.approx(0.0, abs=1e-6)
        logits = torch.zeros(2, 7, requires_grad=True)
        optimizer = torch.optim.SGD([logits], lr=2.0)
        for _ in range(500):
            optimizer.zero_grad()
            distillation_loss(logits, teacher, temperature).backward()
            optimizer.step()
        np.testing.assert_allclose(logits.softmax(1).detach().numpy(), teacher.numpy(), atol=0.01)


def test_targets_for_other_faces_are_refused_in_one_line(targets, tmp_path):
    path, _ = targets
    other = write_zip(tmp_path / "other.zip", kaggle_files(seed=9))
    result = run_python("-m", "training.train", *train_args(other, tmp_path / "run", "--distill", str(path)))
    assert result.returncode == 2, result.stderr
    assert "were computed for other training faces" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "last.pt").exists()


def test_unreadable_targets_files_are_clear_errors(targets, tmp_path):
    path, _ = targets
    for name, content in (("text.npz", b"not a zip at all"), ("empty.npz", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(FerError, match="cannot read soft targets"):
            SoftTargets.load(tmp_path / name)
    stored = SoftTargets.load(path)
    for name, rows in (("negative", -stored.probabilities), ("unnormalized", 2 * stored.probabilities)):
        broken = dataclasses.replace(stored, probabilities=rows)
        broken.save(tmp_path / f"{name}.npz")
        with pytest.raises(FerError, match="not probabilities"):
            SoftTargets.load(tmp_path / f"{name}.npz")
    np.savez(tmp_path / "foreign.npz", probabilities=stored.probabilities, meta=json.dumps({"format": 99}))
    with pytest.raises(FerError, match="not a soft-targets file of format 1"):
        SoftTargets.load(tmp_path / "foreign.npz")
    missing = run_python("-m", "training.distill", "--data", "missing.zip", "--teacher", "x.pt", "--out", "y.npz")
    assert missing.returncode == 2 and "no dataset at missing.zip" in missing.stderr


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--distill-weight", "1.5", "--distill-weight must be between 0 and 1, not 1.5"),
        ("--distill-temperature", "0", "--distill-temperature must be a positive number, not 0.0"),
        ("--distill-temperature", "nan", "--distill-temperature must be a positive number, not nan"),
    ],
)
def test_distillation_settings_out_of_range_are_refused(flag, value, message):
    with pytest.raises(FerError, match=re.escape(message)):
        parse_config(["--data", "x.zip", flag, value])
