"""scripts/ablation.sh as it is used across legs: a queue of real training runs that writes each
finished run's soft targets, and skips what is done when it is started again."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO
from training.distill import SoftTargets


def run_queue(kaggle_zip, tmp_path, recipes):
    env = {
        **os.environ,
        "DATA": str(kaggle_zip),
        "EPOCHS": "1",
        "SEEDS": "0",
        "RECIPES": recipes,
        "OUT": str(tmp_path / "runs"),
        "TEACHERS_OUT": str(tmp_path / "teachers"),
        "RECORDS_OUT": str(tmp_path / "records"),
        "PY": sys.executable,
    }
    return subprocess.run(
        ["bash", "scripts/ablation.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_queue_trains_writes_targets_and_skips_finished_runs(kaggle_zip, tmp_path):
    first = run_queue(kaggle_zip, tmp_path, "base")
    assert first.returncode == 0, first.stdout + first.stderr
    run, targets = tmp_path / "runs" / "base-e1-s0", tmp_path / "teachers" / "base-e1-s0.npz"
    assert [json.loads(row)["epoch"] for row in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert SoftTargets.load(targets).teachers == [str(run / "best.pt")]
    for kept in ("config.json", "metrics.jsonl"):  # to be committed: the run folder will not last
        assert (tmp_path / "records" / "base-e1-s0" / kept).read_bytes() == (run / kept).read_bytes()

    written = {str(path): path.stat().st_mtime_ns for path in [*run.iterdir(), targets]}
    again = run_queue(kaggle_zip, tmp_path, "base")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "base-e1-s0 finished; skipping" in again.stdout and "training vgg_slim" not in again.stderr
    assert {str(path): path.stat().st_mtime_ns for path in [*run.iterdir(), targets]} == written


def test_an_unknown_recipe_stops_the_queue(kaggle_zip, tmp_path):
    result = run_queue(kaggle_zip, tmp_path, "nonsense")
    assert result.returncode != 0 and "unknown recipe nonsense" in result.stderr
    assert not (tmp_path / "runs" / "nonsense-e1-s0").exists()
