"""Weights files: `NAME.safetensors` (tensors only) beside `NAME.json` (the model card).

    >>> model, card = load_model("weights/fer-v3.safetensors")
    >>> model, card = load_model("runs/train/best.pt")        # a training checkpoint: its EMA weights

Nothing is ever unpickled: safetensors holds raw tensors, and checkpoints are read with
`torch.load(weights_only=True)`. The card names the architecture and the labels; loading checks both,
and checks the weights' sha256 against the card.

torch is imported inside the functions that build or read tensors: `read_card` checks a model's files
without it, for the engines that never load the tensors (the int8 variant on ONNX Runtime).
"""

import hashlib
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fer.card import Metrics, ModelCard, TtaMetrics
from fer.errors import WeightsError
from fer.labels import check_labels

if TYPE_CHECKING:
    import torch
    from torch import nn

CARD_FORMAT = 1
DEFAULT_WEIGHTS_NAME = "fer-v3"
# The repository's weights/ folder (a source checkout or an editable install), and where a wheel puts
# the same files (pyproject.toml maps package fer.shipped_weights to weights/). FER_WEIGHTS overrides.
REPOSITORY_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
INSTALLED_WEIGHTS_DIR = Path(__file__).resolve().parent / "shipped_weights"


def default_weights_path() -> Path:
    """$FER_WEIGHTS if set, else the shipped default model: in the installed package, or in the
    repository's weights/ folder."""
    configured = os.environ.get("FER_WEIGHTS")
    if configured:
        return Path(configured)
    folder = INSTALLED_WEIGHTS_DIR if INSTALLED_WEIGHTS_DIR.is_dir() else REPOSITORY_WEIGHTS_DIR
    return folder / f"{DEFAULT_WEIGHTS_NAME}.safetensors"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def give_default_permissions(path: str | os.PathLike) -> None:
    """Mode 0666 less the umask (0644 usually), as `open()` would have given: safetensors and
    temporary files write 0600, which a container running as another user could not read."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def save_weights(
    state_dict: "dict[str, torch.Tensor]", card: ModelCard, prefix: str | os.PathLike
) -> tuple[Path, Path]:
    """Write PREFIX.safetensors and PREFIX.json; the written card gains the weights' sha256 and file name."""
    from safetensors.torch import save_file

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tensors_path = prefix.with_name(prefix.name + ".safetensors")
    card_path = prefix.with_name(prefix.name + ".json")
    save_file({name: tensor.detach().cpu().contiguous() for name, tensor in state_dict.items()}, str(tensors_path))
    give_default_permissions(tensors_path)
    card = card.model_copy(
        update={"format": CARD_FORMAT, "weights_file": tensors_path.name, "sha256": file_sha256(tensors_path)}
    )
    card_path.write_text(card.to_json())
    return tensors_path, card_path


def weights_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """(card, tensors) paths of weights named by either file or by their common prefix."""
    path = Path(path)
    if path.suffix == ".json":
        return path, path.with_suffix(".safetensors")
    if path.suffix == ".safetensors":
        return path.with_suffix(".json"), path
    return Path(f"{path}.json"), Path(f"{path}.safetensors")


def read_card(path: str | os.PathLike) -> ModelCard:
    """The card of weights (.safetensors or .json), after checking that both files are there and the
    tensors match the card's sha256; without importing torch."""
    card_path, tensors_path = weights_files(path)
    if not tensors_path.is_file():
        raise WeightsError(f"no weights file at {tensors_path}")
    if not card_path.is_file():
        raise WeightsError(f"{tensors_path} has no model card beside it (expected {card_path})")
    card = ModelCard.read(card_path)
    if card.sha256 and file_sha256(tensors_path) != card.sha256:
        raise WeightsError(f"{tensors_path} does not match the sha256 in {card_path}: the file was changed or damaged")
    return card


def is_checkpoint(path: str | os.PathLike) -> bool:
    return Path(path).suffix in (".pt", ".pth")


