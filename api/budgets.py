"""Server-wide budgets that bound the memory clients can make the server use, whatever their number.

- `UploadBudget`: bytes of request bodies held at once (api/middleware.py BodyIntake takes from it).
- `DecodeBudget`: pixels being decoded and searched for faces at once. A decoded image takes about
  10 bytes a pixel at its peak (the decoder's copy, the RGB array, the grayscale frame, the detector's
  pyramid), so the 25-megapixel default holds decoding to roughly 250 MB.

Both live on the event loop of one worker process; no locks are needed there.
"""

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")


class UploadBudget:
    def __init__(self, max_bytes: int):
        self.max_bytes, self.held = max_bytes, 0

    def take(self, size: int) -> bool:
        """Reserve `size` bytes if they fit; False (nothing reserved) if they do not."""
        if self.held + size > self.max_bytes:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        self.held -= size

    @property
    def free(self) -> int:
        return self.max_bytes - self.held


class DecodeBudget:
    """Pixels in decoding at once. Requests wait their turn in arrival order (a big image is never
    starved by a stream of small ones); one larger than the whole budget waits until it runs alone."""

    def __init__(self, max_pixels: int):
        self.max_pixels = self.free = max_pixels
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()

    @property
    def held(self) -> int:
        return self.max_pixels - self.free

    async def run_in_thread(
        self, pixels: int, work: Callable[[], T], threads: Executor, abandoned: threading.Event | None = None
    ) -> T:
        """Run `work` in one of `threads` once `pixels` are free, and give them back when the thread is
        done. A request cancelled meanwhile (its deadline passed) answers at once. A job no thread has
        started is dropped; a started one is told through `abandoned`, and its pixels stay taken until
        its thread ends (work that checks `abandoned` ends soon): the budget bounds memory, not requests."""
        pixels = min(pixels, self.max_pixels)
        await self._take(pixels)
        loop = asyncio.get_running_loop()
        state = {"phase": "queued"}  # queued -> running (the thread gives back) | dropped (we give back)
        lock = threading.Lock()

        def run() -> T:
            with lock:
                if state["phase"] == "dropped":
                    raise asyncio.CancelledError  # nobody waits for this result any more
                state["phase"] = "running"
            try:
                return work()
            finally:
                loop.call_soon_threadsafe(self._give_back, pixels)

        try:
            return await loop.run_in_executor(threads, run)
        except BaseException:
            with lock:
                never_ran = state["phase"] == "queued"
                state["phase"] = "dropped"
            if never_ran:  # cancelled before a thread picked it up: it never will
                self._give_back(pixels)
            elif abandoned is not None:
                abandoned.set()
            raise

    async def _take(self, pixels: int) -> None:
        if not self._waiting and pixels <= self.free:
            self.free -= pixels
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append((pixels, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # granted just as we were cancelled
                self._give_back(pixels)
            else:
                self._waiting.remove((pixels, turn))
                self._grant()  # a big image at the head may have been blocking smaller ones
            raise

    def _give_back(self, pixels: int) -> None:
        self.free += pixels
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._waiting[0][0] <= self.free:
            pixels, turn = self._waiting.popleft()
            self.free -= pixels
            turn.set_result(None)
