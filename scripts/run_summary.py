"""One Markdown table row per training run, from its metrics.jsonl, for docs/training.md: median
training throughput, wall time to given validation accuracies, total time, best accuracy and epoch.

python scripts/run_summary.py runs/baseline-vgg_slim runs/flagship-vgg_slim --targets 0.65 0.7
"""

import argparse
import json
import statistics
import sys
from pathlib import Path


def read_metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def time_to(rows: list[dict], accuracy: float) -> str:
    """Minutes until the validation accuracy first reached `accuracy`, with the epoch, or "not reached"."""
    for row in rows:
        if row["val_accuracy"] >= accuracy:
            return f"{row['elapsed_seconds'] / 60:.1f} min (epoch {row['epoch']})"
    return "not reached"


def summary_row(run: Path, targets: list[float]) -> str:
    rows = read_metrics(run)
    best = max(rows, key=lambda row: row["val_accuracy"])
    cells = [
        run.name,
        str(rows[-1]["epoch"]),
        f"{statistics.median(row['images_per_second'] for row in rows):,.0f}",
        *(time_to(rows, target) for target in targets),
        f"{rows[-1]['elapsed_seconds'] / 60:.1f} min",
        f"{100 * best['val_accuracy']:.2f}% (epoch {best['epoch']})",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders holding metrics.jsonl")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.65, 0.70], help="validation accuracies")
    args = parser.parse_args(argv)
    header = ["run", "epochs", "train img/s (median)"]
    header += [f"time to {100 * t:g}%" for t in args.targets] + ["total", "best validation (no TTA)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    try:
        for run in args.runs:
            print(summary_row(run, args.targets))
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as error:
        print(f"error: {run}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
