"""Fixtures shared by the training tests."""

import pytest

from tests.conftest import run_python


@pytest.fixture(scope="session")
def teacher(trained_checkpoint):
    """The session's tiny trained checkpoint (two epochs on the fixture dataset): a real, if weak, teacher."""
    return trained_checkpoint


@pytest.fixture(scope="session")
def targets(kaggle_zip, teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("targets") / "teacher-tencrop.npz"
    result = run_python(
        "-m", "training.distill", "--data", str(kaggle_zip), "--teacher", str(teacher), "--teacher", str(teacher),
        "--tta", "tencrop", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out, result.stderr
