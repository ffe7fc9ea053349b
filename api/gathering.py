"""Calls from many threads gathered into one: how the server detects faces on a GPU.

Each request decodes its photo in a worker thread of its own (api/service.py), and on a CPU it also
detects the faces there, one photo per core. On a GPU one photo at a time leaves the device idle
between its many small network runs, so the workers hand their photos to a `GatheredCalls`: a worker
that finds no batch running runs one for every photo waiting (MTCNN's `crop_faces_many`: one run of
each network for all of them), and the others block until their answer is in. Photos that arrive
while a batch runs make the next one: no timer, so a lone request never waits for company.

The caller's thread does the work, so the decode budget (api/budgets.py) still holds the photo's
pixels until its faces are found, exactly as without gathering.
"""

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Call(Generic[Item, Result]):
    def __init__(self, item: Item):
        self.item = item
        self.finished = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class GatheredCalls(Generic[Item, Result]):
    def __init__(
        self,
        run_many: Callable[[Sequence[Item]], Sequence[Result]],
        max_items: int,
        on_batch: Callable[[int], None] = lambda items: None,
    ):
        """`run_many`: items -> one result per item, in order; called with at most `max_items` items.
        `on_batch`: told each batch's number of items (the server's metrics)."""
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, not {max_items}")
        self.run_many, self.max_items, self.on_batch = run_many, max_items, on_batch
        self._waiting: list[_Call[Item, Result]] = []
        self._running = False
        self._condition = threading.Condition()

    def __call__(self, item: Item) -> Result:
        """run_many's result for `item`, computed together with the items of other threads waiting
        now; run_many's exception if it raised."""
        call: _Call[Item, Result] = _Call(item)
        with self._condition:
            self._waiting.append(call)
        while True:
            with self._condition:
                while self._running and not call.finished:
                    self._condition.wait()
                if call.finished:
                    break
                self._running = True  # this thread runs the next batch: the longest-waiting items
                batch, self._waiting = self._waiting[: self.max_items], self._waiting[self.max_items :]
            self._run(batch)
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]

    def _run(self, batch: list[_Call[Item, Result]]) -> None:
        try:
            self.on_batch(len(batch))
            results = self.run_many([call.item for call in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} items")
            for call, result in zip(batch, results):
                call.result = result
        except BaseException as error:  # every caller of this batch learns why, none waits forever
            for call in batch:
                call.error = error
        finally:
            with self._condition:
                for call in batch:
                    call.finished = True
                self._running = False
                self._condition.notify_all()
