import logging
import zipfile

import numpy as np
import pytest

from fer import datasets as data
from fer.datasets import ALL, TEST, TRAIN, VALIDATION, load_splits, select_split, stratified_subset
from fer.errors import DataError
from fer.labels import EMOTIONS
from tests.conftest import kaggle_files, make_face, write_csv, write_tree, write_zip


def expected_counts(per_class):
    return {emotion: per_class for emotion in EMOTIONS}


def test_kaggle_zip_splits_by_folder_and_file_name(kaggle_zip):
    splits = load_splits(kaggle_zip)
    assert set(splits) == {TRAIN, VALIDATION, TEST}
    assert splits[TRAIN].class_counts() == expected_counts(20)
    assert splits[VALIDATION].class_counts() == expected_counts(5)  # PublicTest_*
    assert splits[TEST].class_counts() == expected_counts(3)  # PrivateTest_*
    assert splits[TRAIN].images.shape == (140, 48, 48) and splits[TRAIN].images.dtype == np.uint8


def test_folders_map_to_labels_by_name_not_sorted_order(tmp_path):
    # One image in the "neutral" folder: sorted folder order would call it index 4 (sad).
    face = make_face(6, np.random.default_rng(0))
    from tests.conftest import encode_jpeg

    root = write_tree(tmp_path / "plain", {"neutral/a.jpg": encode_jpeg(face), "sad/b.jpg": encode_jpeg(face)})
    split = load_splits(root)[ALL]
    assert sorted(split.labels.tolist()) == [EMOTIONS.index("sad"), EMOTIONS.index("neutral")] == [4, 6]


def test_extracted_directory_reads_like_the_zip(kaggle_dir, tmp_path):
    from_dir = load_splits(kaggle_dir)
    from_zip = load_splits(write_zip(tmp_path / "same.zip", kaggle_files(4, 2, 1)))
    for split in (TRAIN, VALIDATION, TEST):
        np.testing.assert_array_equal(from_dir[split].labels, from_zip[split].labels)
        np.testing.assert_array_equal(from_dir[split].images, from_zip[split].images)


def test_zip_with_an_extra_top_folder(tmp_path):
    files = {f"fer2013/{name}": blob for name, blob in kaggle_files(2, 1, 1).items()}
    splits = load_splits(write_zip(tmp_path / "nested.zip", files))
    assert len(splits[TRAIN]) == 14 and len(splits[VALIDATION]) == 7


def test_csv_usage_column_gives_the_splits(fer_csv):
    splits = load_splits(fer_csv)
    assert {name: len(split) for name, split in splits.items()} == {TRAIN: 14, VALIDATION: 7, TEST: 7}
    assert splits[TRAIN].labels.tolist() == [i % 7 for i in range(14)]  # CSV emotion indices, unchanged


def test_csv_with_wrong_columns_names_the_expected_ones(tmp_path):
    path = write_csv(tmp_path / "bad.csv", {"Training": 2}, header=("label", "image", "Usage"))
    with pytest.raises(DataError, match="expected the fer2013.csv columns emotion, pixels, Usage"):
        load_splits(path)


def test_csv_bad_rows_are_skipped_and_counted(tmp_path, caplog):
    path = write_csv(tmp_path / "fer2013.csv", {"Training": 200})
    with open(path, "a") as handle:
        handle.write("3,1 2 3,Training\n")  # 3 pixels instead of 2304
    with caplog.at_level(logging.WARNING):
        splits = load_splits(path)
    assert len(splits[TRAIN]) == 200
    assert "skipped 1 unreadable rows of 201" in caplog.text and "line 202 (3 pixels instead of 2304)" in caplog.text


@pytest.mark.parametrize(
    "row, reason",
    [
        ("x,1 2,Training", "emotion 'x' is not a number"),
        ("9," + " ".join(["1"] * 2304) + ",Training", "emotion 9 is not 0-6"),
        ("3," + " ".join(["1"] * 2303) + " 300,Training", "pixels outside 0-255"),
        ("3,1 2 a,Training", "pixels that are not whole numbers"),
        ("3," + " ".join(["1"] * 2304) + ",Validation", "Usage 'Validation' is not one of Training, PublicTest"),
        ("3", "1 columns"),
    ],
)
def test_each_bad_csv_row_says_what_is_wrong_with_it(tmp_path, caplog, row, reason):
    path = write_csv(tmp_path / "fer2013.csv", {"Training": 200})
    with open(path, "a") as handle:
        handle.write(row + "\n")
    with caplog.at_level(logging.WARNING):
        load_splits(path)
    assert f"line 202 ({reason}" in caplog.text


def test_a_csv_that_starts_with_a_byte_order_mark_reads(tmp_path):
    plain = write_csv(tmp_path / "plain.csv", {"Training": 14, "PublicTest": 7})
    marked = tmp_path / "marked.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())  # as Excel saves "CSV UTF-8"
    assert {name: len(split) for name, split in load_splits(marked).items()} == {TRAIN: 14, VALIDATION: 7}


def test_hold_out_is_seeded_stratified_and_disjoint():
    from fer.datasets import LabeledImages, hold_out

    labels = np.repeat(np.arange(7), [40, 10, 40, 80, 50, 30, 50])  # 300 faces, FER2013-like shares
    images = np.zeros((300, 48, 48), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1] = np.divmod(np.arange(300), 256)  # each face's number in two pixels
    data = LabeledImages(images, labels.astype(np.int64))

    def ids(split):
        return set((split.images[:, 0, 0].astype(int) * 256 + split.images[:, 0, 1]).tolist())

    train, held = hold_out(data, 0.1, seed=3)
    assert len(held) == 30 and len(train) == 270
    assert np.bincount(held.labels, minlength=7).tolist() == [4, 1, 4, 8, 5, 3, 5]  # each class's share
    assert not ids(held) & ids(train) and len(ids(held) | ids(train)) == 300  # each face on one side
    again, _ = hold_out(data, 0.1, seed=3)
    assert np.array_equal(again.labels, train.labels) and np.array_equal(again.images, train.images)


