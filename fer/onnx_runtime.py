"""ONNX Runtime as the predictor's CPU engine: on a 2-core CPU it runs the exported models 1.6x to 3x
faster than PyTorch eager (docs/benchmarks.md). The .onnx file that `fer export` writes next to the
weights is used only after it gives the same logits as the weights themselves, so a stale or
foreign .onnx can never change a prediction.

The int8 variant (NAME.int8.onnx, see training.quantize) cannot match the float logits to 1e-3 by
design. It is used only when its sha256 is the one the model card recorded beside its measured
validation accuracy, and by default only when that accuracy holds on this CPU: no TTA mode more
than INT8_MAX_ACCURACY_DROP below the float model's, and weights that cannot saturate here (7-bit
weights anywhere; 8-bit ones, as in exports before 2026-12-03, only on a CPU with VNNI: fer.cpu).
"""

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer.card import ModelCard
from fer.cpu import CpuInfo, cpu_info
from fer.device import cpu_threads
from fer.preprocess import INPUT_SIZE

if TYPE_CHECKING:
    import onnxruntime
    import torch

logger = logging.getLogger(__name__)
AGREEMENT_TOLERANCE = 1e-3  # max |logit difference| between the .onnx and the weights
INT8_SUFFIX = ".int8.onnx"
INT8_ENGINE = "onnxruntime-int8"  # the name of the engine (Predictor.backend) that runs the int8 variant
INT8_MAX_ACCURACY_DROP = 0.005  # validation accuracy the int8 variant may lose and still be the default


