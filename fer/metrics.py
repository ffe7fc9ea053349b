"""Accuracy, macro F1, per-class precision/recall/F1 and the confusion matrix of a model on a split.

fer evaluate ../shared/data/fer2013.zip --split validation --weights runs/train/best.pt --json
"""

import os
from typing import Protocol

import numpy as np

from fer.labels import EMOTIONS, NUM_CLASSES


class Classifier(Protocol):
    """What evaluation needs of a model: a fer.Predictor is one (this module stays free of torch)."""

    tta: str

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 48, 48) uint8 faces -> (N, 7) probabilities."""
        ...


def compute_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """Metrics for integer labels; the confusion matrix has truth in rows, predictions in columns,
    both in EMOTIONS order. A class never predicted has precision 0 (and F1 0), not NaN."""
    truth, predicted = np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    true_positives = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    precision = np.divide(true_positives, predicted_count, out=np.zeros(NUM_CLASSES), where=predicted_count > 0)
    recall = np.divide(true_positives, support, out=np.zeros(NUM_CLASSES), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(NUM_CLASSES), where=denominator > 0)
    present = support > 0  # macro F1 over the classes that occur, as scikit-learn does with labels=present
    n = int(len(truth))
    return {
        "accuracy": float(true_positives.sum() / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            emotion: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, emotion in enumerate(EMOTIONS)
        },
        "confusion_matrix": matrix.tolist(),
        "labels": list(EMOTIONS),
        "n": n,
    }


def evaluate_predictor(predictor: Classifier, images: np.ndarray, labels: np.ndarray) -> dict:
    """Metrics of a `fer.Predictor` (with its TTA setting) on (N, 48, 48) uint8 faces."""
    probabilities = predictor.predict_pixels(images)
    return {**compute_metrics(labels, probabilities.argmax(1)), "tta": predictor.tta}


def format_report(report: dict) -> str:
    """A human-readable table of the metrics."""
    lines = [
        f"accuracy {report['accuracy']:.2%}   macro F1 {report['macro_f1']:.3f}   "
        f"n {report['n']}   tta {report['tta']}",
        "",
        f"{'emotion':<10}{'precision':>10}{'recall':>10}{'f1':>8}{'support':>9}",
    ]
    for emotion, row in report["per_class"].items():
        lines.append(
            f"{emotion:<10}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>8.3f}{row['support']:>9d}"
        )
    lines += [
        "",
        "confusion matrix (rows: truth, columns: predicted)",
        " " * 10 + "".join(f"{e[:7]:>8}" for e in EMOTIONS),
    ]
    for emotion, row in zip(EMOTIONS, report["confusion_matrix"]):
        lines.append(f"{emotion:<10}" + "".join(f"{count:>8d}" for count in row))
    return "\n".join(lines)


def plot_confusion_matrix(report: dict, path: str | os.PathLike, title: str = "") -> None:
    """Write the confusion matrix, normalized per true class, with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    matrix = np.asarray(report["confusion_matrix"], dtype=np.float64)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(7, 6))
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(NUM_CLASSES), EMOTIONS, rotation=45, ha="right")
    axes.set_yticks(range(NUM_CLASSES), EMOTIONS)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i in range(NUM_CLASSES):
        for j in range(NUM_CLASSES):
            color = "white" if rates[i, j] > 0.5 else "black"
            axes.text(
                j, i, f"{rates[i, j]:.2f}\n{int(matrix[i, j])}", ha="center", va="center", fontsize=7, color=color
            )
    axes.set_title(title or f"accuracy {report['accuracy']:.2%} (n={report['n']}, tta {report['tta']})")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
