"""What rank 0 writes about a run, so that the training loop does not have to: config.json,
metrics.jsonl (one line per epoch), TensorBoard scalars and one log line per epoch.

A run trained in legs reports its whole time: the wall and CPU clocks go on from the last epoch
that metrics.jsonl holds.

The trainer writes an epoch's checkpoints before its line, and each checkpoint holds its line
(METRICS_ROW_KEY), so metrics.jsonl never lists an epoch that last.pt does not hold; a resumed run
drops lines past its checkpoint (written by older trainers, which logged first) and writes the
checkpoint's own line when a kill came between the save and the log.
"""

import json
import logging
import time
from pathlib import Path

from training.config import TrainConfig

log = logging.getLogger("training")

# The checkpoint key of the epoch's metrics.jsonl row; checkpoints written before it have none.
METRICS_ROW_KEY = "metrics_row"
SCALARS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "images_per_second")


class RunLog:
    def __init__(self, out: Path, config: TrainConfig, resumed_after: int | None, checkpoint_row: dict | None = None):
        """`resumed_after`: the epoch the run resumes after (None for a fresh run); `checkpoint_row`:
        that epoch's line as its checkpoint holds it (None for checkpoints older than METRICS_ROW_KEY)."""
        self.out, self.config = out, config
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".*.pt.*.tmp"):  # a save that was killed half-way (training/checkpoint.py)
            stale.unlink(missing_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        elapsed_before = cpu_before = 0.0
        if resumed_after is not None:
            _keep_metrics_of_checkpoint(out / "metrics.jsonl", resumed_after, checkpoint_row)
            elapsed_before, cpu_before = _time_logged_before(out / "metrics.jsonl")
        self.started = time.perf_counter() - elapsed_before
        self.cpu_started = time.process_time() - cpu_before
        self.writer = _tensorboard_writer(out)

    def epoch_row(self, epoch: int, seconds: float, images: int, **figures: float) -> dict:
        """metrics.jsonl's line for epoch `epoch` (1-based), which took `seconds` for `images` training
        images; `figures` are train_loss, train_accuracy, val_loss, val_accuracy, best_val_accuracy, lr."""
        return {
            "epoch": epoch,
            **figures,
            "images_per_second": images / seconds,
            "epoch_seconds": seconds,
            "elapsed_seconds": time.perf_counter() - self.started,
            # This process's CPU time (all its threads), so CPU-hours stay honest whatever else ran on
            # the machine; on N processes the run used about N times as much.
            "cpu_seconds": time.process_time() - self.cpu_started,
        }

    def append(self, row: dict) -> None:
        """Log an epoch's row: metrics.jsonl, TensorBoard and one line."""
        _append_row(self.out / "metrics.jsonl", row)
        for name in SCALARS:
            self.writer.add_scalar(name, row[name], row["epoch"])
        self.writer.flush()
        log.info(
            f"epoch {row['epoch']}/{self.config.epochs}  train loss {row['train_loss']:.3f} "
            f"acc {row['train_accuracy']:.1%}  val loss {row['val_loss']:.3f} acc {row['val_accuracy']:.2%} "
            f"(best {row['best_val_accuracy']:.2%})  {row['images_per_second']:.0f} img/s  {row['epoch_seconds']:.0f}s"
        )

    def close(self) -> None:
        self.writer.close()


def _time_logged_before(path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) the run had logged by its last epoch in metrics.jsonl. Runs logged
    before cpu_seconds existed count their CPU time from the resume on."""
    if not path.exists():
        return 0.0, 0.0
    rows = _readable_rows(path.read_text())
    if not rows:
        return 0.0, 0.0
    return float(rows[-1].get("elapsed_seconds", 0.0)), float(rows[-1].get("cpu_seconds", 0.0))


def _keep_metrics_of_checkpoint(path: Path, epoch: int, checkpoint_row: dict | None) -> None:
    """metrics.jsonl as the checkpoint of epoch `epoch` left it: lines past it dropped (they would be
    logged twice), and its own line written if a kill came between the checkpoint and the log."""
    text = path.read_text() if path.exists() else ""
    kept = [row for row in _readable_rows(text) if row["epoch"] <= epoch]
    if checkpoint_row is not None and checkpoint_row.get("epoch") == epoch and all(r["epoch"] != epoch for r in kept):
        kept.append(checkpoint_row)
    rewritten = "".join(json.dumps(row) + "\n" for row in kept)
    if rewritten != text:
        path.write_text(rewritten)


def _append_row(path: Path, row: dict) -> None:
    with open(path, "a") as metrics:
        metrics.write(json.dumps(row) + "\n")


def _readable_rows(text: str) -> list[dict]:
    """The rows of metrics.jsonl's `text`, without a line a kill left half-written (only the last can be)."""
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows.append(row)
    return rows


def _tensorboard_writer(out: Path):  # -> SummaryWriter; imported here: it is slow to import
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(out / "tensorboard"))
