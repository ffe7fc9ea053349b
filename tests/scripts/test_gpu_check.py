"""scripts/gpu_check.py's own logic: calls that stop before a stage that would not fit and resume at
it, FER2013 joined from the two carried parts and checked, and the flagship's figures. The stages
themselves run end to end in `make gpu-check DRY_RUN=1` (CI runs it)."""

import hashlib
import json
import sys

from tests.conftest import REPO, run_python

sys.path.insert(0, str(REPO / "scripts"))
import gpu_check  # noqa: E402  (a script, not a package)

STOPPED = 3


def check(*args):
    return run_python("scripts/gpu_check.py", *args, timeout=120)


def report(out) -> dict:
    return json.loads((out / "gpu-check.json").read_text())


def test_a_call_stops_before_a_stage_that_does_not_fit_and_the_next_call_resumes(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    first = check("--dry-run", "--work", str(work), "--out", str(out), "--call-budget", "100")
    assert first.returncode == STOPPED, first.stdout + first.stderr
    assert "stopping before tests" in first.stdout and "run make gpu-check again" in first.stdout
    environment = report(out)["stages"]["environment"]
    assert environment["status"] == "passed" and environment["torch"] and environment["cpus"] >= 1

    second = check("--dry-run", "--work", str(work), "--out", str(out), "--call-budget", "100")
    assert second.returncode == STOPPED
    assert "== environment: passed in an earlier call" in second.stdout
    assert "--probe" not in second.stdout  # not run again
    assert report(out)["stages"]["environment"] == environment
    assert all(goal["met"] is None for goal in report(out)["goals"].values())  # nothing measured yet


def seed_state(work, *, through: str) -> None:
    """A state file as if the stages before `through` had passed in earlier calls."""
    work.mkdir(parents=True)
    names = [stage.name for stage in gpu_check.STAGES]
    done = names[: names.index(through)]
    (work / "state.json").write_text(json.dumps({name: {"status": "passed", "seconds": 1.0} for name in done}))


def pack(packed, data: bytes, digest_of: bytes | None = None):
    """What gpu_prepare.sh packs: data1/ the first part and the sha256; returns where data2/ holds the rest."""
    (packed / "data1").mkdir(parents=True)
    (packed / "data2").mkdir()
    (packed / "data1" / "fer2013.zip.part-00").write_bytes(data[:1000])
    (packed / "data1" / "fer2013.zip.sha256").write_text(hashlib.sha256(digest_of or data).hexdigest() + "\n")
    return packed / "data2" / "fer2013.zip.part-01"


def test_fer2013_is_joined_from_the_two_carried_parts_and_checked(tmp_path):
    work, packed, out = tmp_path / "work", tmp_path / ".gpu", tmp_path / "out"
    seed_state(work, through="flagship")
    data = bytes(range(256)) * 10
    second_part = pack(packed, data)
    args = ["--work", str(work), "--packed", str(packed), "--out", str(out), "--call-budget", "80"]

    waiting = check(*args)  # the first call carried data1 only
    assert waiting.returncode == STOPPED
    assert "FER2013 is not all here yet (1 of 2 parts" in waiting.stdout and "carry .gpu/data2" in waiting.stdout

    second_part.write_bytes(data[1000:])  # the second call carries data2
    joined = check(*args)
    assert joined.returncode == STOPPED  # then stops before flagship: 80 s do not fit it
    assert "FER2013 joined from 2 parts" in joined.stdout and "stopping before flagship" in joined.stdout
    assert (work / "fer2013.zip").read_bytes() == data


def test_parts_that_do_not_match_the_packed_sha256_are_refused(tmp_path):
    work, packed, out = tmp_path / "work", tmp_path / ".gpu", tmp_path / "out"
    seed_state(work, through="flagship")
    data = bytes(range(256)) * 10
    pack(packed, data, digest_of=b"another zip").write_bytes(data[1000:])
    result = check("--work", str(work), "--packed", str(packed), "--out", str(out), "--call-budget", "80")
    assert result.returncode == STOPPED
    assert "do not match the packed sha256" in result.stdout
    assert not (work / "fer2013.zip").exists() and not (work / "fer2013.tmp").exists()


def test_flagship_figures_give_the_time_to_each_threshold(tmp_path):
    rows = [
        {"epoch": 1, "val_accuracy": 0.60, "elapsed_seconds": 10.0, "images_per_second": 900},
        {"epoch": 2, "val_accuracy": 0.66, "elapsed_seconds": 20.0, "images_per_second": 1000},
        {"epoch": 3, "val_accuracy": 0.71, "elapsed_seconds": 30.0, "images_per_second": 1100},
        {"epoch": 4, "val_accuracy": 0.70, "elapsed_seconds": 40.0, "images_per_second": 1000},
    ]
    text = "".join(json.dumps(row) + "\n" for row in rows) + '{"epoch": 5, "val_acc'  # a leg stopped mid-line
    (tmp_path / "metrics.jsonl").write_text(text)
    figures = gpu_check._run_figures(tmp_path)
    assert figures["seconds_to"] == {"0.65": 20.0, "0.7": 30.0, "0.73": None}
    assert (figures["epochs"], figures["best_epoch"], figures["best_val_accuracy"]) == (4, 3, 0.71)
    assert figures["images_per_second"] == 1000
