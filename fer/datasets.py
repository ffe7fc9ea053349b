"""Read FER2013 in every form users have it, decode once, cache as compact uint8 arrays.

    >>> splits = load_splits("../shared/data/fer2013.zip")
    >>> splits["train"].images.shape, splits["validation"].images.shape
    ((28709, 48, 48), (3589, 48, 48))

Forms, detected from the path:
- the Kaggle `msambare/fer2013` layout (`train/<emotion>/*.jpg`, `test/<emotion>/*.jpg`), as a .zip or
  an extracted directory. `train/` is the Training split; in `test/`, `PublicTest_*` files are the
  validation split and `PrivateTest_*` (or any other name) the test split;
- the original competition CSV, `fer2013.csv` (`emotion,pixels,Usage`);
- a plain directory (or .zip) whose subfolders are emotion names: one split, named "all".

Splits: train = Training, validation = PublicTest, test = PrivateTest. Model selection uses validation.
"""

import csv
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from fer.errors import DataError
from fer.images import IMAGE_SUFFIXES
from fer.labels import EMOTIONS, NUM_CLASSES, emotion_index
from fer.preprocess import INPUT_SIZE, to_gray48

log = logging.getLogger(__name__)

TRAIN, VALIDATION, TEST, ALL = "train", "validation", "test", "all"
CSV_USAGE_TO_SPLIT = {"Training": TRAIN, "PublicTest": VALIDATION, "PrivateTest": TEST}
MAX_BAD_FRACTION = 0.01
# Bump when decoding changes, so that caches built by older code are not reused.
CACHE_FORMAT = 1


@dataclass
class LabeledImages:
    """One split: `images` (N, 48, 48) uint8 grayscale, `labels` (N,) int64 indices into EMOTIONS."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=NUM_CLASSES)
        return {emotion: int(count) for emotion, count in zip(EMOTIONS, counts)}


# ---------------------------------------------------------------- entry point


def load_splits(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> dict[str, LabeledImages]:
    """All splits found at `path`, decoded once and cached under `cache_dir` (default: $FER_CACHE_DIR
    or ~/.cache/fer), keyed by the source's content, so a changed file is never served stale."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"no dataset at {path}: give a FER2013 .zip, folder or fer2013.csv "
            "(`fer download --dest data/` fetches Kaggle's; `make train-demo DATA=...` for the Makefile)"
        )
    cache_file = _cache_dir(cache_dir) / f"fer2013-{_content_key(path)}.npz"
    if cache_file.exists():
        try:
            return _read_cache(cache_file)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            log.warning("ignoring unreadable cache %s (%s); decoding again", cache_file, error)
    splits = _decode(path)
    _write_cache(cache_file, splits)
    return splits


def select_split(splits: dict[str, LabeledImages], split: str, source: str | os.PathLike) -> LabeledImages:
    """The named split; a plain emotion-folder dataset has only "all", which serves any request."""
    if split in splits:
        return splits[split]
    if set(splits) == {ALL}:
        return splits[ALL]
    available = ", ".join(sorted(splits)) or "none"
    raise DataError(f"{source} has no {split} split (it has: {available})")


def stratified_subset(data: LabeledImages, max_samples: int, seed: int) -> LabeledImages:
    """Exactly `max_samples` examples (or all) keeping each class's share (for smoke runs)."""
    if max_samples >= len(data):
        return data
    keep = stratified_indices(data, max_samples, seed)
    return LabeledImages(data.images[keep], data.labels[keep])


def hold_out(data: LabeledImages, fraction: float, seed: int) -> tuple[LabeledImages, LabeledImages]:
    """(train, validation): a seeded, stratified `fraction` of `data` held out for validation, for
    datasets without a validation split of their own (emotion folders, a CSV without Usage), so
    that the checkpoint is never chosen on the faces it trained on."""
    held = np.zeros(len(data), dtype=bool)
    held[stratified_indices(data, max(1, round(fraction * len(data))), seed)] = True
    return LabeledImages(data.images[~held], data.labels[~held]), LabeledImages(data.images[held], data.labels[held])


