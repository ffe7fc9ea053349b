"""The inference service behind the routes: admission, decoding and detection in worker threads,
classification through the dynamic batcher, and the readiness state the probes report.

One instance per app, created in the lifespan; nothing here knows about HTTP beyond ApiError.
"""

import asyncio
import contextlib
import functools
import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Awaitable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio
import numpy as np
from PIL import Image

from api import memory
from api.admission import WorkEstimate, retry_after_s
from api.batching import DynamicBatcher
from api.budgets import DecodeBudget
from api.errors import ApiError
from api.gathering import GatheredCalls
from api.metrics import Metrics
from api.settings import Settings
from api.uploads import DecodeAbandoned, open_image, to_array
from fer import __version__
from fer.card import ModelCard
from fer.cpu import cpu_info
from fer.predictor import FoundFaces, Predictor, face_results
from fer.preprocess import INPUT_SIZE

logger = logging.getLogger("api")
T = TypeVar("T")
TRIM_INTERVAL_S = 2.0
# The warm-up prepares a noise JPEG of each size (noise decodes slower than photos: a safe first price).
# The large one is past the detectors' 1280-pixel working size (max_side), where their cost stops growing.
WARM_UP_PHOTOS = ((640, 480), (1600, 1200))
# But noise is cheap to search for faces: MTCNN's refining networks see few proposals on it. Measured
# on 2 cores (2026-12-02), detection took 9 ms on the 640x480 noise, 31 ms on the astronaut, 13 ms
# (median) to 30 ms (slowest) on 30 of bench/scenes.py's photos; at 1600x1200, 31 ms against 59 and
# 38 to 77. Priced at the noise's, a first burst of real photos was admitted at as little as a third
# of its cost, and the last ones got 504. So the warm-up's detection time counts this many times over,
# until real photos replace it (the running averages follow them).
PHOTO_OVER_NOISE_DETECTION = 3.0


