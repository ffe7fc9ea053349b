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
from fer.weights import CHECKSUM_KEY, content_digest, give_default_permissions


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


def _why_a_write_failed(error: OSError | RuntimeError, folder: Path) -> str:
    if getattr(error, "errno", None) == errno.ENOSPC or shutil.disk_usage(folder).free < 64 * 2**20:
        return f"the disk is full ({shutil.disk_usage(folder).free // 2**20} MiB free in {folder})"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).strip().splitlines()[0]
