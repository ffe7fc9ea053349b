"""The training precision for the device at hand: `--amp auto`, the default.

    >>> choose_amp("auto", torch.device("cpu"))
    AmpChoice(mode='off', reason='this CPU has no bf16 instructions (AMD EPYC (AVX2 only)): bf16 would be emulated')

bf16 autocast pays only where the hardware computes in bf16. On a CPU without it PyTorch emulates
bf16, and training ran 10 to 13x slower than fp32 on an AVX2-only EPYC (5 img/s against 62 at batch
64, one thread; docs/benchmarks.md), so there auto trains in fp32. GPUs train in bf16 where they
support it (Ampere and newer), else in fp16 with a GradScaler. The choice is made again at every
start, also on --resume: a run trained in legs on different machines uses each machine's best.
"""

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from fer.cpu import cpu_info


@dataclass(frozen=True)
class AmpChoice:
    mode: str  # "bf16", "fp16" or "off"
    reason: str  # said on the trainer's first line


def choose_amp(requested: str, device: torch.device) -> AmpChoice:
    """`requested` as given ("bf16", "fp16", "off"), or for "auto" the fastest precision on `device`."""
    if requested != "auto":
        return AmpChoice(requested, "as asked")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return AmpChoice("bf16", "auto: this GPU computes in bf16")
        return AmpChoice("fp16", "auto: this GPU has no bf16, so fp16 with a GradScaler")
    if device.type == "mps":
        return AmpChoice("bf16", "auto: Apple GPUs compute in bf16")
    cpu = cpu_info()
    if cpu.has_native_bf16:
        return AmpChoice("bf16", f"auto: this CPU computes in bf16 ({cpu.describe()})")
    return AmpChoice("off", f"auto: this CPU has no bf16 instructions ({cpu.describe()}): bf16 would be emulated")


def autocast_context(amp: str, device: torch.device) -> AbstractContextManager:
    """The --amp mode as a context: bf16 or fp16 autocast on `device`, or nothing for "off" (auto is
    resolved first, by choose_amp)."""
    mode = choose_amp(amp, device).mode
    if mode == "off":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if mode == "bf16" else torch.float16)
