"""Device choice shared by the predictor, evaluation and training.

torch is imported only where it must be: a CPU-only machine serving the ONNX Runtime engines never
loads it (fer.torch_engine says what that saves).
"""

import ctypes
import importlib.util
import os
import sys
from typing import TYPE_CHECKING

from fer.errors import FerError
from fer.options import DEVICE_CHOICES

if TYPE_CHECKING:
    import torch


def resolve_device(requested: str = "auto", local_rank: int = 0) -> "torch.device":
    """'auto' picks CUDA (this process's GPU), then Apple MPS, then CPU; asking for a missing one fails."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise FerError("device cuda was asked for, but no CUDA GPU is available (use auto or cpu)")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if requested == "mps":
        if not torch.backends.mps.is_available():
            raise FerError("device mps was asked for, but Apple MPS is not available (use auto or cpu)")
        return torch.device("mps")
    if requested == "cpu":
        return torch.device("cpu")
    raise FerError(f"unknown device {requested!r}; expected one of {', '.join(DEVICE_CHOICES)}")


def gpu_may_be_present() -> bool:
    """False only where no GPU torch could use can be here: not a Mac, no NVIDIA driver library to
    load, no ROCm or WSL GPU device node. Cheap, and free of torch; torch decides the rest."""
    if sys.platform == "darwin" or os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg"):
        return True
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def inference_device(requested: str = "auto") -> str:
    """The device a predictor runs on, as torch names it ("cpu", "cuda:0", "mps"): resolve_device's
    answer, without importing torch when the answer can only be the CPU. Where torch is not installed
    (`pip install fer-emotion` without its `gpu` extra), "auto" is the CPU, and a GPU asked for is a
    clear error."""
    if requested == "cpu" or (requested == "auto" and not gpu_may_be_present()):
        return "cpu"
    if importlib.util.find_spec("torch") is None:
        if requested == "auto":
            return "cpu"
        raise FerError(f"device {requested} needs PyTorch, which is not installed: pip install 'fer-emotion[gpu]'")
    return str(resolve_device(requested))


def cpu_threads() -> int:
    """Threads for CPU inference: torch's setting when torch is loaded (bench/infer.py --threads sets
    it), else OMP_NUM_THREADS, else the physical cores this process may run on, as torch would choose."""
    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    configured = os.environ.get("OMP_NUM_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return physical_cores()


def physical_cores() -> int:
    """Distinct (package, core) pairs among the CPUs this process may use; the CPU count where
    /proc/cpuinfo does not say."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores, processor, package = set(), None, "0"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    processor, package = int(value), "0"
                elif key == "physical id":
                    package = value
                elif key == "core id" and processor in allowed:
                    cores.add((package, value))
    except (OSError, ValueError):
        pass
    return len(cores) or len(allowed)


def describe_device(device: "str | torch.device") -> str:
    """What runs the model, for benchmarks and logs: the GPU's name, or the CPU model, its relevant
    instruction sets and the threads."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    if kind == "mps":
        return "Apple MPS"
    from fer.cpu import cpu_info

    # The instruction sets too: int8 and bf16 speeds differ by several times between them (fer.cpu).
    return f"{cpu_info().describe()}, {cpu_threads()} threads"
