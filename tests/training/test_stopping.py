"""Stopping a training run, on purpose or not, as a user meets it: Ctrl+C and SIGTERM end it with
one line that says what was saved and how to resume; a run folder that cannot be written, a foreign
last.pt or a file size limit are one line and exit 2, before an epoch is wasted (issue 33)."""

import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fer.weights import load_checkpoint
from tests.conftest import REPO, run_python
from training.checkpoint import save_checkpoint
from training.config import TrainConfig

TRAIN = [sys.executable, "-m", "training.train"]


def train_args(data, out, *extra) -> list[str]:
    return ["--data", str(data), "--out", str(out), "--arch", "vgg_slim", "--device", "cpu", *extra]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*TRAIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def wait_for(condition, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def epochs_logged(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()] if path.exists() else []


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_training_with_one_line_that_says_how_to_resume(kaggle_zip, tmp_path, signum):
    out = tmp_path / "run"
    process = start(train_args(kaggle_zip, out, "--epochs", "4", "--batch-size", "16"))
    wait_for(lambda: (out / "last.pt").exists(), process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    saved = load_checkpoint(out / "last.pt")["epoch"]
    # The checkpoint is written before the epoch's log line (training/train.py): stopped between the
    # two, the log is one behind (none at all after epoch 1) until the resume writes it from last.pt.
    assert (epochs_logged(out) or [0])[-1] in (saved - 1, saved)
    name = signal.Signals(signum).name
    assert last.startswith(f"interrupted ({name}): {out / 'last.pt'} holds epoch {saved} of 4; resume with: python ")
    command = shlex.split(last.split("resume with: python ", 1)[1])
    resumed = run_python(*command)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {out / 'last.pt'} after epoch {saved}/4" in resumed.stderr
    assert epochs_logged(out) == [1, 2, 3, 4]


def test_a_run_stopped_in_its_first_epoch_resumes_its_own_settings(kaggle_zip, tmp_path):
    out = tmp_path / "run"
    asked = ("--epochs", "1", "--batch-size", "1", "--optimizer", "adamw", "--seed", "5", "--max-samples", "120")
    process = start(train_args(kaggle_zip, out, *asked))  # 120 steps of one face: seconds
    wait_for(lambda: (out / "config.json").exists(), process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert "interrupted (SIGINT): no epoch finished, nothing saved but the settings" in stderr
    assert not (out / "last.pt").exists() and epochs_logged(out) == []

    # Resumed with the data and folder only: the settings are the interrupted run's, not the defaults.
    resumed = run_python("-m", "training.train", "--data", str(kaggle_zip), "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "starting its run again from config.json" in resumed.stderr
    saved = load_checkpoint(out / "last.pt")["config"]
    assert (saved["arch"], saved["epochs"], saved["batch_size"], saved["optimizer"], saved["seed"]) == (
        "vgg_slim", 1, 1, "adamw", 5,
    )  # fmt: skip
    assert saved["max_samples"] == 120 and saved["device"] == "auto"  # the device is the machine's business


def test_settings_given_when_resuming_an_unstarted_run_override_its_config_and_are_named(kaggle_zip, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    settings = TrainConfig(data=str(kaggle_zip), arch="vgg_slim", epochs=3, batch_size=16, seed=9, out=str(out))
    (out / "config.json").write_text(json.dumps(settings.to_dict()))
    result = run_python("-m", "training.train", *train_args(kaggle_zip, out, "--epochs", "1", "--resume"))
    assert result.returncode == 0, result.stderr
    assert "with what was given now: epochs 3 -> 1" in result.stderr
    saved = load_checkpoint(out / "last.pt")["config"]
    assert (saved["epochs"], saved["batch_size"], saved["seed"]) == (1, 16, 9)


def test_a_run_folder_that_cannot_be_made_fails_before_training(kaggle_zip, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    started = time.monotonic()
    line = one_line_error(run_python("-m", "training.train", *train_args(kaggle_zip, tmp_path / "file" / "run")))
    assert line == f"error: cannot write the run folder {tmp_path / 'file' / 'run'}: Not a directory"
    assert time.monotonic() - started < 60


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_folder_fails_before_the_first_epoch_even_when_resuming(kaggle_zip, tmp_path):
    out = tmp_path / "run"
    assert run_python("-m", "training.train", *train_args(kaggle_zip, out, "--epochs", "1")).returncode == 0
    out.chmod(0o555)
    try:
        result = run_python("-m", "training.train", *train_args(kaggle_zip, out, "--epochs", "2", "--resume"))
    finally:
        out.chmod(0o755)
    assert one_line_error(result).startswith(f"error: cannot write the run folder {out}: Permission denied")
    assert epochs_logged(out) == [1]


def test_a_last_pt_of_bare_weights_is_one_line(kaggle_zip, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"features.0.weight": torch.zeros(8, 1, 3, 3)}, out / "last.pt")
    line = one_line_error(run_python("-m", "training.train", *train_args(kaggle_zip, out, "--resume")))
    assert line.startswith(f"error: {out / 'last.pt'} is not a fer training checkpoint (it has no config, epoch")
    assert "--overwrite starts the run anew" in line


def test_a_last_pt_whose_weights_do_not_fit_its_settings_is_one_line(kaggle_zip, tmp_path):
    out = tmp_path / "run"
    assert run_python("-m", "training.train", *train_args(kaggle_zip, out, "--epochs", "1")).returncode == 0
    checkpoint = load_checkpoint(out / "last.pt")
    checkpoint["config"]["arch"] = "resnet_slim"
    checkpoint["config"]["epochs"] = 2
    save_checkpoint(checkpoint, out / "last.pt")
    line = one_line_error(run_python("-m", "training.train", "--data", str(kaggle_zip), "--out", str(out), "--resume"))
    assert line.startswith(f"error: {out / 'last.pt'} does not fit the resnet_slim run its own settings describe (")


def test_a_file_size_limit_during_a_save_names_the_limit(kaggle_zip, tmp_path):
    out = tmp_path / "run"
    limit = 200_000  # config.json and the log fit; a vgg_slim checkpoint (about 3 MB) does not

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [*TRAIN, *train_args(kaggle_zip, out, "--epochs", "1")],
        capture_output=True, text=True, timeout=240, cwd=REPO, preexec_fn=limit_file_size,
    )  # fmt: skip
    line = one_line_error(result)
    assert line == (
        f"error: cannot write {out / 'best.pt'}: the checkpoint is larger than this process may write "
        f"(ulimit -f: {limit:,} bytes); any earlier best.pt is intact"
    )
    assert not list(out.glob(".*.tmp")) and not (out / "best.pt").exists()  # nothing half-written


# ---- under torchrun --------------------------------------------------------------------------------


def launch(args: list[str]) -> subprocess.Popen:
    """training.launch (torchrun's code, quiet when stopped) with 2 gloo workers, in a process group of
    its own, as a terminal runs it: Ctrl+C there signals the whole group."""
    command = [sys.executable, "-m", "training.launch", "--standalone", "--nproc_per_node=2", "-m", "training.train"]
    return subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True
    )


def test_ctrl_c_under_the_launcher_ends_with_the_trainers_line_alone(kaggle_zip, tmp_path):
    # Under plain torchrun the line was followed by 20 frames of the launcher's SignalException.
    out = tmp_path / "run"
    process = launch(train_args(kaggle_zip, out, "--epochs", "6", "--batch-size", "16"))
    wait_for(lambda: (out / "last.pt").exists(), process)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "Traceback" not in stderr and "SignalException" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted (SIGINT): ") and "--resume" in last, stderr
    assert stderr.count("interrupted (SIGINT)") == 1  # rank 0 speaks for the run


def test_a_workers_error_under_the_launcher_is_its_line_and_its_status(kaggle_zip, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"weights": "not a checkpoint"}, out / "last.pt")
    process = launch(train_args(kaggle_zip, out, "--resume"))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr and "ChildFailedError" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "exited with status 2 (its message is above)" in stderr.strip().splitlines()[-1]
