"""scripts/ablation.sh as it is used across legs: a queue of real training runs that writes each
finished run's soft targets, and skips what is done when it is started again."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def run_queue(kaggle_zip, tmp_path, recipes):
    env = {
        **os.environ,
        "DATA": str(kaggle_zip),
        "EPOCHS": "1",
        "SEEDS": "0",
        "RECIPES": recipes,
        "OUT": str(tmp_path / "runs"),
        "TEACHERS_OUT": str(tmp_path / "teachers"),
        # The distill recipe learns from the base run's targets, written by the queue itself.
        "TEACHERS": str(tmp_path / "teachers" / "base-e1-s0.npz"),
        "PY": sys.executable,
    }
    return subprocess.run(
        ["bash", "scripts/ablation.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_queue_trains_writes_targets_and_skips_finished_runs(kaggle_zip, tmp_path):
    first = run_queue(kaggle_zip, tmp_path, "base distill")
    assert first.returncode == 0, first.stdout + first.stderr
    runs, teachers = tmp_path / "runs", tmp_path / "teachers"
    for run in ("base-e1-s0", "distill-e1-s0"):
        rows = (runs / run / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(row)["epoch"] for row in rows] == [1]
        assert (teachers / f"{run}.npz").stat().st_size > 0
    config = json.loads((runs / "distill-e1-s0" / "config.json").read_text())
    assert config["distill"] == str(teachers / "base-e1-s0.npz")

    written = {str(path): path.stat().st_mtime_ns for path in [*runs.glob("*/*"), *teachers.iterdir()]}
    again = run_queue(kaggle_zip, tmp_path, "base distill")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("finished; skipping") == 2 and "training vgg_slim" not in again.stderr
    assert {str(path): path.stat().st_mtime_ns for path in [*runs.glob("*/*"), *teachers.iterdir()]} == written


def test_an_unknown_recipe_stops_the_queue(kaggle_zip, tmp_path):
    result = run_queue(kaggle_zip, tmp_path, "nonsense")
    assert result.returncode != 0 and "unknown recipe nonsense" in result.stderr
    assert not (tmp_path / "runs" / "nonsense-e1-s0").exists()
