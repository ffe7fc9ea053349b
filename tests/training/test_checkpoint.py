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


# ---------------------------------------------------------------- damaged bytes and non-finite weights


def _checkpoint_of(model: torch.nn.Module) -> dict:
    from fer.labels import EMOTIONS

    state = model.state_dict()
    return {"arch": "vgg_slim", "labels": list(EMOTIONS), "ema": {"module": state, "updates": 1}, "epoch": 1}


def test_damaged_bytes_inside_a_tensor_are_refused_on_every_load(tmp_path, kaggle_zip):
    from fer.models import build_model

    model = build_model("vgg_slim")
    save_checkpoint(_checkpoint_of(model), tmp_path / "best.pt")
    data = bytearray((tmp_path / "best.pt").read_bytes())
    # The largest layer: torch checks the zip's CRC of small records when it reads them, but not of
    # large ones (they are mapped, not copied), which is how damage there used to load as weights.
    largest = max(model.state_dict().values(), key=lambda tensor: tensor.numel()).numpy().tobytes()
    at = data.find(largest[len(largest) // 2 : len(largest) // 2 + 64])  # stored uncompressed in the zip
    assert at > 0
    data[at : at + 64] = bytes(64)  # a run of zeros where weights were: still a readable torch file
    (tmp_path / "best.pt").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="is damaged: its contents do not match the checksum"):
        load_checkpoint(tmp_path / "best.pt")
    result = run_python("-m", "fer_cli", "evaluate", str(kaggle_zip), "--weights", str(tmp_path / "best.pt"))
    assert result.returncode == 2 and "is damaged" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_checkpoints_written_before_checksums_still_load(tmp_path):
    torch.save({"epoch": 3, "model": {"w": torch.ones(2)}}, tmp_path / "old.pt")  # no checksum inside
    assert load_checkpoint(tmp_path / "old.pt")["epoch"] == 3


def test_the_checksum_covers_every_value_not_only_tensors(tmp_path):
    save_checkpoint({"epoch": 3, "config": {"lr": 0.1}}, tmp_path / "last.pt")
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    saved["config"]["lr"] = 0.2  # rewritten with torch itself, keeping the old checksum
    torch.save(saved, tmp_path / "last.pt")
    with pytest.raises(WeightsError, match="is damaged"):
        load_checkpoint(tmp_path / "last.pt")


def test_weights_that_are_not_finite_are_refused(tmp_path):
    from fer.models import build_model
    from fer.weights import load_model

    model = build_model("vgg_slim")
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))  # a diverged run's EMA, saved intact
    save_checkpoint(_checkpoint_of(model), tmp_path / "diverged.pt")
    with pytest.raises(WeightsError, match="are not finite .NaN or infinity in"):
        load_model(tmp_path / "diverged.pt")


def test_a_full_disk_is_one_line_that_says_so_and_the_old_checkpoint_stays(tmp_path, monkeypatch):
    import errno

    from fer.errors import FerError

    save_checkpoint({"epoch": 1}, tmp_path / "last.pt")

    def write_until_the_disk_is_full(state, handle):
        handle.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", write_until_the_disk_is_full)
    with pytest.raises(FerError, match=r"cannot write .*last\.pt: the disk is full \(\d+ MiB free in .*any earlier"):
        save_checkpoint({"epoch": 2}, tmp_path / "last.pt")
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # the half-written temporary file is gone
