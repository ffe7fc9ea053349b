"""Device choice shared by the predictor, evaluation and training."""

import platform

import torch

from fer.errors import FerError
from fer.options import DEVICE_CHOICES


def resolve_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' picks CUDA (this process's GPU), then Apple MPS, then CPU; asking for a missing one fails."""
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


def describe_device(device: torch.device) -> str:
    """What runs the model, for benchmarks and logs: the GPU's name, or the CPU model and threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    cpu = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads"