def stratified_indices(data: LabeledImages, count: int, seed: int) -> np.ndarray:
    """Sorted indices of `count` faces drawn per class in proportion (seeded)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(data.labels, minlength=NUM_CLASSES)
    # Largest remainders: each class gets the floor of its share, and the places rounding left over
    # go to the classes with the largest fractions, so the total is exactly `count`.
    shares = counts * count / len(data)
    takes = np.floor(shares).astype(int)
    leftover = count - int(takes.sum())
    takes[np.argsort(-(shares - takes), kind="stable")[:leftover]] += 1
    chosen = []
    for label in range(NUM_CLASSES):
        members = np.flatnonzero(data.labels == label)
        chosen.append(rng.choice(members, size=min(int(takes[label]), len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


# ---------------------------------------------------------------- decoding


def _decode(path: Path) -> dict[str, LabeledImages]:
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return _read_image_entries(path, [(p.relative_to(path).as_posix(), p.read_bytes) for p in files])
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = sorted(name for name in archive.namelist() if not name.endswith("/"))
            return _read_image_entries(path, [(name, partial(archive.read, name)) for name in names])
    raise DataError(f"{path} is not a FER2013 dataset: expected a .zip or directory of emotion folders, or a .csv")


# (relative POSIX path, function returning the file's bytes)
Entry = tuple[str, Callable[[], bytes]]


def _is_image(relative: str) -> bool:
    parts = relative.split("/")
    hidden = any(part.startswith(".") or part == "__MACOSX" for part in parts)
    return not hidden and Path(relative).suffix.lower() in IMAGE_SUFFIXES


def _split_of(parts: list[str]) -> tuple[str, str] | None:
    """(split, emotion folder) for a path inside either layout, or None for a path in neither."""
    if len(parts) == 3 and parts[0] in ("train", "test"):
        folder, emotion, filename = parts
        if folder == "train":
            return TRAIN, emotion
        return (VALIDATION if filename.startswith("PublicTest") else TEST), emotion
    if len(parts) == 2:
        return ALL, parts[0]
    return None


def _read_image_entries(source: Path, entries: list[Entry]) -> dict[str, LabeledImages]:
    images = [(relative, read) for relative, read in entries if _is_image(relative)]
    if not images:
        raise DataError(f"{source} holds no images (expected <emotion>/*.jpg or train|test/<emotion>/*.jpg)")
    # A zip made by zipping the extracted folder has one extra top folder (fer2013/train/...): drop it.
    top = {relative.split("/")[0] for relative, _ in images}
    strip = len(top) == 1 and all(len(relative.split("/")) >= 3 for relative, _ in images)
    kaggle_layout = any(
        (relative.split("/")[1:] if strip else relative.split("/"))[0] in ("train", "test") for relative, _ in images
    )

    pixels: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[int]] = {}
    bad, ignored = [], 0
    for relative, read in images:
        parts = relative.split("/")[1:] if strip else relative.split("/")
        placement = _split_of(parts)
        if placement is None or (kaggle_layout and placement[0] == ALL):
            ignored += 1
            continue
        split, folder = placement
        try:
            label = emotion_index(folder)
        except KeyError:
            raise DataError(
                f"unknown emotion folder {folder!r} in {source}; expected folders named {', '.join(EMOTIONS)}"
            ) from None
        face = _decode_image(read())
        if face is None:
            bad.append(relative)
            continue
        pixels.setdefault(split, []).append(face)
        labels.setdefault(split, []).append(label)
    if ignored:
        log.warning("ignored %d images in %s outside the expected <emotion>/ folders", ignored, source)
    _check_bad(source, bad, total=len(images) - ignored)
    return {split: _stack(pixels[split], labels[split]) for split in pixels}


def _decode_image(data: bytes) -> np.ndarray | None:
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        return None
    return to_gray48(decoded, color_order="BGR")  # OpenCV decodes color as BGR


def _read_csv(path: Path) -> dict[str, LabeledImages]:
    pixels: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[int]] = {}
    bad, total = [], 0
    with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: a byte-order mark is not a column
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if "emotion" not in header or "pixels" not in header:
            raise DataError(f"{path} has columns {header}; expected the fer2013.csv columns emotion, pixels, Usage")
        emotion_at, pixels_at = header.index("emotion"), header.index("pixels")
        usage_at = header.index("Usage") if "Usage" in header else None
        for line, row in enumerate(reader, start=2):
            total += 1
            face, label, split, problem = _parse_csv_row(row, emotion_at, pixels_at, usage_at)
            if face is None:
                bad.append(f"line {line} ({problem})")
                continue
            pixels.setdefault(split, []).append(face)
            labels.setdefault(split, []).append(label)
    if total == 0:
        raise DataError(f"{path} has a header but no rows")
    _check_bad(path, bad, total, "rows")
    return {split: _stack(pixels[split], labels[split]) for split in pixels}


def _parse_csv_row(
    row: list[str], emotion_at: int, pixels_at: int, usage_at: int | None
) -> tuple[np.ndarray, int, str, None] | tuple[None, None, None, str]:
    """(face, label, split, None), or (None, None, None, what is wrong with the row)."""
    if len(row) <= max(emotion_at, pixels_at, usage_at if usage_at is not None else 0):
        return None, None, None, f"{len(row)} columns"
    try:
        label = int(row[emotion_at])
    except ValueError:
        return None, None, None, f"emotion {row[emotion_at]!r} is not a number"
    try:
        values = np.array(row[pixels_at].split(), dtype=np.int64)
    except ValueError:
        return None, None, None, "pixels that are not whole numbers"
    usage = row[usage_at].strip() if usage_at is not None else None
    if usage is not None and usage not in CSV_USAGE_TO_SPLIT:
        return None, None, None, f"Usage {usage!r} is not one of {', '.join(CSV_USAGE_TO_SPLIT)}"
    if not 0 <= label < NUM_CLASSES:
        return None, None, None, f"emotion {label} is not 0-{NUM_CLASSES - 1}"
    if values.size != INPUT_SIZE * INPUT_SIZE:
        return None, None, None, f"{values.size} pixels instead of {INPUT_SIZE * INPUT_SIZE}"
    if values.min() < 0 or values.max() > 255:
        return None, None, None, "pixels outside 0-255"
    split = CSV_USAGE_TO_SPLIT[usage] if usage is not None else ALL
    return values.astype(np.uint8).reshape(INPUT_SIZE, INPUT_SIZE), label, split, None


def _check_bad(source: Path, bad: list[str], total: int, what: str = "images") -> None:
    if not bad:
        return
    shown = ", ".join(bad[:20]) + (f" and {len(bad) - 20} more" if len(bad) > 20 else "")
    log.warning("skipped %d unreadable %s of %d in %s: %s", len(bad), what, total, source, shown)
    if len(bad) > MAX_BAD_FRACTION * total:
        raise DataError(
            f"{len(bad)} of {total} {what} in {source} are unreadable (more than {MAX_BAD_FRACTION:.0%}); "
            f"first: {bad[0]}"
        )


def _stack(faces: list[np.ndarray], labels: list[int]) -> LabeledImages:
    return LabeledImages(np.stack(faces).astype(np.uint8), np.asarray(labels, dtype=np.int64))


# ---------------------------------------------------------------- cache


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer")


def _content_key(path: Path) -> str:
    """sha256 of the source's bytes (every file's path and bytes, for a directory), 16 hex digits."""
    digest = hashlib.sha256(f"fer-cache-{CACHE_FORMAT}".encode())
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _write_cache(cache_file: Path, splits: dict[str, LabeledImages]) -> None:
    arrays = {}
    for split, data in splits.items():
        arrays[f"{split}.images"], arrays[f"{split}.labels"] = data.images, data.labels
    arrays["splits"] = np.frombuffer(json.dumps(sorted(splits)).encode(), np.uint8)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed, so concurrent runs (DDP ranks) never read half a file.
        with tempfile.NamedTemporaryFile(dir=cache_file.parent, suffix=".tmp", delete=False) as handle:
            np.savez(handle, **arrays)
        os.replace(handle.name, cache_file)
    except OSError as error:
        log.warning("could not write the dataset cache %s (%s); continuing without it", cache_file, error)


def _read_cache(cache_file: Path) -> dict[str, LabeledImages]:
    with np.load(cache_file) as arrays:
        names = json.loads(bytes(arrays["splits"]).decode())
        return {name: LabeledImages(arrays[f"{name}.images"], arrays[f"{name}.labels"]) for name in names}
