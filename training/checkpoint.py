"""Complete, atomic training checkpoints.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed over
the old one with `os.replace`, which is atomic on POSIX and Windows: killing the process at any
moment leaves either the old checkpoint or the new one, never half of one. Loading uses
`torch.load(weights_only=True)` (`fer.weights.load_checkpoint`), which refuses to unpickle objects,
and checks the checksum saved inside: bytes damaged later, on disk or in a copy, are refused.
"""

import errno
import os
import shutil
import tempfile
from pathlib import Path

import torch

from fer.errors import FerError
from fer.weights import CHECKSUM_KEY, content_digest, give_default_permissions, load_checkpoint

try:
    import resource  # POSIX: the file size limit (ulimit -f)
except ImportError:
    resource = None

# What TrainingState.restore and a resumed run read; every training checkpoint fer wrote has them.
TRAINING_KEYS = ("config", "epoch", "best_accuracy", "model", "ema", "optimizer", "scheduler", "scaler", "rng")
# Written in place rather than replaced: a read-only one fails only when the first epoch is done.
FILES_WRITTEN_IN_PLACE = ("config.json", "metrics.jsonl")


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write `state` with a checksum of its contents, which every load verifies."""
    state = {**state, CHECKSUM_KEY: content_digest(state)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        give_default_permissions(handle.name)  # temporary files are created 0600
        os.replace(handle.name, path)
    except (OSError, RuntimeError) as error:  # torch reports a full disk as a RuntimeError
        Path(handle.name).unlink(missing_ok=True)
        why = _why_a_write_failed(error, path.parent)
        raise FerError(f"cannot write {path}: {why}; any earlier {path.name} is intact") from None
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def load_training_checkpoint(path: Path) -> dict:
    """A checkpoint to resume from: readable, undamaged (fer.weights.load_checkpoint) and holding a
    training run, not only weights."""
    checkpoint = load_checkpoint(path)
    missing = [key for key in TRAINING_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise FerError(
            f"{path} is not a fer training checkpoint (it has no {', '.join(missing)}): weights alone cannot be "
            "resumed; --overwrite starts the run anew"
        )
    return checkpoint


def why_not_writable(folder: Path) -> str | None:
    """None when `folder` exists (or can be made) and takes a new file; else the system's reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def check_run_folder_writable(folder: Path) -> None:
    """Fail before the first step rather than after an epoch: the folder exists or can be made, takes
    a new file (as every checkpoint is first written to one), and its files written in place are."""
    if (why := why_not_writable(folder)) is not None:
        raise FerError(f"cannot write the run folder {folder}: {why}")
    for name in FILES_WRITTEN_IN_PLACE:
        if (folder / name).exists() and not os.access(folder / name, os.W_OK):
            raise FerError(f"cannot write {folder / name}: it is read-only")


def _why_a_write_failed(error: OSError | RuntimeError, folder: Path) -> str:
    if getattr(error, "errno", None) == errno.ENOSPC or shutil.disk_usage(folder).free < 64 * 2**20:
        return f"the disk is full ({shutil.disk_usage(folder).free // 2**20} MiB free in {folder})"
    if resource is not None:
        file_size_limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if getattr(error, "errno", None) == errno.EFBIG or (
            isinstance(error, RuntimeError) and file_size_limit != resource.RLIM_INFINITY
        ):  # torch's own message then is "enforce fail at inline_container.cc"
            return f"the checkpoint is larger than this process may write (ulimit -f: {file_size_limit:,} bytes)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).strip().splitlines()[0]
