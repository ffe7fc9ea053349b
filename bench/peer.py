"""fer's fast path against the PyPI `fer` package's classifier, side by side on the same CPU and faces.

    python bench/peer.py --data ../shared/data/fer2013.zip --rounds 3

The peer (PyPI `fer` 25.10.3, mini-Xception, 64x64 grayscale input) is installed by this script into
its own virtual environment (--venv; tensorflow-cpu, and the package itself without its other
dependencies, which classification does not use), never into fer's. Its two classification paths
are measured as its own code runs them (fer/fer.py, `FER._classify_emotions`): the default, a
quantized TFLite model invoked one face at a time, and the Keras model (`use_tflite=False`) called on
the whole batch. fer runs its default configuration: `Predictor.load().predict_faces` on 48x48
crops, the card's TTA. Both get the same validation faces (the peer's resized to 64x64 as its
code does), batch --batch-size, in alternating rounds; each figure is the median of --runs calls
after --warmup, and the ratio uses the peer's faster path. The CPU and its instruction sets head
the output, since int8 speed differs several times between them (fer.cpu).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PEER_PACKAGES = ["tensorflow-cpu==2.21.0"]
PEER = "fer==25.10.3"  # installed --no-deps: its other requirements (moviepy, facenet-pytorch, ...) detect or draw

# Runs inside the peer's venv: reads (N, 64, 64) uint8 faces from a .npy, prints faces/s per path as JSON.
PEER_WORKER = r"""
import json, statistics, sys, time
from importlib.resources import files
import numpy as np
import tensorflow as tf

faces_path, warmup, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# The package's own preprocessing (FER.detect_emotions): pixels / 255, then (x - 0.5) * 2.
faces = (np.load(faces_path).astype(np.float32) / 255.0 - 0.5) * 2.0
data = files("fer") / "data"
interpreter = tf.lite.Interpreter(model_path=str(data / "emotion_model_quantized.tflite"))
interpreter.allocate_tensors()
inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
keras_model = tf.keras.models.load_model(str(data / "emotion_model.hdf5"), compile=False)
batch = np.expand_dims(faces, -1)

def tflite_one_at_a_time():  # FER._classify_emotions with use_tflite=True, the default
    for i in range(len(batch)):
        interpreter.set_tensor(inp, batch[i : i + 1])
        interpreter.invoke()
        interpreter.get_tensor(out)

def keras_batch():  # FER._classify_emotions with use_tflite=False
    keras_model(batch)

result = {}
for name, call in (("tflite", tflite_one_at_a_time), ("keras", keras_batch)):
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    result[name] = len(batch) / statistics.median(seconds)
print(json.dumps(result))
"""


def ensure_peer(venv: Path) -> Path:
    """The peer's venv, made and filled once (pip from the package registry); its python."""
    python = venv.absolute() / "bin" / "python"  # absolute: the peer runs in the venv's folder
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", "import tensorflow, fer"], capture_output=True)
    if probe.returncode != 0:
        print(f"installing the peer into {venv} (tensorflow-cpu, about a minute)", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", PEER], check=True)
    return python


def validation_faces(data: str, count: int) -> np.ndarray:
    """(count, 48, 48) uint8 validation faces, the first `count` in the split's order."""
    from fer.datasets import VALIDATION, load_splits, select_split

    images = select_split(load_splits(data), VALIDATION, data).images
    return images[np.arange(count) % len(images)]


def measure_fer(predictor, faces: np.ndarray, warmup: int, runs: int) -> float:
    for _ in range(warmup):
        predictor.predict_faces(faces)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        predictor.predict_faces(faces)
        seconds.append(time.perf_counter() - start)
    return len(faces) / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/fer2013.zip")
    parser.add_argument("--weights", help="fer's weights (default: the shipped ones)")
    parser.add_argument("--venv", default="runs/peer-venv", help="the peer's virtual environment")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of fer, then the peer")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args()

    import cv2

    from fer.device import describe_device
    from fer.predictor import Predictor

    python = ensure_peer(Path(args.venv))
    faces = validation_faces(args.data, args.batch_size)
    peer_faces = Path(args.venv) / "faces64.npy"
    np.save(peer_faces, np.stack([cv2.resize(face, (64, 64)) for face in faces]))
    predictor = Predictor.load(args.weights, device="cpu")
    print(f"machine: {describe_device('cpu')}")
    print(f"fer: {predictor.card.name}, {predictor.backend} ({predictor.precision}), tta {predictor.tta}")
    print(f"peer: PyPI {PEER}, mini-Xception (tflite: its default, one face per call; keras: batched)")
    print(f"faces/s at batch {args.batch_size}: median of {args.runs} calls after {args.warmup} warm-up calls")
    print(f"{'round':>6}{'fer':>10}{'peer tflite':>13}{'peer keras':>12}{'ratio':>8}")
    rounds = []
    for number in range(1, args.rounds + 1):
        ours = measure_fer(predictor, faces, args.warmup, args.runs)
        worker = subprocess.run(
            [str(python), "-c", PEER_WORKER, str(peer_faces.resolve()), str(args.warmup), str(args.runs)],
            capture_output=True, text=True, check=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
            cwd=args.venv,  # not fer's checkout, whose fer/ would shadow the peer's package of the same name
        )  # fmt: skip
        peer = json.loads(worker.stdout.strip().splitlines()[-1])
        ratio = ours / max(peer.values())
        rounds.append({"fer": ours, **{f"peer_{name}": value for name, value in peer.items()}, "ratio": ratio})
        print(f"{number:>6}{ours:>10,.0f}{peer['tflite']:>13,.0f}{peer['keras']:>12,.0f}{ratio:>7.2f}x")
    median = {key: statistics.median(row[key] for row in rounds) for key in rounds[0]}
    print(
        f"{'median':>6}{median['fer']:>10,.0f}{median['peer_tflite']:>13,.0f}{median['peer_keras']:>12,.0f}"
        f"{median['ratio']:>7.2f}x"
    )
    if args.json:
        report = {"machine": describe_device("cpu"), "engine": predictor.backend, "rounds": rounds, "median": median}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
