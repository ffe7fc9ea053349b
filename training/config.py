"""The one training configuration: defaults < `--config FILE` (JSON) < explicit command-line flags.

The resolved configuration is saved with every run (`config.json`) and inside every checkpoint, so
`--config RUN/config.json` reproduces a run.
"""

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer.errors import FerError
from fer.models import ARCHITECTURES
from training.arguments import OneLineArgumentParser
from training.augment import MIX_MODES, AugmentConfig

AMP_MODES = ("auto", "bf16", "fp16", "off")
DIST_BACKENDS = ("auto", "nccl", "gloo")


@dataclass
class TrainConfig:
    data: str = ""  # dataset: Kaggle .zip or folder, or fer2013.csv (see fer.datasets)
    arch: str = "vgg"  # a name in fer.models.ARCHITECTURES
    epochs: int = 60
    batch_size: int = 64  # per process; the global batch is batch_size x number of processes
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum) or "adamw"
    lr: float = 0.03  # peak learning rate, reached after warmup, then cosine decay to 0
    momentum: float = 0.9
    weight_decay: float = 5e-4  # not applied to norm weights and biases
    warmup_epochs: float = 1.0  # linear warmup from 0, counted in epochs
    label_smoothing: float = 0.1
    mix: str = "none"  # "mixup" or "cutmix": train on pairs of faces blended with their labels (MIX_MODES)
    mix_alpha: float = 1.0  # the mixing weight is drawn from Beta(mix_alpha, mix_alpha) once per batch
    # Share of training faces given, each epoch, what a camera and the detector do to a face
    # (training.capture: light, the detector's measured framing errors, turn, blur, resolution, JPEG),
    # before the batch augmentation. 0: off, as in every run before issue 30's proxy.
    capture: float = 0.0
    # Knowledge distillation: a soft-targets file from `python -m training.distill` ("" for none); the
    # loss is (1 - distill_weight) x the label loss + distill_weight x the soft-target loss at
    # distill_temperature (training.distill.distillation_loss).
    distill: str = ""
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    grad_clip: float = 5.0  # max global gradient norm (after unscaling with fp16)
    ema_decay: float = 0.999  # weights averaged every step; the average is evaluated and exported
    # auto: bf16 where the hardware computes in it (GPUs, CPUs with AVX-512 BF16 or AMX), else fp32
    # (fp16 on GPUs without bf16); bf16 autocast, fp16 autocast with GradScaler, or off (fp32).
    # Chosen again at every resume (training.precision), so config.json keeps what was asked for.
    amp: str = "auto"
    device: str = "auto"  # auto picks CUDA, then MPS, then CPU
    max_samples: int | None = None  # stratified training subset, for smoke runs
    out: str = "runs/train"  # receives last.pt, best.pt, config.json, metrics.jsonl, tensorboard/
    resume: bool = False  # continue from OUT/last.pt with the same schedule
    overwrite: bool = False  # replace the run already in OUT (without it, or --resume, fer refuses)
    seed: int = 0
    eval_batch_size: int = 512
    compile: bool = False  # torch.compile the model (worth it on GPUs for long runs)
    dist_timeout_minutes: float = 10.0  # collective operations that hang longer than this fail
    # auto: NCCL on GPUs, gloo on CPUs. gloo on GPUs lets several processes share one GPU, which
    # NCCL refuses (scripts/gpu_check.py trains two processes on one GPU that way).
    dist_backend: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        if not self.data:
            raise FerError("--data is required (a FER2013 .zip, folder or fer2013.csv)")
        if self.arch not in ARCHITECTURES:
            raise FerError(f"unknown --arch {self.arch!r}; choose from {', '.join(ARCHITECTURES)}")
        if self.amp not in AMP_MODES:
            raise FerError(f"unknown --amp {self.amp!r}; choose from {', '.join(AMP_MODES)}")
        if self.mix not in MIX_MODES:
            raise FerError(f"unknown --mix {self.mix!r}; choose from {', '.join(MIX_MODES)}")
        if not self.mix_alpha > 0:
            raise FerError("--mix-alpha must be positive")
        if not 0.0 <= self.capture <= 1.0:
            raise FerError(f"--capture is a share of the training faces, from 0 to 1, not {self.capture}")
        if not 0.0 <= self.augment.color_jitter < 1.0:  # a factor of 1 - J must stay above 0
            raise FerError(f"--color-jitter must be at least 0 and below 1, not {self.augment.color_jitter}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise FerError(f"--distill-weight must be between 0 and 1, not {self.distill_weight}")
        if not self.distill_temperature > 0 or not math.isfinite(self.distill_temperature):
            raise FerError(f"--distill-temperature must be a positive number, not {self.distill_temperature}")
        if self.dist_backend not in DIST_BACKENDS:
            raise FerError(f"unknown --dist-backend {self.dist_backend!r}; choose from {', '.join(DIST_BACKENDS)}")
        if self.optimizer not in ("sgd", "adamw"):
            raise FerError(f"unknown optimizer {self.optimizer!r}; choose sgd or adamw")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise FerError(f"--{name.replace('_', '-')} must be at least 1")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise FerError(f"--lr must be a positive number, not {self.lr}")
        for name in ("weight_decay", "mix_alpha", "momentum", "label_smoothing", "grad_clip", "warmup_epochs"):
            if not math.isfinite(getattr(self, name)):
                raise FerError(f"--{name.replace('_', '-')} must be a finite number, not {getattr(self, name)}")
        if self.seed < 0:
            raise FerError(f"--seed must be 0 or more, not {self.seed}")
        if self.resume and self.overwrite:
            raise FerError("--resume continues the run in --out and --overwrite replaces it: choose one")
        if self.max_samples is not None and self.max_samples < 1:
            raise FerError("--max-samples must be at least 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FerError(f"unknown configuration keys: {', '.join(unknown)}")
        values = dict(values)
        if isinstance(values.get("augment"), dict):
            augment = values["augment"]
            values["augment"] = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in augment.items()})
        return cls(**values)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="python -m training.train",
        description="Train a FER2013 emotion classifier (single process, or one process per device with torchrun).",
        epilog="Flags override --config, which overrides the defaults shown.",
    )
    defaults = TrainConfig()

    def option(flag: str, help: str = "", **kwargs: Any) -> None:
        # Every argparse default is None so that only flags the user typed override --config; the
        # help shows TrainConfig's default instead.
        default = getattr(defaults, flag.removeprefix("--").replace("-", "_"))
        shown = "all" if default is None else ("off" if default is False or default == "" else default)
        parser.add_argument(flag, help=f"{help} (default {shown})".lstrip(), **kwargs)

    parser.add_argument(
        "--data", metavar="PATH", help="FER2013 .zip, extracted folder, or fer2013.csv (required, here or in --config)"
    )
    option("--arch", choices=sorted(ARCHITECTURES))
    option("--epochs", type=int)
    option("--batch-size", "per process", type=int)
    option("--lr", "peak learning rate", type=float)
    option("--optimizer", choices=["sgd", "adamw"])
    option("--weight-decay", type=float)
    option("--mix", "blend pairs of training faces and their labels", choices=MIX_MODES)
    option("--mix-alpha", "Beta(alpha, alpha) draws the mixing weight", type=float)
    parser.add_argument(
        "--color-jitter",
        type=float,
        metavar="J",
        help="brightness and contrast of each training face scaled by factors in [1-J, 1+J] (default 0: off)",
    )
    option("--capture", "share of training faces given camera and detector effects each epoch", type=float)
    option("--distill", "soft targets to learn from, written by python -m training.distill", metavar="FILE")
    option("--distill-weight", "share of the soft-target loss", type=float)
    option("--distill-temperature", "softens teacher and student alike", type=float)
    option("--amp", choices=AMP_MODES)
    option("--device", choices=["auto", "cuda", "mps", "cpu"])
    option("--max-samples", "stratified training subset (smoke runs)", type=int)
    option("--out", "run folder")
    option("--resume", "continue from OUT/last.pt", action="store_true", default=None)
    option("--overwrite", "replace the run already in OUT", action="store_true", default=None)
    option("--seed", type=int)
    option("--compile", "torch.compile the model", action="store_true", default=None)
    option("--dist-backend", "under torchrun: auto is NCCL on GPUs, gloo on CPUs", choices=DIST_BACKENDS)
    parser.add_argument("--config", help="JSON file of TrainConfig fields (a run's config.json works)")
    return parser


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    args = vars(build_parser().parse_args(argv))
    config_file = args.pop("config")
    values = {}
    if config_file:
        try:
            values = json.loads(Path(config_file).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise FerError(f"cannot read --config {config_file}: {error}") from None
        if not isinstance(values, dict):
            raise FerError(f"--config {config_file} must hold a JSON object of TrainConfig fields")
    color_jitter = args.pop("color_jitter")
    values.update({key: value for key, value in args.items() if value is not None})
    if color_jitter is not None:  # the one augmentation setting with a flag; the rest come by --config
        augment = values.get("augment") or {}
        if not isinstance(augment, dict):
            raise FerError(f"--config {config_file}: augment must be a JSON object of AugmentConfig fields")
        values["augment"] = {**augment, "color_jitter": color_jitter}
    config = TrainConfig.from_dict(values)
    config.validate()
    # Which settings the user gave (a flag or --config), so that a resumed run can tell "--epochs 60
    # typed" from "60, the default" (training.train reads it; it is not a setting, so never saved).
    config.given = frozenset(values)
    return config
