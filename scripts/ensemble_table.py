"""What each teacher adds to an ensemble: a Markdown table of validation accuracy for every member
alone, all together, all but each one, and the best pair, from committed soft-targets files
(`python -m training.distill` writes them; no model is run), for docs/training.md.

    python scripts/ensemble_table.py --data ../shared/data/fer2013.zip docs/runs/teachers/fer-v1-tencrop.npz \\
        docs/runs/teachers/distill-e120-s0.npz docs/runs/teachers/mixup-e120-s1.npz

An ensemble averages its members' probabilities, as `training.distill` does when it writes one.
"""

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

from fer.datasets import VALIDATION, load_splits, select_split
from fer.errors import FerError
from training.distill import SoftTargets


def member_probabilities(files: list[Path], data: str) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
    """Each file's (M, 7) validation probabilities by its name, the validation labels, and their TTA;
    every file must hold targets of the same TTA, computed for this dataset's validation faces."""
    validation = select_split(load_splits(data), VALIDATION, data)
    members, modes = {}, set()
    for path in files:
        stored = SoftTargets.load(path)
        members[path.stem] = stored.for_split(validation, path, VALIDATION)
        modes.add(stored.tta)
    if len(modes) > 1:
        raise FerError(
            f"the files hold targets of different TTA modes ({', '.join(sorted(modes))}): compare like with like"
        )
    if len(members) < len(files):
        raise FerError("two files have the same name; each member is named by its file")
    return members, validation.labels, modes.pop()


def ensemble_rows(members: dict[str, np.ndarray], labels: np.ndarray) -> list[tuple[str, float]]:
    """(what, accuracy) rows: each member, all of them, all but each one, and the best pair."""

    def accuracy(names) -> float:
        mean = np.mean([members[name] for name in names], axis=0)
        return float((mean.argmax(1) == labels).mean())

    names = list(members)
    rows = [(name, accuracy([name])) for name in names]
    if len(names) < 2:
        return rows
    rows.append((f"all {len(names)}", accuracy(names)))
    if len(names) > 2:
        rows += [(f"without {left_out}", accuracy([n for n in names if n != left_out])) for left_out in names]
        pair = max(itertools.combinations(names, 2), key=accuracy)
        rows.append((f"best pair: {' + '.join(pair)}", accuracy(pair)))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", type=Path, nargs="+", help="soft-targets files (.npz), one a member")
    parser.add_argument("--data", required=True, help="the FER2013 .zip, folder or CSV they were computed on")
    args = parser.parse_args(argv)
    try:
        members, labels, tta = member_probabilities(args.targets, args.data)
    except FerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"| ensemble | validation ({tta}) |")
    print("|---|---:|")
    for what, accuracy in ensemble_rows(members, labels):
        print(f"| {what} | {accuracy:.2%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
