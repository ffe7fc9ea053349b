"""Dynamic batching: faces from concurrent requests are classified together in one forward pass.

A request puts its faces, (N, 48, 48) uint8, on a queue and awaits a future. One collector task takes
the first waiting job, lets others join it for up to `max_wait_s` or until `max_batch_size` faces are
in, and runs the model on them in a single worker thread, so the event loop never blocks on torch and
the GPU (or the CPU's cores) see one big batch instead of many small ones. Jobs that asked for
different test-time augmentation run as separate forward passes of the same round.

A request that gave up (its deadline passed, its client left) cancels its future; the collector skips
cancelled jobs, so they cost nothing further.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from fer.labels import NUM_CLASSES

RunBatch = Callable[[np.ndarray, str], np.ndarray]  # ((B, 48, 48) uint8, tta) -> (B, 7) probabilities


@dataclass
class _Job:
    pixels: np.ndarray  # (N, 48, 48) uint8
    tta: str
    future: asyncio.Future


class DynamicBatcher:
    def __init__(
        self,
        run_batch: RunBatch,
        max_batch_size: int,  # faces a pass takes from waiting requests (a request is never split)
        max_wait_s: float,  # how long a pass that is not full waits for more requests
        on_batch: Callable[[int], None] = lambda faces: None,
    ):
        self.run_batch, self.max_batch_size, self.max_wait_s, self.on_batch = (
            run_batch,
            max_batch_size,
            max_wait_s,
            on_batch,
        )
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        # One thread: torch already spreads one forward pass over all cores (or the GPU), and one
        # pass at a time keeps GPU memory bounded.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fer-batcher")
        self._collector: asyncio.Task | None = None

    def start(self) -> None:
        self._collector = asyncio.create_task(self._collect_forever(), name="fer-batcher")

    async def stop(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=True)

    async def warm_up(self, pixels: np.ndarray, tta: str) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self.run_batch, pixels, tta)

    async def classify(self, pixels: np.ndarray, tta: str) -> np.ndarray:
        """(N, 48, 48) uint8 -> (N, 7) probabilities, computed together with other requests' faces."""
        if not len(pixels):
            return np.zeros((0, NUM_CLASSES), dtype=np.float32)
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(pixels, tta, future))
        return await future

    async def _collect_forever(self) -> None:
        while True:
            jobs = await self._collect_round()
            for tta in dict.fromkeys(job.tta for job in jobs):
                await self._run([job for job in jobs if job.tta == tta], tta)

    async def _collect_round(self) -> list[_Job]:
        jobs = [await self._queue.get()]
        self._take_waiting(jobs)
        if self._faces(jobs) < self.max_batch_size:
            await asyncio.sleep(self.max_wait_s)  # let concurrent requests join this batch (0: a yield)
            self._take_waiting(jobs)
        return [job for job in jobs if not job.future.done()]  # skip requests that gave up meanwhile

    def _take_waiting(self, jobs: list[_Job]) -> None:
        while self._faces(jobs) < self.max_batch_size and not self._queue.empty():
            jobs.append(self._queue.get_nowait())

    @staticmethod
    def _faces(jobs: list[_Job]) -> int:
        return sum(len(job.pixels) for job in jobs)

    async def _run(self, jobs: list[_Job], tta: str) -> None:
        if not jobs:
            return
        pixels = np.concatenate([job.pixels for job in jobs])  # (B, 48, 48)
        self.on_batch(len(pixels))
        try:
            probabilities = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.run_batch, pixels, tta
            )
        except Exception as error:  # the model failed: every request of this batch learns why
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        start = 0
        for job in jobs:
            end = start + len(job.pixels)
            if not job.future.done():
                job.future.set_result(probabilities[start:end])
            start = end
