"""bench/train_step.py: one row per setting asked for, each a real timed training step."""

import json

import pytest

from tests.conftest import run_python


def test_every_size_batch_and_memory_format_gets_its_own_measured_row(tmp_path):
    report = tmp_path / "steps.json"
    result = run_python(
        "bench/train_step.py", "--device", "cpu", "--archs", "vgg_slim", "resnet_slim", "--amp", "off",
        "--sizes", "40", "48", "--batch-sizes", "2", "4", "--memory-formats", "channels_last", "contiguous",
        "--warmup", "0", "--runs", "1", "--json", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(report.read_text())["rows"]
    settings = {(r["arch"], r["input_size"], r["batch_size"], r["memory_format"]) for r in rows}
    assert len(rows) == len(settings) == 2 * 2 * 2 * 2
    assert all(row["images_per_second"] > 0 for row in rows)
    printed = {tuple(line.split()[:5]) for line in result.stdout.splitlines()}
    assert ("vgg_slim", "off", "40", "4", "contiguous") in printed  # the table names each setting


@pytest.mark.parametrize("flag, value", [("--sizes", "8"), ("--batch-sizes", "0")])
def test_a_size_too_small_for_the_poolings_is_refused_with_a_reason(flag, value):
    result = run_python("bench/train_step.py", "--device", "cpu", "--archs", "vgg_slim", flag, value)
    assert result.returncode == 2
    assert "--sizes must be at least 16 pixels" in result.stderr and "Traceback" not in result.stderr
