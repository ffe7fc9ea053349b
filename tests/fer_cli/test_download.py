"""`fer download` against a fake Kaggle API: the same methods the real `KaggleApi` has, writing the
files Kaggle would write. No test touches the network."""

import tarfile
import zipfile
from pathlib import Path

import pytest

from fer.datasets import TEST, TRAIN, VALIDATION, load_splits
from fer.errors import FerError
from fer_cli import download as download_module
from fer_cli.download import CSV_COUNTS, DATASET_COUNTS, count_csv_rows, download, has_kaggle_credentials
from tests.conftest import make_face, run_python, write_csv


class FakeKaggleApi:
    """Writes a full-size msambare/fer2013 zip (35,887 tiny JPEGs) or a competition zip."""

    def __init__(self, missing_images=0, competition_csv=None):
        self.missing_images = missing_images
        self.competition_csv = competition_csv
        self.calls = []

    def dataset_download_files(self, dataset, path=None, force=False, quiet=True, unzip=False, licenses=()):
        self.calls.append(("dataset", dataset, quiet))
        import cv2
        import numpy as np

        jpeg = cv2.imencode(".jpg", make_face(3, np.random.default_rng(0)))[1].tobytes()
        with zipfile.ZipFile(Path(path) / "fer2013.zip", "w") as archive:
            for folder, prefixes in (("train", ["Training"]), ("test", ["PublicTest", "PrivateTest"])):
                per_prefix = DATASET_COUNTS[folder] // len(prefixes)
                for prefix in prefixes:
                    count = per_prefix - (self.missing_images if prefix == "Training" else 0)
                    for i in range(count):
                        archive.writestr(f"{folder}/happy/{prefix}_{i}.jpg", jpeg)

    def competition_download_files(self, competition, path=None, force=False, quiet=True):
        self.calls.append(("competition", competition, quiet))
        tarball = Path(path) / "fer2013.tar.gz"
        with tarfile.open(tarball, "w:gz") as tar:
            tar.add(self.competition_csv, arcname="fer2013/fer2013.csv")
        with zipfile.ZipFile(Path(path) / f"{competition}.zip", "w") as archive:
            archive.write(tarball, "fer2013.tar.gz")
        tarball.unlink()


def test_dataset_download_unpacks_and_checks_counts(tmp_path):
    api = FakeKaggleApi()
    path = download(tmp_path, "dataset", api=api)
    assert api.calls == [("dataset", "msambare/fer2013", False)]  # quiet=False: Kaggle shows progress
    assert path == tmp_path / "fer2013"
    splits = load_splits(path)
    assert (len(splits[TRAIN]), len(splits[VALIDATION]), len(splits[TEST])) == (28_709, 3_589, 3_589)


def test_incomplete_dataset_download_is_reported(tmp_path):
    with pytest.raises(FerError, match=r"unexpected image counts.*'train': 28708.*incomplete download"):
        download(tmp_path, "dataset", api=FakeKaggleApi(missing_images=1))


def test_competition_download_finds_the_csv_and_checks_rows(tmp_path):
    small = write_csv(tmp_path / "fer2013.csv", {"Training": 7, "PublicTest": 7, "PrivateTest": 7})
    with pytest.raises(FerError, match=r"unexpected row counts.*'Training': 7.*'Training': 28709"):
        download(tmp_path / "dl", "competition", api=FakeKaggleApi(competition_csv=small))
    # The CSV was unpacked from the nested tarball and is readable as a dataset.
    (unpacked,) = (tmp_path / "dl").rglob("fer2013.csv")
    assert count_csv_rows(unpacked) == {"Training": 7, "PublicTest": 7, "PrivateTest": 7}
    assert len(load_splits(unpacked)[TRAIN]) == 7


def test_competition_row_counts_accept_the_real_numbers(tmp_path, monkeypatch):
    small = write_csv(tmp_path / "fer2013.csv", {"Training": 3, "PublicTest": 2, "PrivateTest": 2})
    monkeypatch.setattr(download_module, "CSV_COUNTS", {"Training": 3, "PublicTest": 2, "PrivateTest": 2})
    path = download(tmp_path / "dl", "competition", api=FakeKaggleApi(competition_csv=small))
    assert path.name == "fer2013.csv" and CSV_COUNTS["Training"] == 28_709


def test_api_errors_become_one_line(tmp_path):
    class Failing(FakeKaggleApi):
        def dataset_download_files(self, *args, **kwargs):
            raise RuntimeError("403 Forbidden: accept the dataset's rules first")

    with pytest.raises(FerError, match="the Kaggle download failed: 403 Forbidden"):
        download(tmp_path, "dataset", api=Failing())


def test_credentials_are_found_in_each_place(tmp_path):
    assert not has_kaggle_credentials({}, home=tmp_path)
    assert has_kaggle_credentials({"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}, home=tmp_path)
    assert not has_kaggle_credentials({"KAGGLE_USERNAME": "u"}, home=tmp_path)
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    assert has_kaggle_credentials({}, home=tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert not has_kaggle_credentials({"KAGGLE_CONFIG_DIR": str(other)}, home=tmp_path)


def test_missing_credentials_exit_2_with_both_ways_in_one_line(tmp_path):
    env = {
        "HOME": str(tmp_path),
        "KAGGLE_USERNAME": "",
        "KAGGLE_KEY": "",
        "KAGGLE_CONFIG_DIR": "",
        "KAGGLE_API_TOKEN": "",
    }
    result = run_python("-m", "fer_cli", "download", "--dest", str(tmp_path / "data"), env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "~/.kaggle/kaggle.json" in lines[0] and "KAGGLE_USERNAME and KAGGLE_KEY" in lines[0]


def test_a_tarball_escaping_the_folder_is_refused(tmp_path):
    class Malicious(FakeKaggleApi):
        def competition_download_files(self, competition, path=None, force=False, quiet=True):
            evil = tmp_path / "evil.txt"
            evil.write_text("overwritten")
            tarball = Path(path) / "fer2013.tar.gz"
            with tarfile.open(tarball, "w:gz") as tar:
                tar.add(evil, arcname="../../escaped.txt")
            with zipfile.ZipFile(Path(path) / f"{competition}.zip", "w") as archive:
                archive.write(tarball, "fer2013.tar.gz")

    with pytest.raises(FerError, match="unsafe entry"):
        download(tmp_path / "dl", "competition", api=Malicious())
    assert not list(tmp_path.rglob("escaped.txt"))


def test_a_corrupt_download_says_to_download_again(tmp_path):
    class Corrupt(FakeKaggleApi):
        def dataset_download_files(self, dataset, path=None, **kwargs):
            (Path(path) / "fer2013.zip").write_bytes(b"PK\x03\x04 cut off mid-transfer")

    with pytest.raises(FerError, match="is not a valid zip file.*download again"):
        download(tmp_path, "dataset", api=Corrupt())
