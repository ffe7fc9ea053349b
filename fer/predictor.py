"""Emotion prediction for face crops and whole images.

>>> predictor = Predictor.load()                      # shipped weights, best device, card's TTA
>>> probabilities = predictor.predict_faces(crops)    # (N, 7), columns in EMOTIONS order
>>> for face in predictor.predict_image("photo.jpg"):
...     print(face.box, face.emotion, round(face.score, 2))
"""

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from fer.card import Metrics, ModelCard
from fer.detection import Box, FaceDetector, create_detector
from fer.detection.base import crop_boxes
from fer.device import inference_device
from fer.engines import Engine, choose_engine
from fer.images import ImageInput, read_image
from fer.labels import EMOTIONS
from fer.options import check_tta
from fer.preprocess import ColorOrder, to_gray48, to_uint8
from fer.tta import predict_probabilities
from fer.weights import default_weights_path

# An image in which the detector finds no face is classified whole, as a face crop, when its shape is a
# crop's: no more than this many pixels on its longer side and no longer than this ratio of sides.
# FER2013's 48x48 faces are (MTCNN finds no face in 6% of them shown alone); photos of scenes, 4:3 or
# wider, never are, so no false face is added to them (docs/benchmarks.md, "Face crops").
FACE_CROP_MAX_SIDE = 512
FACE_CROP_MAX_RATIO = 1.25


class FoundFaces(NamedTuple):
    """One image's faces, ready for Predictor.predict_pixels."""

    boxes: list[Box]  # largest first, those of the crops the classifier sees
    pixels: np.ndarray  # (N, 48, 48) uint8 crops
    detected: bool = True  # False: no face was found, and the whole image, a face crop by its shape, is the one face


@dataclass(frozen=True)
class FaceResult:
    box: tuple[int, int, int, int]  # x, y, width, height in pixels of the image
    emotion: str
    score: float
    scores: dict[str, float]
    detected: bool = True  # False: the whole image, taken as a face crop, as no face was found in it (FoundFaces)

    def to_dict(self) -> dict:
        return {
            "box": list(self.box), "emotion": self.emotion, "score": self.score, "scores": self.scores,
            "detected": self.detected,
        }  # fmt: skip

    @property
    def probabilities(self) -> np.ndarray:
        """(7,) float32, EMOTIONS order."""
        return np.array([self.scores[emotion] for emotion in EMOTIONS], dtype=np.float32)


