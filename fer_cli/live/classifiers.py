"""Per-frame face detection and classification: in this process with a Predictor, or through a
running `fer serve` (one POST per frame, the API's own detection and batching)."""

import json
import urllib.error
import urllib.request
import uuid

import cv2
import numpy as np

from fer.detection.framing import Box
from fer.device import describe_device
from fer.errors import FerError
from fer.labels import EMOTIONS
from fer.predictor import Predictor


class LocalClassifier:
    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.device = f"{predictor.device.split(':')[0]} ({predictor.backend}): {describe_device(predictor.device)}"

    def classify(self, frame_bgr: np.ndarray) -> tuple[list[Box], np.ndarray]:
        """Faces of one BGR frame, classified in one batch: boxes and (N, 7) probabilities."""
        # A camera's frame is a scene: one without a face found has none (no whole-frame answer).
        faces = self.predictor.predict_image(frame_bgr, color_order="BGR", face_crop_fallback=False)
        probabilities = np.array([face.probabilities for face in faces], dtype=np.float32)
        return [face.box for face in faces], probabilities.reshape(len(faces), len(EMOTIONS))


class ApiClassifier:
    """Frames go to POST {url}/v1/predict as JPEG; fails early, with one line, if the API is unreachable."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 15.0, jpeg_quality: int = 90):
        self.url, self.timeout, self.jpeg_quality = url.rstrip("/"), timeout, jpeg_quality
        self.headers = {"X-API-Key": api_key} if api_key else {}
        card = json.loads(self._request(urllib.request.Request(f"{self.url}/v1/model", headers=self.headers)))
        self.device = f"api {card.get('device', '?')}: {card.get('id', '?')}"

    def classify(self, frame_bgr: np.ndarray) -> tuple[list[Box], np.ndarray]:
        ok, jpeg = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise FerError("cannot encode the frame as JPEG")
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="frame.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + jpeg.tobytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            f"{self.url}/v1/predict",
            data=body,
            method="POST",
            headers={**self.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        faces = json.loads(self._request(request))["faces"]
        boxes = [tuple(face["box"]) for face in faces]
        probabilities = np.array([[face["scores"][e] for e in EMOTIONS] for face in faces], dtype=np.float32)
        return boxes, probabilities.reshape(len(faces), len(EMOTIONS))

    def _request(self, request: urllib.request.Request) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = error.reason
            raise FerError(f"the API at {self.url} answered {error.code}: {message}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise FerError(f"cannot reach the API at {self.url} ({reason})") from None
