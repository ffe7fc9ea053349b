"""The choices a user makes about how a model runs: the device, the TTA mode, the CPU engine and the
face detector.

They live here, free of torch and OpenCV, so that the command line can offer them in `--help`
without paying for importing either (`fer --help` starts in well under a second).
"""

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")

# Test-time augmentation, see fer.tta: none (1 view), flip (2 views), tencrop (10 views).
TTA_MODES = ("none", "flip", "tencrop")

# CPU engines. "auto": the int8 variant when its card shows its accuracy holds (about 3x faster on
# CPUs with VNNI), else ONNX Runtime float32 when the .onnx beside the weights agrees, else PyTorch;
# the others force one engine.
BACKENDS = ("auto", "torch", "onnx", "int8")


def check_tta(mode: str) -> str:
    """`mode` itself when it is a TTA mode; the one place an unknown mode is refused."""
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; choose from {', '.join(TTA_MODES)}")
    return mode


# Face detectors (fer.detection): MTCNN, a CNN cascade, finds the most faces and the eyes to align them
# by (bench/faces.py); YuNet, OpenCV's CNN, finds faces at more angles; Haar, OpenCV's cascade, needs no
# model file; BlazeFace, MediaPipe's CNN, is the fastest.
DETECTORS = ("mtcnn", "yunet", "haar", "blazeface")
DEFAULT_DETECTOR = "mtcnn"