def cpu_session(path: str | os.PathLike, threads: int | None = None) -> "onnxruntime.InferenceSession":
    """An ONNX Runtime session on the CPU, as fer runs every model (the classifier, the detectors)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or cpu_threads()
    options.log_severity_level = 3  # errors only
    # Idle worker threads sleep instead of spinning: in a server or the webcam demo the model shares
    # the cores with decoding, detection and the event loop, which spinning threads would starve.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """A fer.engines.Engine: (B, 1, 48, 48) float32 NumPy pixels -> (B, 7) float32 logits, on the CPU.
    Nothing here imports torch, except the check against a torch model. `quantized`: the file is the
    int8 variant (training.quantize), which names the engine and its precision."""

    device = "cpu"

    def __init__(self, path: str | os.PathLike, threads: int | None = None, quantized: bool = False):
        self.path = Path(path)
        self.session = cpu_session(path, threads)
        self.name = INT8_ENGINE if quantized else "onnxruntime"
        self.precision = "int8" if quantized else "float32"

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        array = np.ascontiguousarray(pixels, dtype=np.float32)
        return self.session.run(["logits"], {"pixels": array})[0]

    def agrees_with(self, model: "torch.nn.Module") -> bool:
        import torch

        probe = np.random.default_rng(0).random((4, 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32) * 255
        with torch.inference_mode():
            expected = model(torch.from_numpy(probe)).float().numpy()  # a float32 model on the CPU, as loaded
        try:
            actual = self(probe)
        except Exception:  # a file for another input or output shape
            return False
        return actual.shape == expected.shape and float(np.abs(actual - expected).max()) <= AGREEMENT_TOLERANCE


def onnx_path_for(weights: str | os.PathLike) -> Path | None:
    """The .onnx that `fer export` writes beside these weights (None for a training checkpoint)."""
    path = Path(weights)
    if path.suffix in (".pt", ".pth"):
        return None
    if path.suffix in (".safetensors", ".json"):
        return path.with_suffix(".onnx")
    return Path(f"{path}.onnx")


def load_onnx_model(weights: str | os.PathLike, model: "torch.nn.Module", required: bool) -> OnnxModel | None:
    """The checked ONNX Runtime model for `weights`, or None (then PyTorch runs the model). With
    `required`, a missing or disagreeing file is an error instead."""
    from fer.errors import WeightsError

    path = onnx_path_for(weights)
    if path is None or not path.is_file():
        if required:
            raise WeightsError(f"no ONNX file beside {weights} (fer export writes one)")
        return None
    try:
        onnx_model = OnnxModel(path)
    except Exception as error:  # onnxruntime raises its own types for a damaged file
        if required:
            raise WeightsError(f"ONNX Runtime cannot load {path} ({error})") from None
        logger.warning("ignoring %s: ONNX Runtime cannot load it", path)
        return None
    if not onnx_model.agrees_with(model):
        if required:
            raise WeightsError(f"{path} does not give the same outputs as {weights}: export it again")
        logger.warning("ignoring %s: its outputs differ from the weights'; export it again", path)
        return None
    return onnx_model


def load_int8_model(weights: str | os.PathLike, card: ModelCard) -> OnnxModel:
    """The int8 model that the card of `weights` describes, after checking its sha256."""
    from fer.errors import WeightsError
    from fer.weights import file_sha256

    entry = card.int8
    if entry is None or not entry.file or not entry.sha256:
        raise WeightsError(f"{weights} has no int8 variant in its model card (fer export --data writes one)")
    path = Path(weights).parent / Path(entry.file).name  # a bare name: the card cannot point elsewhere
    if not path.is_file():
        raise WeightsError(f"no int8 model at {path} (its model card names it)")
    if file_sha256(path) != entry.sha256:
        raise WeightsError(f"{path} does not match the sha256 in the model card: export it again")
    try:
        return OnnxModel(path, quantized=True)
    except Exception as error:  # onnxruntime raises its own types for a damaged file
        raise WeightsError(f"ONNX Runtime cannot load {path} ({error})") from None


def int8_accuracy_holds(card: ModelCard) -> bool:
    """Whether the card shows the int8 variant within INT8_MAX_ACCURACY_DROP of the float model for
    every TTA mode measured for both (False when either was not measured)."""
    if card.int8 is None:
        return False
    float_metrics, int8_metrics = card.metrics.validation, card.int8.metrics.validation
    modes = [mode for mode in float_metrics if mode in int8_metrics]
    try:
        drops = [float_metrics[mode].accuracy - int8_metrics[mode].accuracy for mode in modes]
    except TypeError:  # an accuracy that is null: not measured, so nothing is shown
        return False
    # The largest drop decides: int8 must hold in every mode. The 1e-9 keeps a drop of exactly 0.5 points
    # (0.700 - 0.695, which floats make 0.0050000000000000044) on the side the rule says it is on.
    return bool(drops) and max(drops) <= INT8_MAX_ACCURACY_DROP + 1e-9


def int8_refusal(card: ModelCard, cpu: CpuInfo) -> str | None:
    """Why backend "auto" does not run the card's int8 variant on `cpu`; None when it does."""
    if card.int8 is None or not card.int8.file or not card.int8.sha256:
        return "the model card names no int8 variant"
    if not int8_accuracy_holds(card):
        return f"the card shows the int8 variant more than {INT8_MAX_ACCURACY_DROP:.1%} below float32 on validation"
    if (card.int8.weight_bits or 8) > 7 and not cpu.has_vnni:
        # The card's figures came from a CPU whose kernels sum in int32; here pairs saturate in int16.
        return (
            f"the int8 variant has 8-bit weights, which saturate without VNNI ({cpu.describe()}); "
            "fer export writes 7-bit ones that hold on every CPU"
        )
    return None


def load_default_int8_model(
    weights: str | os.PathLike, card: ModelCard, cpu: CpuInfo | None = None
) -> tuple[OnnxModel | None, str]:
    """The int8 model for backend "auto" on `cpu` (default: this one), with the reason for the choice:
    None when there is none, its accuracy does not hold, or its weights would saturate here; a damaged
    or changed file is logged and skipped, like a disagreeing float .onnx."""
    from fer.errors import WeightsError

    cpu = cpu or cpu_info()
    refusal = int8_refusal(card, cpu)
    if refusal is not None:
        return None, refusal
    try:
        model = load_int8_model(weights, card)
    except WeightsError as error:
        logger.warning("ignoring the int8 variant: %s", error)
        return None, f"the int8 variant was skipped: {error}"
    bits = card.int8.weight_bits or 8
    why = "7-bit weights cannot saturate on any CPU" if bits == 7 else "8-bit weights cannot saturate with VNNI"
    return model, f"int8 is within {INT8_MAX_ACCURACY_DROP:.1%} of float32 on validation and its {why}"
