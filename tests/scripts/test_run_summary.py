import json

from tests.conftest import run_python


def _write_run(folder, accuracies, images_per_second, cpu_seconds_per_epoch=None):
    folder.mkdir()
    rows = [
        {"epoch": e + 1, "val_accuracy": a, "images_per_second": s, "elapsed_seconds": 60.0 * (e + 1)}
        for e, (a, s) in enumerate(zip(accuracies, images_per_second))
    ]
    if cpu_seconds_per_epoch is not None:
        for row in rows:
            row["cpu_seconds"] = cpu_seconds_per_epoch * row["epoch"]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_summarizes_throughput_time_to_targets_and_best_epoch(tmp_path):
    run = _write_run(tmp_path / "fast", [0.5, 0.66, 0.71, 0.70], [100, 300, 200, 900], cpu_seconds_per_epoch=900)
    slow = _write_run(tmp_path / "slow", [0.4, 0.6], [50, 70])
    result = run_python("scripts/run_summary.py", str(run), str(slow), "--targets", "0.65", "0.7")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "| run | epochs | train img/s (median) | time to 65% | time to 70% | total | CPU-hours "
        "| best validation (no TTA) |"
    )
    assert lines[2] == "| fast | 4 | 250 | 2.0 min (epoch 2) | 3.0 min (epoch 3) | 4.0 min | 1.00 | 71.00% (epoch 3) |"
    # A run logged before cpu_seconds existed says so instead of inventing a figure.
    assert lines[3] == "| slow | 2 | 60 | not reached | not reached | 2.0 min | — | 60.00% (epoch 2) |"


def test_ablation_groups_seeds_per_recipe_against_the_base_recipe(tmp_path):
    runs = [
        _write_run(tmp_path / "base-e40-s0", [0.60, 0.66, 0.65], [1, 1, 1], cpu_seconds_per_epoch=1200),
        _write_run(tmp_path / "base-e40-s1", [0.61, 0.64, 0.63], [1, 1, 1], cpu_seconds_per_epoch=1200),
        _write_run(tmp_path / "cutmix-e40-s0", [0.58, 0.66, 0.67], [1, 1, 1], cpu_seconds_per_epoch=1320),
        _write_run(tmp_path / "cutmix-e40-s1", [0.59, 0.65, 0.69], [1, 1, 1], cpu_seconds_per_epoch=1320),
        _write_run(tmp_path / "distill-e40-s0", [0.62, 0.67, 0.66], [1, 1, 1], cpu_seconds_per_epoch=1260),
    ]
    result = run_python("scripts/run_summary.py", "--ablation", *map(str, runs))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| recipe | seeds | epochs | best validation, mean (range) | vs base (points) |")
    assert lines[2] == "| base-e40 | 2 | 3/3 | 65.00% (64.00–66.00) | +0.00 | 64.00% (63.00–65.00) | 1.00 |"
    assert lines[3] == "| cutmix-e40 | 2 | 3/3 | 68.00% (67.00–69.00) | +3.00 | 68.00% (67.00–69.00) | 1.10 |"
    assert lines[4] == "| distill-e40 | 1 | 3 | 67.00% | +2.00 | 66.00% | 1.05 |"  # one seed: no range


def test_a_folder_without_metrics_is_a_clear_error(tmp_path):
    result = run_python("scripts/run_summary.py", str(tmp_path))
    assert result.returncode == 2 and "no " in result.stderr and "Traceback" not in result.stderr
