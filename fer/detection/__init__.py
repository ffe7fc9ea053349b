"""Face detection: one protocol (base.FaceDetector), the detectors by name (registry), how their
findings become the classifier's crops (framing), and their shipped, checked model files (shipped).

    >>> from fer.detection import create_detector
    >>> detector = create_detector("yunet")
    >>> detector.detect(rgb)                         # [(x, y, w, h), ...], largest first

| module | detector | needs |
|---|---|---|
| mtcnn.py (+ mtcnn_layers.py, mtcnn_torch.py for a GPU) | MTCNN, the default | ONNX Runtime, or torch on a GPU |
| yunet.py | YuNet | OpenCV |
| blazeface.py | BlazeFace | ONNX Runtime |
| haar.py | Haar cascade | OpenCV (its own cascade file) |
"""

from fer.detection.base import Detection, FaceCrops, FaceDetector, FramedDetector
from fer.detection.framing import Alignment, Box, Framing
from fer.detection.registry import create_detector

__all__ = ["Alignment", "Box", "Detection", "FaceCrops", "FaceDetector", "Framing", "FramedDetector", "create_detector"]
