"""Face detectors by name, as the command line, the API and the webcam demo choose them (--detector,
FER_DETECTOR). Each is imported only when chosen: Haar needs nothing beyond OpenCV, MTCNN and
BlazeFace read their model files from packages `make install` adds (fer/mtcnn.py, fer/blazeface.py).
"""

from fer.faces import FaceDetector
from fer.options import DEFAULT_DETECTOR, DETECTORS


def create_detector(name: str = DEFAULT_DETECTOR, device: str = "cpu") -> FaceDetector:
    """The detector called `name` with its default settings (calibrated framing included). MTCNN runs
    on `device` (as torch names it: "cpu", "cuda:0"); Haar and BlazeFace on the CPU."""
    if name == "mtcnn":
        from fer.mtcnn import MtcnnFaceDetector

        return MtcnnFaceDetector(device=device)
    if name == "haar":
        from fer.faces import HaarFaceDetector

        return HaarFaceDetector()
    if name == "blazeface":
        from fer.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(input_side=384, score_threshold=0.5)
    raise ValueError(f"unknown face detector {name!r}; choose from {', '.join(DETECTORS)}")
