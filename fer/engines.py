"""What turns a Predictor's pixels into logits: the one protocol its engines share, and the choice of
engine for a device and a backend (Predictor.load, `--backend`, FER_BACKEND).

The engines are fer.torch_engine.TorchEngine (PyTorch on any device) and fer.onnx_runtime.OnnxModel
(ONNX Runtime on the CPU), over the float32 .onnx that `fer export` writes beside the weights or over
the int8 variant that the model card names. On a CPU, backend "auto" takes the fastest of them whose
answers are the weights' own: the int8 variant when its accuracy holds on this CPU, else the float32
.onnx when it agrees with the weights, else PyTorch (docs/benchmarks.md has the speeds).
"""

import os
from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np

from fer.card import ModelCard
from fer.errors import FerError, WeightsError
from fer.onnx_runtime import load_default_int8_model, load_int8_model, load_onnx_model
from fer.options import BACKENDS
from fer.weights import is_checkpoint, load_model, read_card


class Engine(Protocol):
    """(B, 1, 48, 48) float32 NumPy pixels -> (B, 7) float32 NumPy logits, as fer.tta calls it."""

    name: str  # Predictor.backend: "torch", "onnxruntime" or "onnxruntime-int8"
    precision: str  # of its arithmetic: "float32", "float16" (PyTorch on a GPU) or "int8"
    device: str  # as torch names it: "cpu", "cuda:0", "mps"

    def __call__(self, pixels: np.ndarray) -> np.ndarray: ...


class ChosenEngine(NamedTuple):
    engine: Engine
    card: ModelCard  # of the weights it runs
    reason: str  # why this engine runs, for logs, `fer models` and /v1/model


def choose_engine(weights: str | os.PathLike, device: str, backend: str = "auto") -> ChosenEngine:
    """The engine for `weights` (a .safetensors with its card, or a training checkpoint) on `device`
    (fer.device.inference_device's answer). `backend` (fer.options.BACKENDS): "auto" as the module
    says; "torch" always PyTorch; "onnx" requires the float32 .onnx and "int8" the int8 variant, both
    on the CPU only. The int8 variant runs without torch: neither the weights' tensors nor torch itself
    are loaded for it."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if device == "cpu":
        return _CPU_CHOICES[backend](weights)
    if backend in ("onnx", "int8"):
        raise FerError(f"backend {backend} runs on the CPU only; this device is {device.split(':')[0]}")
    return _pytorch(weights, device, f"PyTorch runs the model on {device.split(':')[0]}")


def _pytorch(weights: str | os.PathLike, device: str, reason: str, loaded: "tuple | None" = None) -> ChosenEngine:
    from fer.torch_engine import TorchEngine  # the one import of torch, and only for this engine

    model, card = loaded or load_model(weights)
    return ChosenEngine(TorchEngine(model, device), card, reason)


def _fastest_that_holds(weights: str | os.PathLike) -> ChosenEngine:
    if is_checkpoint(weights):
        return _pytorch(weights, "cpu", "PyTorch float32, as a training checkpoint has no .onnx or int8 variant")
    card = read_card(weights)
    int8, reason = load_default_int8_model(weights, card)
    if int8 is not None:
        return ChosenEngine(int8, card, reason)
    model, card = load_model(weights, card)  # the card read above is not read and hashed again
    onnx = load_onnx_model(weights, model, required=False)
    if onnx is not None:
        return ChosenEngine(onnx, card, f"float32 ONNX Runtime, as {reason}")
    return _pytorch(weights, "cpu", f"PyTorch float32 (no .onnx agrees with the weights), as {reason}", (model, card))


def _float_onnx(weights: str | os.PathLike) -> ChosenEngine:
    model, card = load_model(weights)  # the .onnx is checked against the weights' own outputs
    return ChosenEngine(load_onnx_model(weights, model, required=True), card, "asked for (backend onnx)")


def _int8(weights: str | os.PathLike) -> ChosenEngine:
    if is_checkpoint(weights):
        raise WeightsError(
            f"{weights} is a training checkpoint, which has no int8 variant (fer export --data writes one)"
        )
    card = read_card(weights)
    return ChosenEngine(load_int8_model(weights, card), card, "asked for (backend int8)")


_CPU_CHOICES: dict[str, Callable[[str | os.PathLike], ChosenEngine]] = {
    "auto": _fastest_that_holds,
    "torch": lambda weights: _pytorch(weights, "cpu", "asked for (backend torch)"),
    "onnx": _float_onnx,
    "int8": _int8,
}
