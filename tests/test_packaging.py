"""The distribution as a user installs it: a real wheel, built here and installed into a fresh
virtual environment with nothing but its declared dependencies (from the package registry), predicts
with the shipped weights and detectors, without torch, FastAPI, kaggle or TensorBoard."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import pytest
import tomllib
from skimage import data

from tests.conftest import REPO, SHIPPED

HEAVY = ("torch", "fastapi", "uvicorn", "kaggle", "tensorboard", "matplotlib", "onnxscript")


def test_every_package_with_code_is_in_the_distribution():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    for top in ("fer", "fer_cli", "api", "training"):
        for init in (REPO / top).rglob("__init__.py"):
            package = ".".join(init.parent.relative_to(REPO).parts)
            assert package in listed, f"{package} is missing from [tool.setuptools] packages"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    (path,) = out.glob("fer_emotion-*.whl")
    return path


def test_the_wheel_carries_the_weights_and_the_detectors_model_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for suffix in (".safetensors", ".json", ".onnx", ".int8.onnx"):
        assert f"fer/shipped_weights/{SHIPPED.name}{suffix}" in names
    for path in (REPO / "fer/detection/model_files").iterdir():
        assert f"fer/detection/model_files/{path.name}" in names
    assert not any(name.startswith(("tests/", "bench/", "scripts/", "weights/")) for name in names)


@pytest.mark.timeout(900)
def test_a_plain_install_into_a_fresh_venv_predicts_the_astronauts_emotion_without_torch(wheel, tmp_path):
    # Nothing of this checkout may be seen: on PYTHONPATH, its egg-info made pip take the distribution
    # as installed already. Commands run from elsewhere for the same reason.
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "FER_WEIGHTS")}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=environment)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=600, env=environment)
    assert installed.returncode == 0, installed.stderr[-2000:]
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    predicted = subprocess.run(
        [str(venv / "bin" / "fer"), "predict", str(photo)], capture_output=True, text=True, cwd=tmp_path,
        env=environment, timeout=300,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith(f"{photo}: 1 face\n  box [")
    for detector in ("yunet", "haar", "blazeface"):
        other = subprocess.run(
            [str(venv / "bin" / "fer"), "predict", str(photo), "--detector", detector, "--json"],
            capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=300,
        )  # fmt: skip
        assert other.returncode == 0 and '"detected": true' in other.stdout, (detector, other.stderr)
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.util as u; print([m for m in "
         f"{HEAVY!r} if u.find_spec(m)])"], capture_output=True, text=True, cwd=tmp_path, env=environment,
    )  # fmt: skip
    assert found.stdout.strip() == "[]", found.stdout
    served = subprocess.run(
        [str(venv / "bin" / "fer"), "serve"], capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=120
    )
    assert served.returncode == 2
    assert "pip install 'fer-emotion[serve]'" in served.stderr
