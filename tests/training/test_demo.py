"""`make train-demo` shows a user that training works: its model is well above chance on validation.

This trains the Makefile's own recipe (read with `make -n`, so the test cannot drift from what users
run) on the real FER2013 for about 2 minutes, so it is marked `demo` and run by `make test-demo`
(CI runs it), not by `make test`. FER_DATA names the dataset; else data/fer2013 (`fer download`) or
the project machines' ../shared/data/fer2013.zip; with none of them it is skipped, saying so.
"""

import json
import os
import shlex
import shutil
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.demo
CONSTANT_ANSWER = 0.249  # always "happy", the largest class: 895 of 3,589 validation faces
# The demo trains in about 2 minutes where the CPU computes in bf16 (AVX-512 BF16), but in fp32 on an
# AVX2-only CPU (144 training images/s measured there against 417) it needs about 2.5x that, and CI's
# AVX2-only machine ran past the suite's 300 s default on 2026-12-07. The limit is the trainer's worst
# case, not its usual time.
DEMO_TIMEOUT_S = 1200


def real_dataset() -> str | None:
    candidates = [os.environ.get("FER_DATA"), REPO / "data" / "fer2013", REPO.parent / "shared/data/fer2013.zip"]
    return next((str(path) for path in candidates if path and os.path.exists(path)), None)


def demo_training_command(data: str, out) -> list[str]:
    """The trainer line of `make train-demo DATA=data`, writing to `out` instead of runs/demo."""
    make = shutil.which("make")
    lines = subprocess.run(
        [make, "-n", "-o", ".venv/.installed", "train-demo", f"DATA={data}"],  # -o: not the install lines
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    (line,) = [line for line in lines if "-m training.train" in line]
    words = shlex.split(line)
    words[words.index("--out") + 1] = str(out)
    return words


@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)  # the subprocess limit below fires first
def test_the_demo_recipe_learns_well_above_a_constant_answer(tmp_path):
    data = real_dataset()
    if data is None:
        pytest.skip("no FER2013 here (set FER_DATA, or `fer download --dest data/`): the demo cannot be checked")
    command = demo_training_command(data, tmp_path / "demo")
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "demo" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["best_val_accuracy"] > 0.40 > CONSTANT_ANSWER
    assert rows[-1]["val_accuracy"] > rows[0]["val_accuracy"]  # it learned during the run, too
