"""Fetch FER2013 from Kaggle with the official `kaggle` package, unpack it, check the image counts.

    fer download --dest data/                       # dataset msambare/fer2013: train/ and test/ folders
    fer download --dest data/ --source competition  # the original competition's fer2013.csv

Credentials: ~/.kaggle/kaggle.json (or $KAGGLE_CONFIG_DIR/kaggle.json), or KAGGLE_USERNAME and
KAGGLE_KEY, or a newer access token (KAGGLE_API_TOKEN or ~/.kaggle/access_token). They are checked
before the `kaggle` package is imported, because importing it tries to authenticate and exits.
"""

import csv
import os
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fer.errors import FerError
from fer.images import IMAGE_SUFFIXES

DATASET = "msambare/fer2013"
COMPETITION = "challenges-in-representation-learning-facial-expression-recognition-challenge"
# Images per folder of the Kaggle dataset: test/ holds PublicTest and PrivateTest, 3,589 each.
DATASET_COUNTS = {"train": 28_709, "test": 7_178}
# Rows per Usage value of the competition's fer2013.csv.
CSV_COUNTS = {"Training": 28_709, "PublicTest": 3_589, "PrivateTest": 3_589}
CREDENTIALS_HELP = (
    "no Kaggle credentials: save your API token as ~/.kaggle/kaggle.json "
    "(kaggle.com > Settings > API > Create New Token), or set KAGGLE_USERNAME and KAGGLE_KEY"
)


def has_kaggle_credentials(environ: Mapping[str, str] = os.environ, home: Path | None = None) -> bool:
    if environ.get("KAGGLE_USERNAME") and environ.get("KAGGLE_KEY"):
        return True
    if environ.get("KAGGLE_API_TOKEN"):
        return True
    config_dir = (
        Path(environ["KAGGLE_CONFIG_DIR"]) if environ.get("KAGGLE_CONFIG_DIR") else (home or Path.home()) / ".kaggle"
    )
    return (config_dir / "kaggle.json").is_file() or (config_dir / "access_token").is_file()


def kaggle_api() -> Any:  # kaggle.api.kaggle_api_extended.KaggleApi, imported only when used
    """An authenticated `kaggle.api.kaggle_api_extended.KaggleApi` (the real network boundary)."""
    if not has_kaggle_credentials():
        raise FerError(CREDENTIALS_HELP)
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.authenticate()
    return api


def download(dest: str | os.PathLike, source: str = "dataset", api: Any = None) -> Path:
    """Download and unpack into `dest`; return the path to train on (a folder, or fer2013.csv)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    api = api or kaggle_api()
    try:
        if source == "dataset":
            api.dataset_download_files(DATASET, path=str(dest), quiet=False, unzip=False)
        elif source == "competition":
            api.competition_download_files(COMPETITION, path=str(dest), quiet=False)
        else:
            raise FerError(f"unknown --source {source!r}; choose dataset or competition")
    except FerError:
        raise
    except (Exception, SystemExit) as error:  # the kaggle package raises many kinds, and may sys.exit
        raise FerError(f"the Kaggle download failed: {error}") from None
    if source == "dataset":
        return _unpack_dataset(dest)
    return _unpack_competition(dest)


def _unpack_dataset(dest: Path) -> Path:
    archive = dest / (DATASET.split("/")[1] + ".zip")
    if not archive.is_file():
        raise FerError(f"the Kaggle download finished but {archive} is missing")
    target = dest / "fer2013"
    _extract(archive, target)
    counts = {folder: count_images(target / folder) for folder in DATASET_COUNTS}
    if counts != DATASET_COUNTS:
        raise FerError(
            f"unexpected image counts in {target}: {counts}; expected {DATASET_COUNTS} (incomplete download?)"
        )
    print(f"unpacked {sum(counts.values())} images into {target}: {counts}")
    return target


def _unpack_competition(dest: Path) -> Path:
    archive = dest / f"{COMPETITION}.zip"
    if not archive.is_file():
        raise FerError(f"the Kaggle download finished but {archive} is missing")
    target = dest / "fer2013-competition"
    _extract(archive, target)
    nested = target / "fer2013.tar.gz"  # the competition zip wraps fer2013/fer2013.csv in a tarball
    if nested.is_file():
        _extract_tarball(nested, target)
    found = sorted(target.rglob("fer2013.csv"))
    if not found:
        raise FerError(f"no fer2013.csv in the competition download at {target}")
    counts = count_csv_rows(found[0])
    if counts != CSV_COUNTS:
        raise FerError(f"unexpected row counts in {found[0]}: {counts}; expected {CSV_COUNTS} (incomplete download?)")
    print(f"unpacked {sum(counts.values())} rows into {found[0]}: {counts}")
    return found[0]


def _extract(archive: Path, target: Path) -> None:
    from tqdm import tqdm

    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            for member in tqdm(members, desc=f"unpacking {archive.name}", unit="file"):
                zipped.extract(member, target)  # zipfile refuses names that escape target
    except zipfile.BadZipFile as error:
        raise FerError(f"{archive} is not a valid zip file ({error}); delete it and download again") from None


def _extract_tarball(tarball: Path, target: Path) -> None:
    with tarfile.open(tarball) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12+: refuses links and paths outside target
            try:
                tar.extractall(target, filter="data")
            except tarfile.FilterError as error:
                raise FerError(f"{tarball} holds an unsafe entry ({error}); refusing to unpack it") from None
            return
        root = target.resolve()
        for member in tar.getmembers():
            if not (member.isfile() or member.isdir()) or not (root / member.name).resolve().is_relative_to(root):
                raise FerError(f"{tarball} holds an unsafe entry {member.name!r}; refusing to unpack it")
        tar.extractall(target)


def count_images(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)


def count_csv_rows(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            usage = (row.get("Usage") or "").strip()
            counts[usage] = counts.get(usage, 0) + 1
    return counts
