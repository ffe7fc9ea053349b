"""Export a training checkpoint's EMA weights for inference: NAME.safetensors, NAME.json, NAME.onnx,
and with --data also NAME.int8.onnx.

    fer export runs/train/best.pt --out weights/fer-v3 --data ../shared/data/fer2013.zip
    fer export weights/fer-v3.safetensors --out weights/fer-v3 --data ../shared/data/fer2013.zip

The source is a training checkpoint, or weights exported before: the second form exports them again
with this version's settings (the int8 variant's, above all), keeping their training record.

With --data, the card records validation accuracy for every TTA mode and picks the best as the
model's default; it also holds the int8 variant (training.quantize), calibrated on Training faces,
with its own validation accuracy and sha256. The ONNX graph takes (batch, 1, 48, 48) float pixels
in 0..255 and returns logits; its outputs are checked against PyTorch's before the export counts.
"""

import datetime
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fer.card import Agreement, Int8Variant, MeasuredOn, Metrics, ModelCard, TtaMetrics
from fer.cpu import cpu_info
from fer.errors import WeightsError
from fer.models import describe_model, input_spec
from fer.onnx_runtime import INT8_SUFFIX, OnnxModel
from fer.options import TTA_MODES
from fer.preprocess import INPUT_SIZE
from fer.weights import file_sha256, is_checkpoint, load_checkpoint, load_model, model_from_checkpoint, save_weights
from training.checkpoint import why_not_writable

ONNX_TOLERANCE = 1e-3  # logits; float32 kernels differ slightly between runtimes