def load_model(path: str | os.PathLike | None = None, card: ModelCard | None = None) -> "tuple[nn.Module, ModelCard]":
    """(model in eval mode on the CPU, card) from weights (.safetensors or .json) or a checkpoint (.pt).
    `card`: the weights' card as `read_card` already returned it (their sha256 is then not checked again)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path) if path is not None else default_weights_path()
    if is_checkpoint(path):
        return model_from_checkpoint(load_checkpoint(path), path)
    card = card or read_card(path)
    tensors_path = weights_files(path)[1]
    try:
        state_dict = load_file(str(tensors_path))
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{tensors_path} is not a readable safetensors file: {error}") from None
    return _build(card.arch, card.labels, state_dict, str(tensors_path)), card


CHECKSUM_KEY = "checksum"  # sha256 of a checkpoint's contents (content_digest), saved inside it


def content_digest(value: object) -> str:
    """sha256 of a checkpoint's contents: every tensor's dtype, shape and bytes and every plain value,
    walked in a fixed order, so the same contents give the same digest after a save and a load."""
    import torch

    digest = hashlib.sha256()

    def walk(item: object) -> None:
        if isinstance(item, torch.Tensor):
            flat = item.detach().cpu().contiguous().reshape(-1)
            digest.update(f"tensor {item.dtype} {tuple(item.shape)}:".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
        elif isinstance(item, dict):
            digest.update(f"dict {len(item)}:".encode())
            for key in sorted(item, key=repr):
                digest.update(f"{key!r}=".encode())
                walk(item[key])
        elif isinstance(item, (list, tuple)):
            digest.update(f"{type(item).__name__} {len(item)}:".encode())
            for element in item:
                walk(element)
        else:
            digest.update(f"{type(item).__name__} {item!r};".encode())

    walk(value)
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A training checkpoint's contents, read with `weights_only=True`: tensors and plain data only.
    A checkpoint that carries a checksum (fer writes one since 2026-11-24) must match it: damaged
    bytes inside a tensor would otherwise load as wrong, or NaN, weights without a word."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no checkpoint at {path}")
    checkpoint = _read_checkpoint(path)
    expected = checkpoint.pop(CHECKSUM_KEY, None) if isinstance(checkpoint, dict) else None
    if expected is not None and content_digest(checkpoint) != expected:
        raise WeightsError(
            f"{path} is damaged: its contents do not match the checksum saved with it (a disk or copy error); "
            "use another checkpoint, such as last.pt or best.pt of the same run"
        )
    return checkpoint


def _read_checkpoint(path: Path) -> object:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message advises weights_only=False, which would run whatever the file holds.
        raise WeightsError(
            f"{path} is not a readable fer checkpoint: not a torch file of tensors and plain data (random "
            "bytes, or pickled objects, which fer never loads)"
        ) from None
    except Exception as error:  # torch raises many types for a truncated or foreign file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise WeightsError(f"{path} is not a readable fer checkpoint ({type(error).__name__}: {reason})") from None


def model_from_checkpoint(checkpoint: dict, path: str | os.PathLike) -> "tuple[nn.Module, ModelCard]":
    """(EMA model, its card) from a loaded training checkpoint: what the checkpoint knows, which is
    its EMA's validation accuracy without TTA."""
    try:
        arch, labels, state_dict = checkpoint["arch"], checkpoint["labels"], checkpoint["ema"]["module"]
    except (KeyError, TypeError):
        raise WeightsError(f"{path} is not a fer training checkpoint (no arch, labels and EMA weights)") from None
    from fer.models import input_spec

    model = _build(arch, labels, state_dict, str(path))  # first: it checks the labels
    card = ModelCard(
        arch=arch,
        labels=list(labels),
        input=input_spec(arch),
        source_checkpoint=str(path),
        epoch=checkpoint.get("epoch"),
        metrics=Metrics(validation={"none": TtaMetrics(accuracy=checkpoint.get("val_accuracy"))}),
        training={"config": checkpoint.get("config")},
    )
    return model, card


def _build(arch: str, labels: Sequence[str], state_dict: dict, source: str) -> "nn.Module":
    import torch

    from fer.models import ARCHITECTURES, build_model

    try:
        check_labels(labels, source)
    except ValueError as error:
        raise WeightsError(str(error)) from None
    if arch not in ARCHITECTURES:
        raise WeightsError(
            f"{source} is for architecture {arch!r}, which this fer does not have ({', '.join(ARCHITECTURES)})"
        )
    model = build_model(arch)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise WeightsError(f"the weights in {source} do not fit architecture {arch!r}: {first}") from None
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsError(
                f"the weights in {source} are not finite (NaN or infinity in {name}): the training run "
                "diverged or the file is damaged; use an earlier checkpoint"
            )
    return model.eval()
