"""The face detectors' model files, shipped inside fer in fer/detection/model_files/ (NOTICE.md there
gives each one's origin and licence) and checked against the sha256 below before they are loaded, so
a damaged or swapped file is a clear error, never different faces. They were made once from the
registry packages NOTICE.md names, by `python -m scripts.detectors.convert`; its test checks that it
still makes exactly these files. Nothing is downloaded, and no detector needs those packages.
"""

import hashlib
from pathlib import Path

from fer.errors import FerError
from fer.onnx_runtime import cpu_session

FOLDER = Path(__file__).resolve().parent / "model_files"
SHA256 = {
    "mtcnn_pnet.onnx": "6ce2e6517b6618d88015a539513c6620a74ffc3e722f6ce2133289aa256f24a3",  # 27,615 bytes
    "mtcnn_rnet.onnx": "4b136f6b0d3ec10fa505f2e55169e9601c20d97e3209ea2da9280582a1b5c017",  # 402,180 bytes
    "mtcnn_onet.onnx": "d1f9ab8caf9213e18e50afc47c03331858638e1aa967d070aad048a665585ca8",  # 1,558,099 bytes
    "blazeface_full_range.onnx": "718122d17070859be232a40c91f246d4ac891eb0c623e1cad46f35c61eeec248",  # 2,075,771 bytes
    "yunet_2023mar.onnx": "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",  # 232,589 bytes
}

__all__ = ["FOLDER", "SHA256", "cpu_session", "model_file"]


def model_file(name: str, folder: Path | None = None) -> Path:
    """The path of the shipped model file `name` in `folder` (default FOLDER), after checking its sha256."""
    if name not in SHA256:
        raise ValueError(f"fer ships no detector model file {name!r}; it ships {', '.join(SHA256)}")
    path = (folder or FOLDER) / name
    if not path.is_file():
        raise FerError(f"the face detector's model file {path} is missing: reinstall fer")
    if hashlib.sha256(path.read_bytes()).hexdigest() != SHA256[name]:
        raise FerError(f"{path} is not the face detector model fer was measured with (changed or damaged)")
    return path
