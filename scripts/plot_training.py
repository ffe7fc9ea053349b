"""Plot a run's training curves (loss and accuracy per epoch) from its metrics.jsonl.

python scripts/plot_training.py runs/train --out docs/curves.png
"""

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder holding metrics.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    metrics = args.run / "metrics.jsonl"
    if not metrics.is_file():
        print(f"error: no {metrics}", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    epochs = [row["epoch"] for row in rows]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axes.plot(epochs, [row["train_loss"] for row in rows], label="train (augmented, label-smoothed)")
    loss_axes.plot(epochs, [row["val_loss"] for row in rows], label="validation (EMA)")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("cross-entropy")
    loss_axes.legend()
    accuracy_axes.plot(epochs, [100 * row["train_accuracy"] for row in rows], label="train (augmented)")
    accuracy_axes.plot(epochs, [100 * row["val_accuracy"] for row in rows], label="validation (EMA, no TTA)")
    best = max(rows, key=lambda row: row["val_accuracy"])
    accuracy_axes.annotate(
        f"best {100 * best['val_accuracy']:.2f}% (epoch {best['epoch']})",
        (best["epoch"], 100 * best["val_accuracy"]),
        textcoords="offset points",
        xytext=(-120, -30),
        arrowprops={"arrowstyle": "->"},
    )
    accuracy_axes.set_xlabel("epoch")
    accuracy_axes.set_ylabel("accuracy (%)")
    accuracy_axes.legend()
    figure.suptitle(args.title or str(args.run))
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
