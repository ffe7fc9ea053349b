"""scripts/train_queue.sh with a queue file, as the flagship plan is trained across legs: comments
skipped, each run trained into OUT/NAME with the line's flags, its records and soft targets kept,
and a finished run skipped when the queue starts again."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO

QUEUE = """# a plan: one tiny run
tiny-e1   --arch vgg_slim --epochs 1 --batch-size 16 --max-samples 64   # trailing comments too
"""


def run_queue(queue_file, kaggle_zip, tmp_path, **variables):
    env = {
        **os.environ,
        **variables,
        "DATA": str(kaggle_zip),
        "OUT": str(tmp_path / "runs"),
        "TEACHERS_OUT": str(tmp_path / "teachers"),
        "RECORDS_OUT": str(tmp_path / "records"),
        "CAPTURE_OUT": str(tmp_path / "capture"),
        "PY": sys.executable,
    }
    return subprocess.run(
        ["bash", "scripts/train_queue.sh", str(queue_file)], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_a_queue_file_trains_each_line_once(kaggle_zip, tmp_path):
    queue = tmp_path / "plan.txt"
    queue.write_text(QUEUE)
    first = run_queue(queue, kaggle_zip, tmp_path, DEVICE="auto")  # cpu unless told: auto is CPU here too
    assert first.returncode == 0, first.stdout + first.stderr
    run = tmp_path / "runs" / "tiny-e1"
    config = json.loads((run / "config.json").read_text())
    assert (config["epochs"], config["max_samples"], config["batch_size"]) == (1, 64, 16)
    assert config["device"] == "auto"  # DEVICE is the trainer's --device
    assert (tmp_path / "records" / "tiny-e1" / "metrics.jsonl").read_bytes() == (run / "metrics.jsonl").read_bytes()
    assert (tmp_path / "teachers" / "tiny-e1.npz").is_file()
    proxy = json.loads((tmp_path / "capture" / "tiny-e1.json").read_text())
    (figures,) = proxy["models"].values()
    assert proxy["faces"] == 35 and 0 <= figures["accuracy"]["proxy"] <= 1
    assert "all runs of plan finished" in first.stdout

    again = run_queue(queue, kaggle_zip, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "tiny-e1 finished; skipping" in again.stdout and "training vgg_slim" not in again.stderr


def test_a_missing_queue_file_stops_with_its_name(tmp_path):
    result = subprocess.run(
        ["bash", "scripts/train_queue.sh", str(tmp_path / "none.txt")], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode != 0 and "none.txt" in result.stderr


def _queue_with_a_kept_record(tmp_path):
    """The queue file, and tiny-e1's records as an earlier leg committed them (its run folder gone)."""
    queue = tmp_path / "plan.txt"
    queue.write_text(QUEUE)
    record = tmp_path / "records" / "tiny-e1"
    record.mkdir(parents=True)
    (record / "config.json").write_text(json.dumps({"epochs": 1}))
    (record / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_accuracy": 0.3}) + "\n")
    return queue


def test_a_run_finished_in_an_earlier_checkout_is_not_trained_again(kaggle_zip, tmp_path):
    # Run folders do not outlive the machine; the committed records and soft targets do.
    queue = _queue_with_a_kept_record(tmp_path)
    (tmp_path / "teachers").mkdir()
    (tmp_path / "teachers" / "tiny-e1.npz").write_bytes(b"kept from an earlier leg")

    result = run_queue(queue, kaggle_zip, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tiny-e1 finished in an earlier leg" in result.stdout
    assert not (tmp_path / "runs" / "tiny-e1").exists()
    assert (tmp_path / "teachers" / "tiny-e1.npz").read_bytes() == b"kept from an earlier leg"


def test_a_record_without_its_soft_targets_is_trained_again(kaggle_zip, tmp_path):
    # Without best.pt the soft targets cannot be written, so only a retrained run can give them.
    queue = _queue_with_a_kept_record(tmp_path)

    result = run_queue(queue, kaggle_zip, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "runs" / "tiny-e1" / "best.pt").is_file()
    assert (tmp_path / "teachers" / "tiny-e1.npz").is_file()
