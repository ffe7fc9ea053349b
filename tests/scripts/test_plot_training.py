import json

from tests.conftest import run_python


def test_plots_a_runs_curves(tmp_path):
    rows = [
        {
            "epoch": e,
            "train_loss": 2 - e / 10,
            "val_loss": 1.9 - e / 10,
            "train_accuracy": e / 10,
            "val_accuracy": e / 9,
        }
        for e in (1, 2, 3)
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_python("scripts/plot_training.py", str(tmp_path), "--out", str(tmp_path / "curves.png"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_metrics_is_a_clear_error(tmp_path):
    result = run_python("scripts/plot_training.py", str(tmp_path), "--out", str(tmp_path / "c.png"))
    assert result.returncode == 2 and "no " in result.stderr and "Traceback" not in result.stderr
