"""Fixtures shared by the training tests."""

import pytest

from tests.conftest import run_python
from tests.training.test_train import train_args


@pytest.fixture(scope="session")
def teacher(kaggle_zip, tmp_path_factory):
    """A checkpoint trained for one epoch on the fixture dataset: a real, if weak, teacher."""
    out = tmp_path_factory.mktemp("teacher") / "run"
    result = run_python("-m", "training.train", *train_args(kaggle_zip, out, "--epochs", "1", "--seed", "3"))
    assert result.returncode == 0, result.stderr
    return out / "best.pt"


@pytest.fixture(scope="session")
def targets(kaggle_zip, teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("targets") / "teacher-tencrop.npz"
    result = run_python(
        "-m", "training.distill", "--data", str(kaggle_zip), "--teacher", str(teacher), "--teacher", str(teacher),
        "--tta", "tencrop", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out, result.stderr
