"""Face detectors by name, as the library, the command line, the API (per request too) and the webcam
demo choose them (--detector, FER_DETECTOR, ?detector=). The names and the default live in
fer.options, free of OpenCV, for `--help`; each detector's module is imported only when chosen.
"""

from fer.detection.base import FaceDetector
from fer.options import DEFAULT_DETECTOR, DETECTORS


def create_detector(name: str = DEFAULT_DETECTOR, device: str = "cpu") -> FaceDetector:
    """The detector called `name` with its default settings (calibrated framing included). MTCNN runs
    on `device` (as torch names it: "cpu", "cuda:0"); the others on the CPU."""
    if name == "mtcnn":
        from fer.detection.mtcnn import MtcnnFaceDetector

        return MtcnnFaceDetector(device=device)
    if name == "yunet":
        from fer.detection.yunet import YuNetFaceDetector

        return YuNetFaceDetector()
    if name == "haar":
        from fer.detection.haar import HaarFaceDetector

        return HaarFaceDetector()
    if name == "blazeface":
        from fer.detection.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(input_side=384, score_threshold=0.5)
    raise ValueError(f"unknown face detector {name!r}; choose from {', '.join(DETECTORS)}")
