"""fer.cpu: the instruction sets read from /proc/cpuinfo, which choose the training precision and
the int8 engine and name every speed figure."""

import pytest

from fer.cpu import CpuInfo, parse_cpuinfo

# Trimmed from real /proc/cpuinfo texts: two processors each, as Linux lists them.
ZEN2_AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 sha_ni
processor\t: 1
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 sha_ni
"""
ZEN4 = """processor\t: 0
model name\t: AMD EPYC 9B14
flags\t\t: avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni avx512_vbmi2
"""
SKYLAKE_AVX512_NO_VNNI = """processor\t: 0
model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags\t\t: avx2 avx512f avx512dq avx512cd avx512bw avx512vl
"""
SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: avx2 avx512f avx512bw avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm sve bf16 i8mm
CPU part\t: 0xd40
"""


@pytest.mark.parametrize(
    "text, model, isa, vnni, bf16, described",
    [
        (ZEN2_AVX2_ONLY, "AMD EPYC 7B12", ["AVX2"], False, False, "AMD EPYC 7B12 (AVX2 only)"),
        (ZEN4, "AMD EPYC 9B14", ["AVX2", "AVX-512", "VNNI", "BF16"], True, True,
         "AMD EPYC 9B14 (AVX2, AVX-512, VNNI, BF16)"),
        (SKYLAKE_AVX512_NO_VNNI, "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", ["AVX2", "AVX-512"], False, False,
         "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz (AVX2, AVX-512)"),
        (SAPPHIRE_RAPIDS, "Intel(R) Xeon(R) Platinum 8480+", ["AVX2", "AVX-512", "VNNI", "BF16", "AMX"], True, True,
         "Intel(R) Xeon(R) Platinum 8480+ (AVX2, AVX-512, VNNI, BF16, AMX)"),
    ],
)  # fmt: skip
def test_the_instruction_sets_that_decide_precision_and_engine(text, model, isa, vnni, bf16, described):
    cpu = parse_cpuinfo(text)
    assert (cpu.model, cpu.isa(), cpu.has_vnni, cpu.has_native_bf16) == (model, isa, vnni, bf16)
    assert cpu.describe() == described


def test_arm_features_count_as_flags():
    cpu = parse_cpuinfo(GRAVITON3)
    assert cpu.has_native_bf16 and not cpu.has_vnni and cpu.isa() == ["BF16"]
    assert cpu.model  # no "model name" on Arm: the machine's name stands in


def test_an_unreadable_cpuinfo_means_flags_unknown_which_is_the_cautious_case():
    cpu = parse_cpuinfo("")
    assert cpu.flags == frozenset() and not cpu.has_vnni and not cpu.has_native_bf16
    assert cpu.describe().endswith("(flags unknown)")


def test_a_cpu_without_avx2_says_so():
    assert CpuInfo("Old Atom", frozenset({"sse2", "ssse3"})).describe() == "Old Atom (no AVX2)"