class InferenceService:
    def __init__(self, predictor: Predictor, settings: Settings, metrics: Metrics):
        self.predictor, self.settings, self.metrics = predictor, settings, metrics
        self.tta = settings.tta or predictor.tta
        self.batcher = DynamicBatcher(
            self._run_batch, settings.max_batch_size, settings.max_wait_ms / 1000, metrics.batch_size.observe
        )
        # Decoding and face detection run in threads (Pillow and OpenCV release the GIL); more threads
        # than cores would only make every request slower. The pixels they work on at once are budgeted.
        # The threads are their own fixed few, not anyio's shared pool: a detector keeps scratch memory
        # per thread (OpenCV's cascade about 95 MB after a large image), and the pool's threads come and
        # go by the dozen, each that ever saw a large image keeping its 95 MB (bench/api_hostile.py).
        threads = max(2, os.cpu_count() or 2)
        self._prepare_pool = ThreadPoolExecutor(threads, thread_name_prefix="fer-prepare")
        self.decode_budget = DecodeBudget(settings.decode_budget_pixels)
        metrics.decode_pixels.set_function(lambda: self.decode_budget.held)
        self.estimate = WorkEstimate(threads, settings.decode_budget_pixels)
        # On a GPU the threads hand their photos to one detection run for all of them (api/gathering.py).
        self.gathered_detection = (
            GatheredCalls(self._find_faces_together, threads, metrics.detection_batch_size.observe)
            if gathers_detection(settings.gather_detection, predictor)
            else None
        )
        metrics.expected_wait.set_function(lambda: self.estimate.queued_s)
        self.in_flight = 0
        self.answered = 0  # requests admitted and answered, for the memory trimmer
        self.ready = False
        self.draining = False
        # The int8 variant answers a little differently from the weights, so it has an id of its own.
        self.model_id = model_id(predictor.card) + ("+int8" if predictor.quantized else "")

    # ---- lifecycle ----------------------------------------------------------------------------------

    @property
    def detector_name(self) -> str:
        return self.predictor.detector.name

    async def start(self) -> None:
        self.batcher.start()
        self._trimmer = asyncio.create_task(self._trim_after_work())
        await self._warm_up()
        self.ready = True
        logger.info(
            "model %s ready on %s with %s (tta %s), face detector %s; engine: %s",
            self.model_id,
            self.predictor.device,
            self.predictor.backend,
            self.tta,
            self.detector_name,
            self.predictor.engine_reason,
        )

    async def _trim_after_work(self) -> None:
        """Every TRIM_INTERVAL_S, if requests were answered since the last time, hand the heaps' free
        pages back to the OS (api/memory.py): without it the RSS climbed by about 90 MB with each
        round of worst-case requests though nothing stayed in use (bench/api_hostile.py memory)."""
        trimmed_at = self.answered
        while True:
            await asyncio.sleep(TRIM_INTERVAL_S)
            if self.answered != trimmed_at:
                trimmed_at = self.answered
                await anyio.to_thread.run_sync(memory.trim)

    async def stop(self) -> None:
        self._trimmer.cancel()
        self.ready = False
        await self.batcher.stop()
        self._prepare_pool.shutdown(wait=False, cancel_futures=True)

    async def _warm_up(self) -> None:
        """First calls allocate memory, pick kernels and load the cascade: pay that before serving."""
        sizes = sorted({1, self.settings.max_batch_size})
        for tta in dict.fromkeys([self.tta, "none"]):
            for size in sizes:
                await self.batcher.warm_up(np.zeros((size, INPUT_SIZE, INPUT_SIZE), dtype=np.uint8), tta)
        # Photo-sized JPEGs, small and large: also the first measurements of what preparing an image costs,
        # for admission (api/admission.py), before the first burst of requests is priced.
        for width, height in WARM_UP_PHOTOS:
            jpeg = noise_jpeg(width, height)
            for _ in range(2 if width * height < 10**6 else 1):  # a first run pays for first-time allocations
                image = open_image(jpeg, max_pixels=width * height)
                _, _, _, (decode_s, detect_s) = await asyncio.get_running_loop().run_in_executor(
                    self._prepare_pool, self._find_faces, image, True
                )
            self.estimate.observe_preparation(width * height, decode_s, detect_s * PHOTO_OVER_NOISE_DETECTION, faces=1)

    # ---- admission ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def admit(self, pixels: list[int], detect: bool, tta: str | None) -> Iterator[None]:
        """A slot for one request of images of `pixels` pixels each, or 503 at once: when the model is not
        ready (loading, or stopped), when FER_MAX_QUEUE requests are in, or when the work queued ahead of
        it (measured, see api/admission.py) would not be done within FER_MAX_EXPECTED_WAIT_S.

        A draining server (SIGTERM) still serves what reaches it: until its port closes (after
        FER_DRAIN_DELAY_S) new connections, then only requests on connections already open, each
        connection closed after its answer. A load balancer that had not yet seen readiness turn 503
        sent them in good faith (refused, they were 503s under a rolling restart, bench/load_balancer.py)."""
        retry = {"Retry-After": str(self.settings.retry_after_s)}
        if not self.ready:
            raise ApiError(503, "unavailable", "the model is not loaded or the server has stopped; retry", retry)
        if self.in_flight >= self.settings.max_queue:
            raise ApiError(503, "overloaded", "the server is at capacity; retry after a moment", retry)
        cost_s = self.estimate.cost_s(pixels, detect, tta or self.tta)
        beyond_s = self.estimate.wait_beyond(cost_s, self.settings.max_expected_wait_s)
        if beyond_s > 0:
            wait = f"{self.estimate.queued_s:.1f} s of work is queued"
            retry = {"Retry-After": str(retry_after_s(beyond_s, self.settings.retry_after_s))}
            raise ApiError(503, "overloaded", f"the server is at capacity ({wait}); retry after Retry-After", retry)
        self.in_flight += 1
        self.metrics.queue_depth.set(self.in_flight)
        try:
            with self.estimate.queued(cost_s):
                yield
        finally:
            self.in_flight -= 1
            self.answered += 1
            self.metrics.queue_depth.set(self.in_flight)

    # ---- prediction ---------------------------------------------------------------------------------

    async def predict(self, data: bytes, detect: bool, tta: str | None, detector: str | None = None) -> dict:
        """Encoded image -> {"faces", "dropped_faces", "image"}; ApiError for a bad image. `detector`: a
        name from fer.options.DETECTORS for this request; None, the server's."""
        abandoned = threading.Event()  # set if the deadline passes while a thread works on the image
        image = open_image(data, self.settings.max_pixels, abandoned)  # the header only: cheap, on the event loop
        try:
            found, dropped, (height, width), (decode_s, detect_s) = await self.decode_budget.run_in_thread(
                image.width * image.height,
                lambda: self._find_faces(image, detect, abandoned, detector),
                self._prepare_pool,
                abandoned,
            )
        finally:
            # A thread still decoding it (`abandoned`) closes it when it stops: closed here, under it,
            # Pillow would fail with an AssertionError instead of stopping cleanly.
            if not abandoned.is_set():
                image.close()
        faces = len(found.boxes) + dropped
        self.estimate.observe_preparation(width * height, decode_s, detect_s if detect else None, faces)
        probabilities = await self.batcher.classify(found.pixels, tta or self.tta)
        self.metrics.faces.inc(faces)
        return {
            "faces": [face.to_dict() for face in face_results(found.boxes, probabilities, found.detected)],
            "dropped_faces": dropped,
            "image": {"width": width, "height": height},
        }

    def _find_faces(
        self, image: Image.Image, detect: bool, abandoned: threading.Event | None = None, detector: str | None = None
    ) -> tuple[FoundFaces, int, tuple[int, int], tuple[float, float]]:
        """In a worker thread: the faces found (FoundFaces), those dropped over FER_MAX_FACES, (height,
        width) and the seconds spent decoding and detecting (for admission). Only boxes and 48x48 crops leave it: the
        decoded image, the big allocation, is freed before the request waits for the classifier. Once
        `abandoned` is set (the request's deadline passed), it stops at the next read of the encoded
        image or before detection, whichever comes first."""
        started = time.perf_counter()
        try:
            array = to_array(image)  # EXIF-rotated: its shape, not the header's, is the image's size
            if abandoned is not None and abandoned.is_set():
                raise DecodeAbandoned
        except DecodeAbandoned:
            self.metrics.abandoned_decodes.inc()
            raise
        decoded = time.perf_counter()
        if detect and detector is None and self.gathered_detection is not None:
            found, share_s = self.gathered_detection(array)
            # What this photo adds to the server's work is its share of the run it was in, which the
            # threads do not share out: priced as if it were a thread's own (admission divides by them).
            detect_s = share_s * self.estimate.parallel(array.shape[0] * array.shape[1])
        else:
            found = self.predictor.find_faces(array, detect, detector=detector)
            detect_s = time.perf_counter() - decoded
        kept = self.settings.max_faces  # boxes come largest first: the smallest are dropped
        timings = (decoded - started, detect_s)
        dropped = max(0, len(found.boxes) - kept)
        return found._replace(boxes=found.boxes[:kept], pixels=found.pixels[:kept]), dropped, array.shape[:2], timings

    def _find_faces_together(self, arrays: list[np.ndarray]) -> list[tuple[FoundFaces, float]]:
        """Several threads' photos in one detection run: each one's faces and share of the time."""
        started = time.perf_counter()
        found = self.predictor.find_faces_many(arrays)
        share_s = (time.perf_counter() - started) / len(arrays)
        return [(faces, share_s) for faces in found]

    def _run_batch(self, pixels: np.ndarray, tta: str) -> np.ndarray:
        started = time.perf_counter()
        probabilities = self.predictor.predict_pixels(pixels, tta)
        self.estimate.observe_batch(tta, time.perf_counter() - started, len(pixels))
        return probabilities

    def model_card(self) -> dict:
        card = self.predictor.card
        return {
            "id": self.model_id,
            "name": card.name,
            "arch": card.arch,
            "labels": card.labels,
            "input": card.input,
            "parameters": card.parameters,
            "flops_per_face": card.flops_per_face,
            "metrics": self.predictor.validation_metrics,
            "default_tta": self.tta,
            "device": str(self.predictor.device),
            "precision": self.predictor.precision,
            "backend": self.predictor.backend,
            "engine_reason": self.predictor.engine_reason,
            "cpu": cpu_info().describe(),
            "detector": self.detector_name,
            "version": __version__,
            "exported": card.exported,
            "card": card,
        }


@functools.cache
def noise_jpeg(width: int, height: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def gathers_detection(setting: str, predictor: Predictor) -> bool:
    """FER_GATHER_DETECTION: "auto" gathers when the detector runs on a GPU and can take several photos
    at once (MTCNN); on the CPU one photo per thread keeps every core busy already."""
    if setting == "auto":
        return getattr(predictor.detector, "device", "cpu") != "cpu"  # MTCNN's, as the predictor's device
    return setting == "on"


def model_id(card: ModelCard) -> str:
    """name@first-12-hex-of-sha256: changes whenever the weights do (a .pt's card has no sha256: then
    the card's own digest)."""
    digest = card.sha256 or hashlib.sha256(card.to_json().encode()).hexdigest()
    return f"{card.name}@{digest[:12]}"


async def with_deadline(seconds: float, work: Awaitable[T]) -> T:
    """Await `work`; 504 when it takes longer than `seconds`. Cancelling it frees its admission slot
    and drops its faces from the batcher's queue."""
    try:
        return await asyncio.wait_for(work, seconds)
    except asyncio.TimeoutError:
        raise ApiError(504, "timeout", f"the request took longer than {seconds:g} s and was abandoned") from None
