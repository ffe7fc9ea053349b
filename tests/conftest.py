"""Shared fixtures: small generated FER2013-shaped datasets in each of the forms users have.

Faces are 48x48 grayscale images with a per-emotion pattern (a bright band whose row depends on the
emotion) plus noise, so that a model can learn them and a label mix-up shows up as wrong accuracy.
"""

import csv
import io
import os
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer.labels import EMOTIONS
from fer.weights import DEFAULT_WEIGHTS_NAME

REPO = Path(__file__).resolve().parent.parent
# The shipped default model's files, by suffix: shipped_file(".json") is its card. Tests name it so,
# never by its version, so that shipping a new default changes fer.weights alone.
SHIPPED = REPO / "weights" / DEFAULT_WEIGHTS_NAME


def shipped_file(suffix: str) -> Path:
    """The shipped model's file with this suffix, appended as fer.weights does (with_suffix would cut
    a dotted name such as fer-v3.1 short)."""
    return SHIPPED.with_name(SHIPPED.name + suffix)


# Emotion folders in the Kaggle layout are written in sorted order on purpose: reading them by that
# order instead of by name would mislabel neutral, sad and surprise.
KAGGLE_FOLDER_ORDER = sorted(EMOTIONS)

# Subprocesses (torchrun workers, the CLI, servers) import this tree's code, not whatever the installed
# `fer` points at: a script's own folder, not the working directory, heads its sys.path, so without
# this a copy of the tree (scripts/mutate.py tests one) would run the original's code. Set at import,
# before any fixture of any scope starts a process.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch):
    """Every test gets a shared, throwaway dataset cache and no progress bars in its output."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "fer-cache"))
    monkeypatch.setenv("TQDM_DISABLE", "1")


def make_face(label: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    face = rng.integers(0, 90, size=(size, size), dtype=np.uint8)
    band = (label * size) // len(EMOTIONS)
    face[band : band + max(2, size // 8), :] = 230
    return face


def encode_jpeg(face: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return data.tobytes()


def kaggle_files(per_class_train=20, per_class_public=5, per_class_private=3, seed=0) -> dict[str, bytes]:
    """{relative path: JPEG bytes} in the msambare/fer2013 layout."""
    rng = np.random.default_rng(seed)
    files = {}
    for emotion in KAGGLE_FOLDER_ORDER:
        label = EMOTIONS.index(emotion)
        for i in range(per_class_train):
            files[f"train/{emotion}/Training_{label}{i:05d}.jpg"] = encode_jpeg(make_face(label, rng))
        for i in range(per_class_public):
            files[f"test/{emotion}/PublicTest_{label}{i:05d}.jpg"] = encode_jpeg(make_face(label, rng))
        for i in range(per_class_private):
            files[f"test/{emotion}/PrivateTest_{label}{i:05d}.jpg"] = encode_jpeg(make_face(label, rng))
    return files


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


@pytest.fixture(scope="session")
def kaggle_zip(tmp_path_factory) -> Path:
    return write_zip(tmp_path_factory.mktemp("kaggle") / "fer2013.zip", kaggle_files())


@pytest.fixture
def kaggle_dir(tmp_path) -> Path:
    return write_tree(tmp_path / "fer2013", kaggle_files(per_class_train=4, per_class_public=2, per_class_private=1))


def write_csv(path: Path, rows_per_usage: dict[str, int], seed=0, header=("emotion", "pixels", "Usage")) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for usage, count in rows_per_usage.items():
            for i in range(count):
                label = i % len(EMOTIONS)
                writer.writerow([label, " ".join(map(str, make_face(label, rng).ravel())), usage])
    return path


@pytest.fixture
def fer_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "fer2013.csv", {"Training": 14, "PublicTest": 7, "PrivateTest": 7})


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def fixture_cache(name: str) -> Path | None:
    """FER_TEST_FIXTURE_CACHE/NAME, for the mutation runs (scripts/mutate.py): the unmutated baseline
    builds the tiny model there and every mutant's test run reuses it. Unset in normal runs."""
    root = os.environ.get("FER_TEST_FIXTURE_CACHE")
    return Path(root) / name if root else None


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, kaggle_zip) -> Path:
    """A real checkpoint from two epochs of the trainer on the small zip (shared by many tests)."""
    from training.config import TrainConfig
    from training.train import train

    cached = fixture_cache("run")
    if cached is not None and (cached / "best.pt").is_file():
        return cached / "best.pt"
    out = cached or tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.getbasetemp() / "fer-cache"
    os.environ.setdefault("FER_CACHE_DIR", str(cache))
    train(
        TrainConfig(data=str(kaggle_zip), arch="vgg_slim", epochs=2, batch_size=16, device="cpu", out=str(out), lr=0.05)
    )
    return out / "best.pt"


