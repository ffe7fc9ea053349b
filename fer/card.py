"""The model card: what a weights file is, how it was made and how well it does, in one typed shape.

    >>> card = ModelCard.read("weights/fer-v3.json")
    >>> card.metrics.validation["tencrop"].accuracy
    0.6968...

`fer export` writes it as NAME.json beside NAME.safetensors; loading a training checkpoint (.pt)
builds one too, with what a checkpoint knows (its EMA's validation accuracy without TTA), so that
everything downstream (the Predictor, `/v1/model`, `fer export`'s summary) reads one shape. Cards of
older fer versions, and the old checkpoint shape of `metrics` ({"accuracy", "tta"}), still read.
"""

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from fer.errors import WeightsError
from fer.options import TTA_MODES
from fer.preprocess import INPUT_SIZE

TtaMode = Literal[TTA_MODES]  # type: ignore[valid-type]


class _Part(BaseModel):
    # Keys a newer fer may add are kept, not refused: a card is read by older and newer code alike.
    model_config = ConfigDict(extra="allow")


class TtaMetrics(_Part):
    accuracy: float | None = Field(None, description="fraction of faces classified correctly")
    macro_f1: float | None = None
    n: int | None = Field(None, description="faces measured")
    recall: dict[str, float] | None = Field(None, description="per label: the share of its faces named right")


class MeasuredOn(_Part):
    """The CPU that measured a model's figures: int8 arithmetic differs between instruction sets."""

    cpu: str = Field(examples=["AMD EPYC"])
    isa: list[str] = Field(description="relevant instruction sets (fer.cpu)", examples=[["AVX2", "AVX-512", "VNNI"]])


class Metrics(_Part):
    validation: dict[TtaMode, TtaMetrics] = Field(
        default_factory=dict, description="on FER2013's PublicTest split, per test-time augmentation mode"
    )
    capture_proxy: dict[TtaMode, TtaMetrics] = Field(
        default_factory=dict,
        description="on the same faces as photos give them (training.capture.proxy_crops: light, the default "
        "detector's framing errors, turns, blur, low resolution, JPEG), per test-time augmentation mode",
    )
    measured_on: MeasuredOn | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_checkpoint_shape(cls, data: Any) -> Any:
        # Cards built from a .pt by fer 0.1 held {"validation": {"accuracy": a, "tta": "none"}}.
        validation = data.get("validation") if isinstance(data, dict) else None
        if isinstance(validation, dict) and "accuracy" in validation:
            return {**data, "validation": {validation.get("tta", "none"): {"accuracy": validation["accuracy"]}}}
        return data


class Normalization(_Part):
    mean: float
    std: float


class InputSpec(_Part):
    shape: list[int] = Field(examples=[[1, 48, 48]])
    color: str = Field(examples=["grayscale"])
    pixels: str = Field(examples=["0..255 float; the model normalizes inside"])
    normalization: Normalization
    window: int | None = Field(
        None,
        description="a crop-trained model's: the side of the centre window of each face it classifies, which "
        "ten-crop moves to the corners; absent: the whole face",
        examples=[40],
    )

    @field_validator("window")
    @classmethod
    def _window_fits_with_an_even_margin(cls, window: int | None) -> int | None:
        # Ten-crop's mirrored views are exact only when the window sits centred on whole pixels: a window
        # of 41 would leave 3.5 pixels a side, and each mirror would be one pixel off its crop.
        if window is not None and not (0 < window <= INPUT_SIZE and (INPUT_SIZE - window) % 2 == 0):
            raise ValueError(f"must be at most {INPUT_SIZE} and leave an even margin ({INPUT_SIZE} - window even)")
        return window


class Agreement(_Part):
    """How closely the int8 variant follows the float32 model on validation faces (TTA none)."""

    top1: float = Field(description="share of faces given the same emotion")
    largest_probability_difference: float


class Int8Variant(_Part):
    # Without a file and its sha256 there is no int8 variant to load (fer.onnx_runtime says so).
    file: str | None = Field(None, description="beside the weights", examples=["fer-v3.int8.onnx"])
    sha256: str | None = None
    method: str | None = None
    weight_bits: int | None = Field(
        None,
        description="7: cannot saturate on any CPU; 8 (or absent, as in cards before 2026-12-03) needs VNNI "
        "to run as measured (fer.cpu)",
    )
    agreement: Agreement | None = None
    metrics: Metrics = Field(default_factory=Metrics)


class ModelCard(_Part):
    name: str = Field("unnamed", examples=["fer-v3"])
    arch: str = Field(examples=["vgg_slim"])
    labels: list[str]
    input: InputSpec | None = None
    output: str | None = None
    parameters: int | None = None
    flops_per_face: int | None = None
    epoch: int | None = Field(None, description="the training epoch these weights are from")
    metrics: Metrics = Field(default_factory=Metrics)
    default_tta: TtaMode = Field(
        "none", description="the mode used when none is asked for: the best on validation unless the exporter chose"
    )
    dataset: dict[str, Any] | None = None
    training: dict[str, Any] | None = Field(None, description="the resolved training configuration")
    int8: Int8Variant | None = Field(None, description="the fast CPU variant, with its own accuracy")
    git_commit: str | None = None
    exported: str | None = Field(None, description="when, ISO 8601")
    source_checkpoint: str | None = Field(None, description="for a card built from a .pt: its path")
    format: int | None = None
    weights_file: str | None = None
    sha256: str | None = Field(None, description="of the weights file")

    @property
    def window(self) -> int:
        """The side of the part of each 48x48 face that the model classifies (fer.tta moves it)."""
        return self.input.window if self.input is not None and self.input.window else INPUT_SIZE

    @field_validator("int8", mode="wrap")
    @classmethod
    def _malformed_int8_is_none(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Int8Variant | None:
        # The int8 variant is optional: a damaged entry means "no int8 variant", not an unusable model.
        try:
            return handler(value)
        except ValidationError:
            return None

    @classmethod
    def read(cls, path: str | os.PathLike) -> "ModelCard":
        """The card in a JSON file; a WeightsError that names the file and the problem otherwise."""
        path = Path(path)
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise WeightsError(f"cannot read the model card {path}: {error}") from None
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the card"
            raise WeightsError(f"the model card {path} is not valid: {where}: {first['msg']}") from None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True) + "\n"

    def validation_accuracy(self, tta: str) -> float | None:
        metrics = self.metrics.validation.get(tta)
        return metrics.accuracy if metrics else None
