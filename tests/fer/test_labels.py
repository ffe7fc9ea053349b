import pytest

import fer
from fer.labels import EMOTIONS, check_labels, emotion_index


def test_emotions_are_in_fer2013_csv_order():
    assert fer.EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert fer.NUM_CLASSES == 7


def test_folder_names_map_by_name_not_by_sorted_position():
    kaggle_folders = sorted(EMOTIONS)  # angry disgust fear happy neutral sad surprise
    by_name = [emotion_index(folder) for folder in kaggle_folders]
    assert by_name == [0, 1, 2, 3, 6, 4, 5]
    assert by_name != list(range(7))  # sorted position would mislabel neutral, sad and surprise


def test_emotion_index_is_case_insensitive_and_strict():
    assert emotion_index("Sad") == 4 and emotion_index(" NEUTRAL ") == 6
    with pytest.raises(KeyError, match="unknown emotion 'contempt'"):
        emotion_index("contempt")


def test_check_labels_rejects_other_orders():
    check_labels(list(EMOTIONS), "x")
    with pytest.raises(ValueError, match="was trained for labels"):
        check_labels(sorted(EMOTIONS), "weights.json")


@pytest.mark.parametrize(
    "labels",
    [
        list(EMOTIONS)[::-1],  # sorts after EMOTIONS: any difference is refused, not only "smaller" ones
        list(EMOTIONS)[:6],  # a 6-class model
        [*EMOTIONS, "contempt"],  # an 8-class model
    ],
)
def test_check_labels_rejects_any_other_label_list(labels):
    with pytest.raises(ValueError, match="was trained for labels"):
        check_labels(labels, "weights.json")


def test_emotion_shares_are_percentages_of_the_total_in_emotions_order():
    from fer.labels import emotion_shares

    assert emotion_shares({"sad": 1, "happy": 29}) == "happy 97%, sad 3%"
    assert emotion_shares({"neutral": 2, "angry": 2, "fear": 0}) == "angry 50%, neutral 50%"
    assert emotion_shares({}) == "none" and emotion_shares({"happy": 0}) == "none"