def test_plain_emotion_folders_become_one_split(tmp_path):
    files = {name.split("/", 1)[1]: blob for name, blob in kaggle_files(3, 0, 0).items()}
    splits = load_splits(write_tree(tmp_path / "eval", files))
    assert set(splits) == {ALL}
    assert splits[ALL].class_counts() == expected_counts(3)
    assert select_split(splits, VALIDATION, "eval") is splits[ALL]


def test_unknown_emotion_folder_names_the_expected_ones(tmp_path):
    files = kaggle_files(2, 1, 0)
    files["train/contempt/Training_1.jpg"] = files["train/angry/Training_000000.jpg"]
    with pytest.raises(
        DataError, match=r"unknown emotion folder 'contempt'.*angry, disgust, fear, happy, sad, surprise, neutral"
    ):
        load_splits(write_tree(tmp_path / "d", files))


def test_corrupt_image_is_skipped_with_its_path_in_a_warning(tmp_path, caplog):
    files = kaggle_files(20, 1, 0)  # 147 images: one bad one is under 1%
    files["train/happy/Training_broken.jpg"] = b"\xff\xd8 this is not a JPEG"
    with caplog.at_level(logging.WARNING):
        splits = load_splits(write_zip(tmp_path / "one-bad.zip", files))
    assert len(splits[TRAIN]) == 140
    assert "train/happy/Training_broken.jpg" in caplog.text


def test_more_than_one_percent_bad_images_fails(tmp_path):
    files = kaggle_files(2, 1, 0)
    files["train/sad/Training_bad.jpg"] = b"garbage"
    with pytest.raises(DataError, match="unreadable"):
        load_splits(write_zip(tmp_path / "bad.zip", files))


def test_color_and_odd_sized_images_become_48x48_gray(tmp_path):
    from tests.conftest import png_bytes

    color = np.zeros((96, 120, 3), np.uint8)
    color[..., 2] = 200  # pure blue in RGB order
    splits = load_splits(write_tree(tmp_path / "c", {"happy/a.png": png_bytes(color)}))
    face = splits[ALL].images[0]
    assert face.shape == (48, 48)
    # PNG color decodes as BGR in OpenCV; converted with BGR weights, pure blue has luma 0.114 * 200.
    assert abs(int(face.mean()) - round(0.114 * 200)) <= 1


def test_not_a_dataset_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not a FER2013 dataset"):
        load_splits(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="no dataset at"):
        load_splits(tmp_path / "missing.zip")
    with pytest.raises(DataError, match="holds no images"):
        load_splits(tmp_path)


def test_missing_split_is_named(fer_csv):
    splits = load_splits(fer_csv)
    del splits[TEST]
    with pytest.raises(DataError, match="has no test split"):
        select_split(splits, TEST, fer_csv)


def test_second_load_comes_from_the_cache(kaggle_zip, monkeypatch):
    first = load_splits(kaggle_zip)
    monkeypatch.setattr(data, "_decode", lambda path: pytest.fail("decoded again instead of using the cache"))
    second = load_splits(kaggle_zip)
    np.testing.assert_array_equal(first[TRAIN].images, second[TRAIN].images)


def test_changed_source_is_decoded_again(tmp_path):
    path = write_zip(tmp_path / "d.zip", kaggle_files(2, 1, 0))
    assert len(load_splits(path)[TRAIN]) == 14
    write_zip(path, kaggle_files(3, 1, 0))  # same name, new content
    assert len(load_splits(path)[TRAIN]) == 21


def test_damaged_cache_is_rebuilt(tmp_path, kaggle_zip):
    cache = tmp_path / "cache"
    load_splits(kaggle_zip, cache_dir=cache)
    (cache_file,) = cache.glob("*.npz")
    cache_file.write_bytes(b"not an npz")
    assert len(load_splits(kaggle_zip, cache_dir=cache)[TRAIN]) == 140
    assert zipfile.is_zipfile(cache_file)  # rewritten as a valid .npz (a zip archive)


def test_stratified_subset_keeps_class_shares(kaggle_zip):
    train = load_splits(kaggle_zip)[TRAIN]
    subset = stratified_subset(train, 70, seed=1)
    assert len(subset) == 70
    assert subset.class_counts() == expected_counts(10)
    assert stratified_subset(train, 10_000, seed=1) is train


@pytest.mark.parametrize("size", [4000, 1, 7, 999])
def test_stratified_subset_has_exactly_the_size_asked_for(size):
    from fer.datasets import LabeledImages

    counts = [3995, 436, 4097, 7215, 4830, 3171, 4965]  # FER2013's Training split, in EMOTIONS order
    labels = np.repeat(np.arange(7), counts)
    data = LabeledImages(np.zeros((len(labels), 1, 1), np.uint8), labels)
    subset = stratified_subset(data, size, seed=0)
    assert len(subset) == size
    shares = np.bincount(subset.labels, minlength=7) - np.array(counts) * size / len(labels)
    assert np.abs(shares).max() < 1  # every class within one image of its exact share
