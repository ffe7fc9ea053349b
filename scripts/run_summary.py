"""One Markdown table row per training run, from its metrics.jsonl, for docs/training.md: median
training throughput, wall time to given validation accuracies, total time, CPU-hours, best accuracy
and epoch. With --ablation, one row per recipe instead: runs named RECIPE-sSEED (scripts/ablation.sh)
are grouped over their seeds, with the mean, the range and the difference to the `base` recipe.

python scripts/run_summary.py runs/baseline-vgg_slim runs/flagship-vgg_slim --targets 0.65 0.7
python scripts/run_summary.py --ablation runs/ablation/*
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path


def read_metrics(run: Path) -> list[dict]:
    """The rows of RUN/metrics.jsonl, without a last line that a stopped trainer left half-written."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):  # only the last line can be cut short by a kill
                raise ValueError(f"{path}:{number} is not JSON") from None
    return rows


def first_reaching(rows: list[dict], accuracy: float) -> dict | None:
    """The first epoch's row whose validation accuracy reached `accuracy`, or None."""
    return next((row for row in rows if row["val_accuracy"] >= accuracy), None)


def time_to(rows: list[dict], accuracy: float) -> str:
    """Minutes until the validation accuracy first reached `accuracy`, with the epoch, or "not reached"."""
    row = first_reaching(rows, accuracy)
    return f"{row['elapsed_seconds'] / 60:.1f} min (epoch {row['epoch']})" if row else "not reached"


def summary_row(run: Path, targets: list[float]) -> str:
    rows = read_metrics(run)
    best = max(rows, key=lambda row: row["val_accuracy"])
    cells = [
        run.name,
        str(rows[-1]["epoch"]),
        f"{statistics.median(row['images_per_second'] for row in rows):,.0f}",
        *(time_to(rows, target) for target in targets),
        f"{rows[-1]['elapsed_seconds'] / 60:.1f} min",
        cpu_hours(rows),
        f"{100 * best['val_accuracy']:.2f}% (epoch {best['epoch']})",
    ]
    return "| " + " | ".join(cells) + " |"


def cpu_hours(rows: list[dict]) -> str:
    """The trainer's CPU time (metrics' cpu_seconds, logged since issue 10), or a dash for older runs."""
    seconds = rows[-1].get("cpu_seconds")
    return f"{seconds / 3600:.2f}" if seconds is not None else "—"


def mean_and_range(accuracies: list[float]) -> str:
    """'66.26% (65.95–66.56)' over several seeds; one seed has no range to show."""
    mean = f"{100 * statistics.mean(accuracies):.2f}%"
    if len(accuracies) == 1:
        return mean
    return f"{mean} ({100 * min(accuracies):.2f}–{100 * max(accuracies):.2f})"


def ablation_rows(runs: list[Path]) -> list[str]:
    """One row per recipe over its seeds: best and final validation accuracy (mean, range), CPU-hours."""
    recipes: dict[str, list[list[dict]]] = {}
    for run in runs:
        recipe = re.sub(r"-s\d+$", "", run.name)
        recipes.setdefault(recipe, []).append(read_metrics(run))
    base = next((name for name in recipes if name.split("-")[0] == "base"), None)
    base_mean = statistics.mean(max(r["val_accuracy"] for r in rows) for rows in recipes[base]) if base else None
    lines = []
    for recipe, seeds in recipes.items():
        best = [max(r["val_accuracy"] for r in rows) for rows in seeds]
        final = [rows[-1]["val_accuracy"] for rows in seeds]
        hours = [rows[-1]["cpu_seconds"] / 3600 for rows in seeds if "cpu_seconds" in rows[-1]]
        delta = f"{100 * (statistics.mean(best) - base_mean):+.2f}" if base_mean is not None else "—"
        cells = [
            recipe,
            str(len(seeds)),
            "/".join(str(rows[-1]["epoch"]) for rows in seeds),
            mean_and_range(best),
            delta,
            mean_and_range(final),
            f"{statistics.mean(hours):.2f}" if len(hours) == len(seeds) else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders holding metrics.jsonl")
    parser.add_argument(
        "--targets",
        type=float,
        nargs="+",
        default=[0.65, 0.70, 0.73],
        help="validation accuracies (default: 65, 70 and 73%%, issue 10)",
    )
    parser.add_argument("--ablation", action="store_true", help="one row per recipe over its seeds")
    args = parser.parse_args(argv)
    if args.ablation:
        header = ["recipe", "seeds", "epochs", "best validation, mean (range)", "vs base (points)"]
        header += ["last epoch, mean (range)", "CPU-hours per run"]
    else:
        header = ["run", "epochs", "train img/s (median)"]
        header += [f"time to {100 * t:g}%" for t in args.targets]
        header += ["total", "CPU-hours", "best validation (no TTA)"]
    try:
        if args.ablation:
            lines = ablation_rows(args.runs)
        else:
            lines = [summary_row(run, args.targets) for run in args.runs]
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