@pytest.fixture(scope="session")
def exported_weights(tmp_path_factory, trained_checkpoint, kaggle_zip) -> Path:
    """Weights exported from `trained_checkpoint` as the shipped ones are, with validation figures and
    the int8 variant, so that the CPU runs them as it runs the shipped model (int8, without torch).
    Default TTA none, for speed. Returns the .safetensors path."""
    from training.export import export_checkpoint

    cached = fixture_cache("weights")
    if cached is not None and (cached / "tiny.json").is_file():  # the card is written last
        return cached / "tiny.safetensors"
    prefix = (cached or tmp_path_factory.mktemp("weights")) / "tiny"
    export_checkpoint(trained_checkpoint, prefix, data=str(kaggle_zip), default_tta="none")
    return prefix.with_name("tiny.safetensors")


def run_python(*args, env=None, timeout=240, cwd=REPO):
    """Run `python ARGS...` with this interpreter; return the CompletedProcess (text output)."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd
    )


def run_python_together(*runs: tuple[list[str], dict | None], timeout=240, cwd=REPO):
    """Run several `python ARGS...` at once, each given as (ARGS, changes to the environment or None; a
    variable set to None is removed); return their CompletedProcesses in order. Each process spends
    seconds importing torch and the like: two cores do that side by side."""
    import subprocess

    def environment(changes: dict | None) -> dict:
        merged = {**os.environ, **(changes or {})}
        return {name: value for name, value in merged.items() if value is not None}

    started = []
    for args, changes in runs:
        command = [sys.executable, *args]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        started.append((command, subprocess.Popen(command, cwd=cwd, env=environment(changes), **pipes)))
    results = []
    for command, process in started:
        stdout, stderr = process.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
    return results


def write_face_video(
    path: Path, frames: int = 20, fps: float = 10.0, noise: float = 0.0, hide_smile: float = 0.0, seed: int = 0
) -> Path:
    """An MP4 of a real face (the astronaut, scaled up to 400 px) drifting across a 640x480 background,
    written with OpenCV. `noise`: Gaussian pixel noise of that standard deviation on every frame;
    `hide_smile`: the share of frames, drawn at random, whose mouth is covered (the expression flickers)."""
    from PIL import Image
    from skimage import data

    face = np.asarray(Image.fromarray(data.astronaut()).resize((400, 400)))[:, :, ::-1]  # RGB -> BGR
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((480, 640, 3), 90, dtype=np.uint8)
        left = 60 + 4 * i
        frame[40:440, left : left + 400] = face
        if rng.random() < hide_smile:
            frame[40 + 100 : 40 + 128, left + 140 : left + 205] = 90
        if noise:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        writer.write(frame)
    writer.release()
    return path


def count_video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def astronaut_scene_counts(detect, scenes: int = 20, smallest: int = 0) -> tuple[int, int, int]:
    """Faces in generated scenes (bench/scenes.py) and how a detector does on them: (truth faces of
    `smallest` px or more, those found with IoU >= 0.3, false faces). The astronaut's face, cropped
    tight as FER2013 crops faces, stands in for the dataset's faces. `detect`: RGB array -> boxes."""
    from skimage import data

    from bench.scenes import build_scenes
    from fer.detection.base import box_iou

    face = cv2.cvtColor(data.astronaut()[75:175, 175:275], cv2.COLOR_RGB2GRAY)
    faces = np.stack([cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA)] * 40)
    truths = found = false = 0
    for scene in build_scenes(faces, np.zeros(40, int), count=scenes, seed=0):
        photo = cv2.imdecode(np.frombuffer(scene.encoded, np.uint8), cv2.IMREAD_COLOR)
        boxes = detect(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))
        for placed in scene.faces:
            if placed.box[2] >= smallest:
                truths += 1
                found += any(box_iou(placed.box, box) >= 0.3 for box in boxes)
        false += sum(all(box_iou(placed.box, box) < 0.3 for placed in scene.faces) for box in boxes)
    return truths, found, false
