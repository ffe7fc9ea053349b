"""What the CPU at hand can do, for the choices that depend on it and the figures that name it.

    >>> cpu = cpu_info()
    >>> cpu.describe()
    'AMD EPYC (AVX2, AVX-512, VNNI, BF16)'

Three choices depend on the instruction set:
- **int8 inference.** ONNX Runtime's U8S8 kernels multiply uint8 activations by int8 weights. With
  VNNI (VPDPBUSD) the products are summed in int32. Without it (AVX2, or AVX-512 without VNNI) they
  use VPMADDUBSW, which adds two products into int16 with saturation: 255 x 127 x 2 = 64,770 does not
  fit, so an 8-bit-weight model can lose points there. 7-bit weights (at most 64 in magnitude: 255 x
  64 x 2 = 32,640) cannot saturate on any of them (training.quantize, fer.onnx_runtime).
- **Training precision.** bf16 autocast is fast only where the CPU has bf16 instructions (AVX-512
  BF16, AMX); elsewhere PyTorch emulates it, about 10x slower than fp32 (training.precision).
- **Every speed figure** names the CPU and these flags, so figures from different machines never read
  as comparable when they are not (bench/).

Linux tells through /proc/cpuinfo; elsewhere the flags are unknown (empty), which every choice treats
as the cautious case.
"""

import functools
import platform
from dataclasses import dataclass

CPUINFO = "/proc/cpuinfo"

# The flags that matter here, as Linux names them, and how figures name them, in that order.
ISA_NAMES = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "vnni": "VNNI",  # avx512_vnni or avx_vnni (see has_vnni)
    "bf16": "BF16",  # avx512_bf16, or the Arm bf16 feature
    "amx": "AMX",  # amx_tile with amx_int8 / amx_bf16
}


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]  # as /proc/cpuinfo spells them: "avx2", "avx512_vnni", ...

    @property
    def has_vnni(self) -> bool:
        """int8 dot products summed in int32 (VPDPBUSD): ONNX Runtime's U8S8 kernels cannot saturate."""
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "amx_int8"})

    @property
    def has_native_bf16(self) -> bool:
        """bf16 arithmetic in hardware (AVX-512 BF16, AMX BF16, Arm BF16): bf16 autocast pays here."""
        return bool(self.flags & {"avx512_bf16", "amx_bf16", "bf16"})

    def isa(self) -> list[str]:
        """The relevant instruction sets present, by ISA_NAMES: ["AVX2", "AVX-512", "VNNI", "BF16"]."""
        present = {
            "avx2": "avx2" in self.flags,
            "avx512f": "avx512f" in self.flags,
            "vnni": self.has_vnni,
            "bf16": self.has_native_bf16,
            "amx": "amx_tile" in self.flags,
        }
        return [ISA_NAMES[key] for key, here in present.items() if here]

    def describe(self) -> str:
        """'AMD EPYC (AVX2, AVX-512, VNNI, BF16)', or '... (AVX2 only)', for logs and benchmark headers."""
        isa = self.isa()
        if isa == ["AVX2"]:
            return f"{self.model} (AVX2 only)"
        return f"{self.model} ({', '.join(isa) if isa else 'flags unknown' if not self.flags else 'no AVX2'})"


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor's model name and flags in the text of /proc/cpuinfo (x86 "flags", Arm
    "Features"; Arm has no "model name", so its "CPU part" or the machine's name stands in)."""
    model, flags = "", ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value
    return CpuInfo(model=model or platform.processor() or platform.machine() or "CPU", flags=frozenset(flags.split()))


@functools.cache
def cpu_info() -> CpuInfo:
    """This machine's CPU, read once per process."""
    try:
        with open(CPUINFO) as info:
            return parse_cpuinfo(info.read())
    except OSError:
        return parse_cpuinfo("")
