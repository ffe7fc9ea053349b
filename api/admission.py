"""How long the work already admitted will take, so that a request the server cannot answer in time is
refused at once (503) instead of timing out after a long wait (504).

A request's work is its images' preparation (decoding, and finding faces when asked) and their faces'
classification. All are timed as the server runs: preparation per image size in the worker threads,
classification per face in the batcher (under load the batches grow and a face gets cheaper, which the
measurements follow). The estimate of the work queued ahead is the sum of the estimates of every
request admitted and not yet answered, each taken when it was admitted.

Preparation is priced by size class, not by a formula: decoding grows with the pixels, but a detector
that scales big images down (MTCNN, Haar) costs about the same beyond its working size, and a line through
two sizes is wrong for the sizes between and beyond. A first burst of large photos, priced from the
warm-up's 640x480 alone, was admitted at half its cost, and 25 of 128 got 504 (bench/api_hostile.py).
"""

import math
import statistics
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

SMOOTHING = 0.2  # weight of a new measurement in the running averages of classification times
SMALLEST_CLASS_PIXELS = 2**17  # 131,072: size classes are powers of two of pixels from here up
# A size class is priced at the median of its last few measurements, not at a running average: four
# crafted slow images (progressive JPEGs of thousands of scans) priced the 25-megapixel class at
# seconds, and every photo of that size was refused for good. Now a minority of slow images does not
# move the price, and a majority moves it only until photos measured again outnumber them.
RECENT_MEASUREMENTS = 5


def size_class(pixels: int) -> int:
    """0 for images up to 2**17 pixels, then one more per doubling (640x480 is 2, 25 megapixels 8)."""
    return max(0, math.ceil(math.log2(max(pixels, 1) / SMALLEST_CLASS_PIXELS)))


class CostBySize:
    """Seconds to prepare one image, followed per size class: the median of the class's last
    RECENT_MEASUREMENTS. A class not measured yet is priced from its measured neighbours: between two,
    by the line through them; above the largest, at that class's seconds per pixel (never cheaper per
    pixel than what was seen); below the smallest, as the smallest."""

    def __init__(self) -> None:
        self.recent: dict[int, deque[float]] = {}  # size class -> its last measurements
        self.seconds: dict[int, float] = {}  # size class -> its price, the median of `recent`

    def observe(self, pixels: int, seconds: float) -> None:
        key = size_class(pixels)
        recent = self.recent.setdefault(key, deque(maxlen=RECENT_MEASUREMENTS))
        recent.append(seconds)
        self.seconds[key] = statistics.median(recent)

    def estimate(self, pixels: int, unmeasured: float) -> float:
        if not self.seconds:
            return unmeasured
        key = size_class(pixels)
        if key in self.seconds:
            return self.seconds[key]
        below = [k for k in self.seconds if k < key]
        above = [k for k in self.seconds if k > key]
        if not below:
            return self.seconds[min(above)]
        low = max(below)
        if not above:  # the class's upper bound in pixels, at the largest measured class's rate
            return self.seconds[low] * 2.0 ** (key - low)
        high = min(above)
        share = (key - low) / (high - low)
        return self.seconds[low] + share * (self.seconds[high] - self.seconds[low])


class WorkEstimate:
    def __init__(self, prepare_threads: int, decode_budget_pixels: int):
        self.prepare_threads = prepare_threads
        self.decode_budget_pixels = decode_budget_pixels
        self.prepare = {False: CostBySize(), True: CostBySize()}  # by detect: decode only, or decode and detect
        self.face_s: dict[str, float] = {}  # seconds per face, by TTA mode
        self.faces_per_image = 1.0  # with detection; without, an image is one face
        self.queued_s = 0.0  # estimated seconds of work admitted and not yet answered
        self.admitted = 0  # requests admitted and not yet answered: whether anything is queued at all

    def cost_s(self, pixels: list[int], detect: bool, tta: str) -> float:
        """Estimated seconds of server time that a request's images (their pixel counts) add."""
        prepare_s = sum(self.prepare_s(count, detect) / self.parallel(count) for count in pixels)
        faces = len(pixels) * (self.faces_per_image if detect else 1)
        face_s = self.face_s.get(tta, max(self.face_s.values(), default=0.001))
        return prepare_s + faces * face_s

    def prepare_s(self, pixels: int, detect: bool) -> float:
        unmeasured = 0.02 * pixels / 1e6 + (0.1 if detect else 0.0)  # about what 2 cores take; the warm-up measures
        return self.prepare[detect].estimate(pixels, unmeasured)

    def parallel(self, pixels: int) -> int:
        """How many images of this size are prepared at once: the worker threads, fewer when the decode
        budget holds fewer (one 25-megapixel image fills the default budget alone)."""
        return max(1, min(self.prepare_threads, self.decode_budget_pixels // max(pixels, 1)))

    @contextmanager
    def queued(self, cost_s: float) -> Iterator[None]:
        self.queued_s += cost_s
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1
            # Costs added and taken away in another order leave a float residue (3e-15 s was seen),
            # which must not read as work queued: with nothing admitted, nothing is.
            self.queued_s = max(0.0, self.queued_s - cost_s) if self.admitted else 0.0

    def wait_beyond(self, cost_s: float, limit_s: float) -> float:
        """Seconds by which a request of `cost_s` would finish past `limit_s` (0 when it fits). A request
        that finds nothing admitted always fits: however large, it can only be answered by running it
        (FER_MAX_REQUEST_PIXELS bounds how large), and so an idle server never refuses work."""
        if not self.admitted:
            return 0.0
        return max(0.0, self.queued_s + cost_s - limit_s)

    def observe_preparation(self, pixels: int, decode_s: float, detect_s: float | None, faces: int) -> None:
        """One image prepared: decoded in `decode_s`, its faces found in `detect_s` (None: not asked)."""
        self.prepare[False].observe(pixels, decode_s)
        if detect_s is not None:
            self.prepare[True].observe(pixels, decode_s + detect_s)
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
