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
