"""--amp auto, the trainer's default: bf16 only where the hardware computes in it, fp32 on a CPU that
would emulate bf16 (10-15x slower there), chosen again at every resume and said on the first line."""

import json
import logging

import pytest
import torch

from fer.cpu import CpuInfo
from training.config import TrainConfig, parse_config
from training.precision import autocast_context, choose_amp

AVX2_ONLY = CpuInfo("AMD EPYC 7B12", frozenset({"avx2", "fma"}))
NATIVE_BF16 = CpuInfo("AMD EPYC 9B14", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}))
AMX = CpuInfo("Intel(R) Xeon(R) Platinum 8480+", frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"}))
CPU = torch.device("cpu")


def on(monkeypatch, cpu: CpuInfo) -> None:
    monkeypatch.setattr("training.precision.cpu_info", lambda: cpu)


@pytest.mark.parametrize("cpu, mode", [(AVX2_ONLY, "off"), (NATIVE_BF16, "bf16"), (AMX, "bf16")])
def test_auto_trains_in_bf16_only_where_the_cpu_computes_in_it(monkeypatch, cpu, mode):
    on(monkeypatch, cpu)
    choice = choose_amp("auto", CPU)
    assert choice.mode == mode and choice.reason.startswith("auto:") and cpu.describe() in choice.reason


@pytest.mark.parametrize("asked", ["bf16", "fp16", "off"])
def test_a_precision_asked_for_is_kept_on_any_cpu(monkeypatch, asked):
    on(monkeypatch, AVX2_ONLY)
    assert choose_amp(asked, CPU).mode == asked


@pytest.mark.parametrize("cpu, dtype", [(AVX2_ONLY, torch.float32), (NATIVE_BF16, torch.bfloat16)])
def test_the_autocast_context_computes_in_the_chosen_precision(monkeypatch, cpu, dtype):
    on(monkeypatch, cpu)
    layer = torch.nn.Linear(4, 4)
    with autocast_context("auto", CPU):
        assert layer(torch.ones(2, 4)).dtype == dtype


def test_auto_is_the_default_and_what_config_json_keeps(tmp_path):
    assert TrainConfig().amp == "auto"
    assert parse_config(["--data", "x.zip"]).amp == "auto"


def _train_tiny(data, out, monkeypatch, cpu, caplog, *flags):
    from training.train import train

    on(monkeypatch, cpu)
    monkeypatch.setattr("training.train.cpu_info", lambda: cpu)
    args = ["--data", str(data), "--out", str(out), "--arch", "vgg_slim", "--device", "cpu", "--batch-size", "16",
            "--max-samples", "64", *flags]  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="training"):
        train(parse_config(args))
    return caplog.text


def test_the_trainer_says_its_choice_and_chooses_again_on_resume(kaggle_zip, tmp_path, monkeypatch, caplog):
    out = tmp_path / "run"
    first = _train_tiny(kaggle_zip, out, monkeypatch, NATIVE_BF16, caplog, "--epochs", "1")
    assert "amp bf16 (auto: this CPU computes in bf16 (AMD EPYC 9B14 (AVX2, AVX-512, VNNI, BF16)))" in first
    assert json.loads((out / "config.json").read_text())["amp"] == "auto"  # not the machine's answer
    # The next leg runs on an AVX2-only machine: fp32 there, with no complaint about a changed setting.
    second = _train_tiny(kaggle_zip, out, monkeypatch, AVX2_ONLY, caplog, "--resume", "--epochs", "2")
    assert "amp off (auto: this CPU has no bf16 instructions (AMD EPYC 7B12 (AVX2 only))" in second
    assert "ignoring changed" not in second
    assert [json.loads(row)["epoch"] for row in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_a_resumed_run_keeps_its_precision_unless_a_new_one_is_given(kaggle_zip, tmp_path, monkeypatch, caplog):
    out = tmp_path / "run"
    _train_tiny(kaggle_zip, out, monkeypatch, NATIVE_BF16, caplog, "--epochs", "1", "--amp", "off")
    kept = _train_tiny(kaggle_zip, out, monkeypatch, NATIVE_BF16, caplog, "--resume", "--epochs", "2")
    assert "amp off (as asked)" in kept
    changed = _train_tiny(kaggle_zip, out, monkeypatch, NATIVE_BF16, caplog, "--resume", "--epochs", "3",
                          "--amp", "auto")  # fmt: skip
    assert "amp bf16 (auto:" in changed and "ignoring changed" not in changed


def test_bf16_asked_for_on_a_cpu_without_it_is_warned_about(kaggle_zip, tmp_path, monkeypatch, caplog):
    text = _train_tiny(kaggle_zip, tmp_path / "run", monkeypatch, AVX2_ONLY, caplog, "--epochs", "1", "--amp", "bf16")
    assert "--amp bf16 on this CPU is emulated" in text and "AMD EPYC 7B12 (AVX2 only)" in text
