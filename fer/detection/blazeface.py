"""BlazeFace, Google MediaPipe's CNN face detector, run by ONNX Runtime.

The model is MediaPipe's full-range face detector (Apache-2.0), converted once to the ONNX file
shipped in fer/detection/model_files/ (scripts/detectors/convert.py; NOTICE.md there), checked
against its sha256 when the detector is created. Nothing is downloaded.

What MediaPipe's graph does around the network is done here the same way: the image is letterboxed
(scaled to fit, the rest black), pixels are scaled to [-1, 1]; each anchor, one per 4x4 pixels of the
input, gives a score (sigmoid) and a box and six keypoints as offsets in input pixels from its centre;
boxes over the score threshold are merged by weighted non-maximum suppression (overlapping boxes
averaged, weighted by score).

One thing differs: the network is fully convolutional, and fer runs it at `input_side` pixels, not
only at the 192 it was trained at. At 192, a face of 48 pixels in a 640x480 photo is 14 pixels wide
and goes unseen; a larger input finds smaller faces for more computation (bench/faces.py measures
the trade).
"""

from typing import TYPE_CHECKING

import cv2
import numpy as np

from fer.detection.base import Box, Detection, FramedDetector, corner_iou, pixel_boxes
from fer.detection.framing import Framing
from fer.detection.shipped import cpu_session, model_file

if TYPE_CHECKING:
    import onnxruntime

MODEL_FILE = "blazeface_full_range.onnx"  # in fer/detection/model_files/
TRAINED_SIDE = 192  # the model file's input: 192x192
SIDE_MULTIPLE = 32  # the network halves its input five times, then doubles it back three
STRIDE = 4  # input pixels per anchor, along each side
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")  # the person's right and left
SCORE_THRESHOLD = 0.6  # MediaPipe's for this model
MERGE_IOU = 0.3  # boxes overlapping more than this are one face
FRAMING = Framing(side=1.199, dx=0.011, dy=-0.045)  # fitted by bench/framing.py (docs/benchmarks.md)


def load_session(threads: int | None = None) -> "onnxruntime.InferenceSession":
    """An ONNX Runtime session of the checked full-range model."""
    return cpu_session(model_file(MODEL_FILE), threads)


def anchors(height: int, width: int) -> np.ndarray:
    """(height * width / 16, 2) anchor centres in input pixels (x, y), row by row."""
    ys, xs = np.meshgrid(
        (np.arange(height // STRIDE, dtype=np.float32) + 0.5) * STRIDE,
        (np.arange(width // STRIDE, dtype=np.float32) + 0.5) * STRIDE,
        indexing="ij",
    )
    return np.stack([xs.ravel(), ys.ravel()], 1)


class BlazeFaceDetector(FramedDetector):
    """Faces as (x, y, w, h) boxes, largest first, like every fer detector; `detections` also gives
    each face's keypoints and score. Safe to share between threads (one ONNX Runtime session)."""

    name = "blazeface"
    uses_color = True  # trained on color photos: the Predictor hands it RGB when the image has color

    def __init__(
        self,
        input_side: int = TRAINED_SIDE,
        score_threshold: float = SCORE_THRESHOLD,
        session: "onnxruntime.InferenceSession | None" = None,
        framing: Framing | None = None,
    ) -> None:
        """`input_side`: the longer side of the network's input, a multiple of 32."""
        if input_side < SIDE_MULTIPLE or input_side % SIDE_MULTIPLE:
            raise ValueError(f"input_side must be a multiple of {SIDE_MULTIPLE}, not {input_side}")
        self.input_side, self.score_threshold = input_side, score_threshold
        self.framing = framing or FRAMING
        self.session = session or load_session()
        self._anchors: dict[tuple[int, int], np.ndarray] = {}

    def detect(self, image: np.ndarray) -> list[Box]:
        return pixel_boxes([detection.box for detection in self.detections(image)], *image.shape[:2])

    def detections(self, image: np.ndarray) -> list[Detection]:
        """(H, W, 3) RGB or (H, W) grayscale uint8 -> the faces found, highest score first."""
        tensor, scale = letterbox(image, self.input_side)
        size = tensor.shape[2:]
        if size not in self._anchors:
            self._anchors[size] = anchors(*size)
        raw_boxes, raw_scores = self.session.run(None, {"image": tensor})
        found = decode(raw_boxes[0], raw_scores[0, :, 0], self._anchors[size], self.score_threshold)
        return [
            Detection(tuple(float(v) for v in (box[0], box[1], box[2] - box[0], box[3] - box[1])), points, score)
            for box, points, score in ((box / scale, points / scale, score) for box, points, score in found)
        ]


def letterbox(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """The (1, 3, H, W) input in [-1, 1]: the image scaled so that its longer side is `side`, at the
    top left of a black canvas whose sides are multiples of 32; and the scale from image to input."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    height, width = image.shape[:2]
    scale = side / max(height, width)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_width, new_height), interpolation=interpolation)
    padded = [-(-extent // SIDE_MULTIPLE) * SIDE_MULTIPLE for extent in (new_height, new_width)]
    canvas = np.zeros((*padded, 3), np.uint8)
    canvas[:new_height, :new_width] = resized
    tensor = canvas.transpose(2, 0, 1)[np.newaxis].astype(np.float32) / 127.5 - 1.0
    return tensor, scale


def decode(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, threshold: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """The network's (A, 16) box values and (A,) logits -> merged (box x0 y0 x1 y1, (6, 2) keypoints,
    score) in input pixels, highest score first."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -100.0, 100.0)))
    keep = scores >= threshold
    values, scores, anchors = raw_boxes[keep], scores[keep], anchors[keep]
    centres = values[:, :2] + anchors
    half = values[:, 2:4] / 2
    boxes = np.concatenate([centres - half, centres + half], 1)
    keypoints = values[:, 4:].reshape(-1, len(KEYPOINTS), 2) + anchors[:, np.newaxis]
    return weighted_nms(boxes, keypoints, scores, MERGE_IOU)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, threshold: float) -> list:
    """MediaPipe's weighted non-maximum suppression: the best box and every box overlapping it by more
    than `threshold` become one face, their coordinates averaged by score; the best score is kept."""
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    merged = []
    while len(scores):
        cluster = corner_iou(boxes[0], boxes) > threshold
        cluster[0] = True
        weights = scores[cluster] / scores[cluster].sum()
        box = (boxes[cluster] * weights[:, np.newaxis]).sum(0)
        points = (keypoints[cluster] * weights[:, np.newaxis, np.newaxis]).sum(0)
        merged.append((box, points, float(scores[0])))
        boxes, keypoints, scores = boxes[~cluster], keypoints[~cluster], scores[~cluster]
    return merged
