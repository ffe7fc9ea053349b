import json

import numpy as np
import pytest

from fer.metrics import compute_metrics
from tests.conftest import run_python


def test_metrics_match_hand_computed_numbers():
    # Classes: 0 angry, 3 happy, 6 neutral. Truth and predictions:
    truth = [0, 0, 0, 3, 3, 6, 6, 6, 6, 6]
    predicted = [0, 0, 3, 3, 3, 6, 6, 6, 0, 3]
    report = compute_metrics(np.array(truth), np.array(predicted))
    assert report["n"] == 10
    assert report["accuracy"] == pytest.approx(7 / 10)
    angry, happy, neutral = (report["per_class"][e] for e in ("angry", "happy", "neutral"))
    # angry: 2 right of 3 true, 2 right of 3 predicted
    assert (angry["precision"], angry["recall"], angry["support"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    # happy: 2 right of 2 true, 2 right of 4 predicted -> F1 = 2 * 0.5 * 1 / 1.5
    assert (happy["precision"], happy["recall"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert happy["f1"] == pytest.approx(2 / 3)
    # neutral: 3 right of 5 true, 3 right of 3 predicted -> F1 = 2 * 1 * 0.6 / 1.6 = 0.75
    assert neutral["f1"] == pytest.approx(0.75)
    # macro F1 over the three classes present
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0.75) / 3)
    # a class never present or predicted: zeros, not NaN
    assert report["per_class"]["disgust"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (7, 7) and matrix.sum() == 10
    assert matrix[0, 0] == 2 and matrix[0, 3] == 1 and matrix[6, 0] == 1 and matrix[6, 3] == 1 and matrix[6, 6] == 3
    assert report["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def test_a_class_predicted_once_and_right_has_precision_one():
    report = compute_metrics(np.array([2, 3, 3]), np.array([2, 3, 3]))
    assert report["per_class"]["fear"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    # A class that occurs once counts in macro F1 like any other: fear missed, happy F1 0.8.
    missed = compute_metrics(np.array([2, 3, 3]), np.array([3, 3, 3]))
    assert missed["macro_f1"] == pytest.approx((0.0 + 0.8) / 2)


def test_f1_when_precision_and_recall_add_up_to_one_or_less():
    report = compute_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))  # half right in each class
    assert report["per_class"]["angry"]["f1"] == pytest.approx(0.5)
    low = compute_metrics(np.array([0, 0, 0, 0, 1]), np.array([0, 1, 1, 1, 0]))  # angry: p 1/2, r 1/4
    assert low["per_class"]["angry"]["f1"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)


def test_an_empty_split_scores_zero_not_nan():
    report = compute_metrics(np.array([], np.int64), np.array([], np.int64))
    assert (report["accuracy"], report["macro_f1"], report["n"]) == (0.0, 0.0, 0)


def test_fer_evaluate_json_on_a_checkpoint(kaggle_zip, trained_checkpoint, tmp_path):
    plot = tmp_path / "cm.png"
    result = run_python(
        "-m", "fer_cli", "evaluate", str(kaggle_zip), "--split", "validation", "--weights", str(trained_checkpoint),
        "--json", "--plot", str(plot), "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "labels", "n", "tta"} <= set(report)
    assert report["n"] == 35  # 5 PublicTest faces per emotion
    assert sum(row["support"] for row in report["per_class"].values()) == 35
    assert sum(map(sum, report["confusion_matrix"])) == 35
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fer_evaluate_test_split_and_tta(kaggle_zip, trained_checkpoint):
    result = run_python(
        "-m", "fer_cli", "evaluate", str(kaggle_zip), "--split", "test", "--weights", str(trained_checkpoint),
        "--tta", "tencrop", "--json", "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 21 and report["tta"] == "tencrop"


def test_fer_evaluate_prints_a_table(kaggle_zip, trained_checkpoint):
    result = run_python(
        "-m", "fer_cli", "evaluate", str(kaggle_zip), "--weights", str(trained_checkpoint), "--device", "cpu"
    )
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "confusion matrix" in result.stdout and "neutral" in result.stdout


def hand_computed_report(tta="none"):
    truth = [0, 0, 0, 3, 3, 6, 6, 6, 6, 6]
    predicted = [0, 0, 3, 3, 3, 6, 6, 6, 0, 3]
    return {**compute_metrics(np.array(truth), np.array(predicted)), "tta": tta}


def test_the_table_shows_the_numbers_in_aligned_columns():
    from fer.metrics import format_report

    lines = format_report(hand_computed_report("flip")).splitlines()
    assert lines[0] == "accuracy 70.00%   macro F1 0.694   n 10   tta flip"
    assert lines[2] == "emotion    precision    recall      f1  support"
    assert lines[3] == "angry          0.667     0.667   0.667        3"
    assert lines[6] == "happy          0.500     1.000   0.667        2"
    assert lines[9] == "neutral        1.000     0.600   0.750        5"
    assert lines[11] == "confusion matrix (rows: truth, columns: predicted)"
    assert lines[12] == "             angry disgust    fear   happy     sad surpris neutral"
    assert lines[13] == "angry            2       0       0       1       0       0       0"
    assert lines[19] == "neutral          1       0       0       1       0       0       3"
    assert len(lines) == 20


def test_a_predictor_is_scored_on_the_argmax_of_its_probabilities():
    from fer.metrics import evaluate_predictor

    class Fixed:  # a predictor that says "happy" for bright faces and "sad" for dark ones
        tta = "tencrop"

        def predict_pixels(self, images):
            bright = images.reshape(len(images), -1).mean(1) > 127
            probabilities = np.full((len(images), 7), 0.05)
            probabilities[bright, 3] = 0.7
            probabilities[~bright, 4] = 0.7
            return probabilities

    images = np.zeros((4, 48, 48), np.uint8)
    images[:2] = 200
    report = evaluate_predictor(Fixed(), images, np.array([3, 4, 4, 4]))
    assert report["accuracy"] == 0.75 and report["tta"] == "tencrop" and report["n"] == 4
    assert report["confusion_matrix"][4][3] == 1