class Predictor:
    def __init__(
        self,
        engine: Engine,
        card: ModelCard,
        tta: str = "none",
        detector: FaceDetector | None = None,
        batch_size: int = 256,
        engine_reason: str = "",
    ):
        """`engine`: what turns pixels into logits (fer.engines; Predictor.load chooses one).
        `engine_reason`: why this engine runs, for logs, `fer models` and /v1/model."""
        check_tta(tta)
        self.engine = engine
        self.device = engine.device  # as torch names it: "cpu", "cuda:0", "mps"
        self.backend = engine.name
        self.precision = engine.precision
        self.engine_reason = engine_reason
        self.card = card
        self.tta = tta
        self.batch_size = batch_size
        self._detector = detector
        self._detectors_by_name: dict[str, FaceDetector] = {}
        self._detectors_lock = threading.Lock()  # concurrent requests may ask for a new detector at once

    @classmethod
    def load(
        cls,
        weights: str | os.PathLike | None = None,
        device: str = "auto",
        tta: str | None = None,
        detector: FaceDetector | str | None = None,
        backend: str = "auto",
    ) -> "Predictor":
        """Weights: a .safetensors (with its .json card) or a training checkpoint; default: shipped weights.
        `tta` defaults to the card's `default_tta` (none for the shipped model: docs/model.md says why).
        `backend` (fer.options.BACKENDS): the engine, as fer.engines.choose_engine picks it; on a CPU,
        "auto" runs the int8 variant when its accuracy holds here, without importing torch.
        `detector`: a FaceDetector, or a name from fer.options.DETECTORS, created now so that a damaged
        model file fails here; None: the default detector (MTCNN), created when first needed. A detector
        that can (MTCNN) runs on the predictor's device."""
        resolved = inference_device(device)
        if isinstance(detector, str):
            detector = create_detector(detector, resolved)
        engine, card, reason = choose_engine(
            weights if weights is not None else default_weights_path(), resolved, backend
        )
        return cls(engine, card, tta or card.default_tta, detector, engine_reason=reason)

    @property
    def quantized(self) -> bool:
        return self.precision == "int8"

    @property
    def validation_metrics(self) -> Metrics:
        """The card's validation accuracy of what runs: the int8 variant has its own."""
        return self.card.int8.metrics if self.quantized and self.card.int8 else self.card.metrics

    @property
    def detector(self) -> FaceDetector:
        """The predictor's own detector (Predictor.load's `detector`)."""
        if self._detector is None:
            with self._detectors_lock:
                if self._detector is None:  # on first use: classifying crops needs none
                    self._detector = create_detector(device=self.device)
        return self._detector

    def detector_named(self, name: str | None) -> FaceDetector:
        """The predictor's own detector for None, else the detector called `name` (fer.options.DETECTORS),
        created on first use and kept: what a request that names its detector gets."""
        if name is None:
            return self.detector
        with self._detectors_lock:
            if name not in self._detectors_by_name:
                self._detectors_by_name[name] = create_detector(name, self.device)
            return self._detectors_by_name[name]

    def predict_pixels(self, pixels: np.ndarray, tta: str | None = None) -> np.ndarray:
        """(N, 48, 48) uint8 faces, already preprocessed -> (N, 7) float32 probabilities, in batches.
        `tta` overrides the predictor's own mode for this call."""
        tta = check_tta(tta or self.tta)
        pixels = np.asarray(pixels)
        outputs = [
            predict_probabilities(
                self.engine, pixels[start : start + self.batch_size, np.newaxis], tta, self.card.window
            )
            for start in range(0, len(pixels), self.batch_size)
        ]
        if not outputs:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        return np.concatenate(outputs)

    def predict_faces(self, faces: Sequence[np.ndarray | Image.Image], color_order: ColorOrder = "RGB") -> np.ndarray:
        """Face crops (grayscale or color arrays, or PIL images) -> (N, 7) probabilities, EMOTIONS order."""
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        return self.predict_pixels(np.stack([to_gray48(face, color_order) for face in faces]))

    def predict_image(
        self,
        image: ImageInput,
        detect: bool = True,
        color_order: ColorOrder = "RGB",
        detector: str | None = None,
        face_crop_fallback: bool = True,
    ) -> list[FaceResult]:
        """The path from an image to an answer, for the library, `fer predict` (photos and video frames)
        and the webcam: find the faces, classify them in one batch, one result per face (largest
        first). With detect=False the whole image is one face; see find_faces for the rest. `image`: a
        path, encoded bytes, a PIL image, or an array in `color_order`. The server runs the same two
        halves with its batcher between them (api.service)."""
        found = self.find_faces(image, detect, color_order, detector, face_crop_fallback)
        return face_results(found.boxes, self.predict_pixels(found.pixels), found.detected)

    def find_faces(
        self,
        image: ImageInput,
        detect: bool = True,
        color_order: ColorOrder = "RGB",
        detector: str | None = None,
        face_crop_fallback: bool = True,
    ) -> FoundFaces:
        """An image (as for predict_image) -> its faces' boxes (largest first) and (N, 48, 48) uint8
        crops, ready for `predict_pixels`. The image is turned to grayscale once: every crop comes from
        that one frame (a detector that looks at color, `uses_color`, gets the color image). The
        detector frames its faces as FER2013 frames them (MTCNN aligns them at eye level); the boxes
        are those of the crops the classifier sees. `detector`: a name from fer.options.DETECTORS for
        this call; None, the predictor's own. `face_crop_fallback`: when no face is found in an image
        whose shape is a face crop's (FACE_CROP_MAX_SIDE, FACE_CROP_MAX_RATIO), the whole image is the
        face, with `detected` False. Kept apart from classification so that a server can detect faces
        of many images in parallel and classify them together in one batch."""
        return self.find_faces_many([image], detect, color_order, detector, face_crop_fallback)[0]

    def find_faces_many(
        self,
        images: Sequence[ImageInput],
        detect: bool = True,
        color_order: ColorOrder = "RGB",
        detector: str | None = None,
        face_crop_fallback: bool = True,
    ) -> list[FoundFaces]:
        """find_faces for several images, given to the detector together: MTCNN looks at all of them with
        one run of each of its networks, which is what keeps a GPU busy and why the server gathers
        concurrent requests' photos on one (api/gathering.py). The same faces as one image at a time."""
        images = [as_rgb_or_gray(image, color_order) for image in images]
        grays = [image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in images]
        if not detect:
            return [FoundFaces(*whole_image(gray)) for gray in grays]
        chosen = self.detector_named(detector)
        found = chosen.crop_faces_many(images if chosen.uses_color else grays, grays)
        faces = []
        for gray, (boxes, pixels) in zip(grays, found):
            if not boxes and face_crop_fallback and looks_like_face_crop(*gray.shape):
                faces.append(FoundFaces(*whole_image(gray), detected=False))
            else:
                faces.append(FoundFaces(boxes, pixels))
        return faces


def whole_image(gray: np.ndarray) -> tuple[list[Box], np.ndarray]:
    """The whole frame as the one face."""
    return crop_boxes(gray, [(0, 0, gray.shape[1], gray.shape[0])])


def looks_like_face_crop(height: int, width: int) -> bool:
    """Whether an image of this size is classified whole when no face is found in it (FoundFaces)."""
    longer, shorter = max(height, width), max(1, min(height, width))
    return longer <= FACE_CROP_MAX_SIDE and longer / shorter <= FACE_CROP_MAX_RATIO


def as_rgb_or_gray(image: ImageInput, color_order: ColorOrder = "RGB") -> np.ndarray:
    """A path, encoded bytes, a PIL image or an array in `color_order` -> uint8 RGB or grayscale array."""
    if not isinstance(image, np.ndarray):
        return read_image(image)
    array = to_uint8(image)
    if array.ndim == 3 and color_order == "BGR":
        array = array[:, :, 2::-1] if array.shape[2] == 4 else array[:, :, ::-1]
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    return np.ascontiguousarray(array)


def face_results(boxes: Sequence[Box], probabilities: np.ndarray, detected: bool = True) -> list[FaceResult]:
    """Pair each box with its (7,) probability row; `detected` as FoundFaces gave it."""
    results = []
    for box, row in zip(boxes, probabilities):
        best = int(np.argmax(row))
        scores = {emotion: float(p) for emotion, p in zip(EMOTIONS, row)}
        results.append(FaceResult(tuple(int(v) for v in box), EMOTIONS[best], float(row[best]), scores, detected))
    return results
