"""scripts/ensemble_table.py: each member, the whole ensemble, all but each one and the best pair,
from soft-targets files, on the validation faces they were computed for."""

import numpy as np
import pytest

from fer.datasets import TRAIN, VALIDATION, load_splits, select_split
from tests.conftest import run_python
from training.distill import SoftTargets, images_digest


def write_targets(path, data, validation_probabilities, tta="tencrop", validation_digest=None):
    splits = load_splits(data)
    train, validation = select_split(splits, TRAIN, data), select_split(splits, VALIDATION, data)
    uniform = np.full((len(train), 7), 1 / 7, dtype=np.float32)
    SoftTargets(
        uniform, images_digest(train), [str(path)], tta, {}, validation_probabilities.astype(np.float32),
        validation_digest or images_digest(validation),
    ).save(path)  # fmt: skip
    return path


def confident(labels, answers, confidence):
    """(M, 7) rows giving `confidence` to each face's answer and the rest evenly to the others."""
    rows = np.full((len(labels), 7), (1 - confidence) / 6)
    rows[np.arange(len(labels)), answers] = confidence
    return rows


@pytest.fixture
def labels(kaggle_zip):
    return select_split(load_splits(kaggle_zip), VALIDATION, kaggle_zip).labels


def table(result) -> dict[str, str]:
    rows = [line.strip("|").split("|") for line in result.stdout.splitlines()[2:]]
    return {what.strip(): accuracy.strip() for what, accuracy in rows}


def test_each_member_the_ensemble_all_but_each_and_the_best_pair(kaggle_zip, labels, tmp_path):
    even = np.arange(len(labels)) % 2 == 0
    # a: right on even faces, sure of itself; b: right on odd faces, less sure; c: always wrong.
    a = confident(labels, np.where(even, labels, (labels + 1) % 7), 0.7)
    b = confident(labels, np.where(even, (labels + 2) % 7, labels), 0.6)
    c = confident(labels, (labels + 3) % 7, 0.4)
    files = [write_targets(tmp_path / f"{name}.npz", kaggle_zip, rows) for name, rows in zip("abc", (a, b, c))]
    result = run_python("scripts/ensemble_table.py", "--data", str(kaggle_zip), *map(str, files))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "| ensemble | validation (tencrop) |"

    def shown(share):
        return f"{share:.2%}"

    evens, odds = even.mean(), 1 - even.mean()
    assert table(result) == {
        "a": shown(evens), "b": shown(odds), "c": shown(0),
        "all 3": shown(evens),  # where a and b disagree, a is surer
        "without a": shown(odds), "without b": shown(evens), "without c": shown(evens),
        "best pair: a + b": shown(evens),
    }  # fmt: skip


def test_targets_of_other_faces_or_another_tta_are_refused_in_one_line(kaggle_zip, labels, tmp_path):
    rows = confident(labels, labels, 0.9)
    mine = write_targets(tmp_path / "mine.npz", kaggle_zip, rows)
    other_faces = write_targets(tmp_path / "other.npz", kaggle_zip, rows, validation_digest="0" * 64)
    flip = write_targets(tmp_path / "flip.npz", kaggle_zip, rows, tta="flip")
    for second, reason in ((other_faces, "computed for other validation faces"), (flip, "different TTA modes")):
        result = run_python("scripts/ensemble_table.py", "--data", str(kaggle_zip), str(mine), str(second))
        assert result.returncode == 2 and reason in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
