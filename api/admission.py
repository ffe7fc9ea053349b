"""How long the work already admitted will take, so that a request the server cannot answer in time is
refused at once (503) instead of timing out after a long wait (504).

A request's work is its images' preparation (decoding, and finding faces when asked) and their faces'
classification. All are timed as the server runs: decoding per megapixel and detection per image in
the worker threads,
classification per face in the batcher (under load the batches grow and a face gets cheaper, which the
measurements follow). The estimate of the work queued ahead is the sum of the estimates of every
request admitted and not yet answered, each taken when it was admitted.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager

SMOOTHING = 0.2  # weight of a new measurement in the running averages
SMALLEST_IMAGE = 100_000  # pixels: below this, an image's fixed costs dominate; it counts as this many


class WorkEstimate:
    def __init__(self, prepare_threads: int):
        self.prepare_threads = prepare_threads
        # Until measured (the service's warm-up measures both), about what 2 cores take. Decoding grows
        # with the pixels; detection hardly does (the detector scales big images down first).
        self.decode_s_per_mp = 0.02
        self.detect_s = 0.05  # per image
        self.face_s: dict[str, float] = {}  # seconds per face, by TTA mode
        self.faces_per_image = 1.0  # with detection; without, an image is one face
        self.queued_s = 0.0  # estimated seconds of work admitted and not yet answered

    def cost_s(self, pixels: list[int], detect: bool, tta: str) -> float:
        """Estimated seconds of server time that a request's images (their pixel counts) add."""
        megapixels = sum(max(count, SMALLEST_IMAGE) for count in pixels) / 1e6
        prepare_s = megapixels * self.decode_s_per_mp + (len(pixels) * self.detect_s if detect else 0)
        faces = len(pixels) * (self.faces_per_image if detect else 1)
        face_s = self.face_s.get(tta, max(self.face_s.values(), default=0.001))
        return prepare_s / self.prepare_threads + faces * face_s

    @contextmanager
    def queued(self, cost_s: float) -> Iterator[None]:
        self.queued_s += cost_s
        try:
            yield
        finally:
            self.queued_s = max(0.0, self.queued_s - cost_s)

    def wait_beyond(self, cost_s: float, limit_s: float) -> float:
        """Seconds by which a request of `cost_s` would finish past `limit_s` (0 when it fits). A request
        that finds nothing queued always fits: however large, it can only be answered by running it
        (FER_MAX_REQUEST_PIXELS bounds how large)."""
        if self.queued_s <= 0:
            return 0.0
        return max(0.0, self.queued_s + cost_s - limit_s)

    def observe_preparation(self, pixels: int, decode_s: float, detect_s: float | None, faces: int) -> None:
        """One image prepared: decoded in `decode_s`, its faces found in `detect_s` (None: not asked)."""
        self.decode_s_per_mp = _smooth(self.decode_s_per_mp, decode_s / (max(pixels, SMALLEST_IMAGE) / 1e6))
        if detect_s is not None:
            self.detect_s = _smooth(self.detect_s, detect_s)
            self.faces_per_image = _smooth(self.faces_per_image, faces)

    def observe_batch(self, tta: str, seconds: float, faces: int) -> None:
        if faces:
            per_face = seconds / faces
            self.face_s[tta] = _smooth(self.face_s.get(tta, per_face), per_face)


def retry_after_s(beyond_s: float, minimum: int) -> int:
    """Retry-After for a request refused because the queue is `beyond_s` seconds too long."""
    return max(minimum, math.ceil(beyond_s))


def _smooth(average: float, sample: float) -> float:
    return (1 - SMOOTHING) * average + SMOOTHING * sample