def export_checkpoint(
    checkpoint_path: str | os.PathLike,
    prefix: str | os.PathLike,
    data: str | None = None,
    onnx: bool = True,
    report: Callable[[str], None] = lambda step: None,
    default_tta: str = "best",
) -> ModelCard:
    """Write the weights, card and (optionally) ONNX file; return the card as written. `report` hears each step as
    it finishes (with --data an export takes minutes on a CPU: six validation passes and a calibration).
    `default_tta`: the card's default TTA, "best" (the mode that scored best on validation, given `data`;
    else none) or a mode of TTA_MODES."""
    if default_tta != "best" and default_tta not in TTA_MODES:
        raise ValueError(f"unknown default TTA {default_tta!r}; choose best or one of {', '.join(TTA_MODES)}")
    checkpoint_path, prefix = Path(checkpoint_path), Path(prefix)
    _check_writable(prefix.parent)  # before minutes of measuring, not after
    if is_checkpoint(checkpoint_path):
        checkpoint = load_checkpoint(checkpoint_path)
        model, source = model_from_checkpoint(checkpoint, checkpoint_path)  # EMA weights, arch and labels checked
    else:
        model, source = load_model(checkpoint_path)  # weights exported before, checked against their card
    config = (source.training or {}).get("config") or {}
    summary = describe_model(source.arch)
    card = ModelCard(
        name=prefix.name,
        arch=source.arch,
        labels=source.labels,
        input=input_spec(source.arch),
        output="logits over labels (softmax gives probabilities)",
        parameters=summary.parameters,
        flops_per_face=summary.flops_per_face,
        epoch=source.epoch,
        metrics=Metrics(validation={"none": TtaMetrics(accuracy=source.validation_accuracy("none"))}),
        default_tta="none",
        dataset={
            "name": "FER2013",
            "source": Path(config.get("data", "")).name,
            "trained_on": "Training split"
            + (f" (stratified subset of {config['max_samples']})" if config.get("max_samples") else ""),
            "selected_on": "PublicTest split (validation)",
        },
        training={"config": config},
        git_commit=_git_commit(),
        exported=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    if data is not None:
        card.metrics = _measured_metrics(model, card, data, report, "float32")
        card.default_tta = max(TTA_MODES, key=lambda tta: card.metrics.validation[tta].accuracy)
    if default_tta != "best":
        card.default_tta = default_tta
    onnx_path = prefix.with_name(prefix.name + ".onnx")
    if onnx:
        prefix.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        export_onnx(model, onnx_path)
        report(f"ONNX written and checked against PyTorch: {onnx_path} ({time.perf_counter() - started:.0f} s)")
    if onnx and data is not None:
        int8_path = prefix.with_name(prefix.name + INT8_SUFFIX)
        card.int8 = _export_int8(model, card, onnx_path, int8_path, data, report)
    # The card is written last, so that it only ever describes files that were all written.
    _, card_path = save_weights(model.state_dict(), card, prefix)
    return ModelCard.read(card_path)


def _measured_metrics(
    model: nn.Module,
    card: ModelCard,
    data: str,
    report: Callable[[str], None],
    engine: str,
    onnx_model: OnnxModel | None = None,
) -> Metrics:
    """Validation figures for every TTA mode, on the clean faces and on their capture proxy
    (training.capture.proxy_crops, with per-class recall), measured on this CPU."""
    from fer.datasets import VALIDATION, load_splits, select_split
    from fer.metrics import compute_metrics
    from fer.predictor import Predictor
    from fer.torch_engine import TorchEngine
    from training.capture import proxy_crops

    split = select_split(load_splits(data), VALIDATION, data)
    proxy = proxy_crops(split.images)["proxy"]
    metrics = Metrics(measured_on=measured_here())
    runner = onnx_model or TorchEngine(model, "cpu")

    def scored(classify: Callable[[Any], np.ndarray], faces: Any, what: str) -> tuple[TtaMetrics, dict]:
        started = time.perf_counter()
        result = compute_metrics(split.labels, classify(faces).argmax(1))
        report(f"{what}: {result['accuracy']:.2%} ({time.perf_counter() - started:.0f} s)")
        return TtaMetrics(accuracy=result["accuracy"], macro_f1=result["macro_f1"], n=result["n"]), result

    for tta in TTA_MODES:
        predictor = Predictor(runner, card, tta)
        what = f"{engine}, tta {tta}"
        metrics.validation[tta], _ = scored(predictor.predict_pixels, split.images, f"validation accuracy, {what}")
        on_proxy, result = scored(predictor.predict_faces, proxy, f"capture proxy accuracy, {what}")
        on_proxy.recall = {label: row["recall"] for label, row in result["per_class"].items()}  # its goal is per class
        metrics.capture_proxy[tta] = on_proxy
    return metrics


def _export_int8(
    model: nn.Module, card: ModelCard, onnx_path: Path, int8_path: Path, data: str, report: Callable[[str], None]
) -> Int8Variant:
    """Write the int8 variant and return its card entry, with its own validation accuracy, the CPU that
    measured it, and how closely it follows the float32 model."""
    from training.quantize import DESCRIPTION, calibration_faces, quantize_onnx, weight_bits

    started = time.perf_counter()
    quantize_onnx(onnx_path, int8_path, calibration_faces(data))
    report(f"int8 variant calibrated and written: {int8_path} ({time.perf_counter() - started:.0f} s)")
    int8_model = OnnxModel(int8_path, quantized=True)
    metrics = _measured_metrics(model, card, data, report, "int8", onnx_model=int8_model)
    agreement = _agreement(OnnxModel(onnx_path), int8_model, data)
    report(
        f"int8 gives float32's emotion for {agreement.top1:.2%} of validation faces (tta none); largest "
        f"probability difference {agreement.largest_probability_difference:.3f}"
    )
    return Int8Variant(
        file=int8_path.name,
        sha256=file_sha256(int8_path),
        method=DESCRIPTION,
        weight_bits=weight_bits(int8_path),
        agreement=agreement,
        metrics=metrics,
    )


def _agreement(float_model: OnnxModel, int8_model: OnnxModel, data: str) -> Agreement:
    """How often the int8 variant names the float32 model's emotion on validation faces, without TTA."""
    from fer.datasets import VALIDATION, load_splits, select_split
    from fer.tta import softmax

    faces = select_split(load_splits(data), VALIDATION, data).images[:, None].astype(np.float32)

    def probabilities(run: OnnxModel) -> np.ndarray:  # (N, 7)
        return np.concatenate([softmax(run(faces[start : start + 256])) for start in range(0, len(faces), 256)])

    exact, fast = probabilities(float_model), probabilities(int8_model)
    return Agreement(
        top1=float((exact.argmax(1) == fast.argmax(1)).mean()),
        largest_probability_difference=float(np.abs(exact - fast).max()),
    )


def measured_here() -> MeasuredOn:
    """This CPU, as a card records the machine that measured its figures."""
    cpu = cpu_info()
    return MeasuredOn(cpu=cpu.model, isa=cpu.isa())


def export_onnx(model: torch.nn.Module, path: Path) -> None:
    """ONNX with a dynamic batch axis, verified against PyTorch with onnxruntime."""
    import onnxruntime

    model = model.float().cpu().eval()
    example = torch.rand(2, 1, INPUT_SIZE, INPUT_SIZE) * 255
    batch = torch.export.Dim("batch", min=1, max=65_536)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_shapes=({0: batch},),
        dynamo=True,
        external_data=False,  # one self-contained file; our models are far below protobuf's 2 GB limit
        verbose=False,
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check = torch.rand(5, 1, INPUT_SIZE, INPUT_SIZE) * 255  # another batch size than the example
    with torch.no_grad():
        expected = model(check).numpy()
    actual = session.run(["logits"], {"pixels": check.numpy()})[0]
    if not np.allclose(actual, expected, atol=ONNX_TOLERANCE):
        raise WeightsError(f"the ONNX export {path} differs from PyTorch by {np.abs(actual - expected).max():.2e}")


def _check_writable(folder: Path) -> None:
    if (why := why_not_writable(folder)) is not None:
        raise WeightsError(f"cannot write the export to {folder}: {why}")


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
