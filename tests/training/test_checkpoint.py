import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from fer.errors import WeightsError
from fer.weights import load_checkpoint
from tests.conftest import run_python
from training.checkpoint import save_checkpoint


def test_round_trip_keeps_every_field(tmp_path):
    state = {
        "model": {"w": torch.randn(3, 3)},
        "epoch": 4,
        "config": {"lr": 0.1, "scale_range": (0.9, 1.1)},
        "labels": ["a", "b"],
        "rng": {"torch": torch.get_rng_state()},
    }
    save_checkpoint(state, tmp_path / "last.pt")
    loaded = load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert loaded["epoch"] == 4 and loaded["config"] == state["config"] and loaded["labels"] == ["a", "b"]
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary files left behind


def test_a_kill_during_saving_leaves_the_old_checkpoint_loadable(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "weights": torch.ones(10)}, path)
    # A child process saves a large checkpoint over and over; it is killed while a save is under way.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, torch\n"
            "from training.checkpoint import save_checkpoint\n"
            "big = {'epoch': 2, 'weights': torch.zeros(60_000_000)}\n"
            "while True: save_checkpoint(big, sys.argv[1])\n",
            str(path),
        ]
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".last.pt.*.tmp")):  # a save has started
            assert time.monotonic() < deadline, "the child never started saving"
            assert child.poll() is None, "the child died before saving"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    loaded = load_checkpoint(path)
    # Whichever save last completed: the old checkpoint or a complete new one, never a torn file.
    assert loaded["epoch"] in (1, 2)
    assert loaded["weights"].numel() == (10 if loaded["epoch"] == 1 else 60_000_000)


def test_missing_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="is not a readable fer checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_pickled_objects_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this ran while loading",))

    torch.save({"model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError) as refused:
        load_checkpoint(tmp_path / "evil.pt")
    # One line, and never torch's advice to retry with weights_only=False (that would run the file).
    assert "weights_only" not in str(refused.value) and len(str(refused.value).splitlines()) == 1


def test_random_bytes_are_one_line_from_the_cli(tmp_path, kaggle_zip):
    random_bytes = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    (tmp_path / "random.pt").write_bytes(random_bytes)
    result = run_python("-m", "fer_cli", "evaluate", str(kaggle_zip), "--weights", str(tmp_path / "random.pt"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"fer: error: {tmp_path / 'random.pt'} is not a readable fer checkpoint")
    assert len(result.stderr.strip().splitlines()) == 1 and "weights_only" not in result.stderr


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_checkpoints_get_the_permissions_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        save_checkpoint({"epoch": 1}, tmp_path / "last.pt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "last.pt").stat().st_mode) == mode
