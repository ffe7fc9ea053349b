"""Knowledge distillation: teachers' soft targets for every training face, and the loss that teaches
a student from them.

Offline distillation (Hinton et al. 2015): the teachers (exported models or training checkpoints,
with test-time augmentation) classify every training face once, and the averaged probabilities are
stored as a small compressed file (28,709 x 7 float16, about 0.4 MB) that a training run reads with
`--distill FILE`. A student then learns both the labels and what the teachers see in each face, at
the cost of one network at inference. Targets are written for the faces as stored, not for each
augmented view: a teacher's forward pass per step would cost as much again as the student's.

    python -m training.distill --data ../shared/data/fer2013.zip --tta tencrop \\
        --teacher weights/fer-v1.safetensors --teacher runs/ablation/base-e40-s0/best.pt \\
        --out docs/runs/teachers/fer-v1+base-tencrop.npz

It prints each teacher's and the ensemble's validation accuracy (the file keeps them too), so the
ensemble is measured before a student is trained on it.
"""

import hashlib
import json
import logging
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fer.datasets import TRAIN, VALIDATION, LabeledImages, load_splits, select_split
from fer.errors import FerError, OneLineArgumentParser
from fer.labels import EMOTIONS, NUM_CLASSES
from fer.options import TTA_MODES

log = logging.getLogger("training")

TARGETS_FORMAT = 1
BATCH = 64  # faces per ONNX Runtime call (x10 views with ten-crop)


def images_digest(data: LabeledImages) -> str:
    """sha256 of a split's faces and labels: soft targets are only ever used with the faces they
    were computed for, in the same order."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(data.images, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(data.labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


@dataclass
class SoftTargets:
    probabilities: np.ndarray  # (N, 7) float32, one row per training face, in the dataset's order
    digest: str  # images_digest of the training split they belong to
    teachers: list[str]  # what produced them, as given on the command line
    tta: str
    validation_accuracy: dict[str, float]  # each teacher's and "ensemble", measured when written

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": TARGETS_FORMAT,
            "digest": self.digest,
            "teachers": self.teachers,
            "tta": self.tta,
            "validation_accuracy": self.validation_accuracy,
            "emotions": list(EMOTIONS),
        }
        temporary = path.with_name(f".{path.name}.tmp")
        with open(temporary, "wb") as handle:  # np.savez would add ".npz" to a name without it
            np.savez_compressed(handle, probabilities=self.probabilities.astype(np.float16), meta=json.dumps(meta))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SoftTargets":
        try:
            with np.load(path, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                probabilities = stored["probabilities"].astype(np.float32)
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:  # JSONDecodeError: ValueError
            raise FerError(f"cannot read soft targets {path}: {error}") from None
        if not isinstance(meta, dict) or meta.get("format") != TARGETS_FORMAT:
            raise FerError(f"{path} is not a soft-targets file of format {TARGETS_FORMAT} (python -m training.distill)")
        if meta.get("emotions") != list(EMOTIONS) or probabilities.ndim != 2 or probabilities.shape[1] != NUM_CLASSES:
            raise FerError(f"{path} holds targets for other classes than {', '.join(EMOTIONS)}")
        if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0):
            raise FerError(f"{path} holds probabilities that are negative or not finite")
        return cls(probabilities, meta["digest"], meta["teachers"], meta["tta"], meta["validation_accuracy"])

    def for_split(self, data: LabeledImages, path: str | os.PathLike) -> np.ndarray:
        """The (N, 7) targets, row-normalized, after checking they were computed for `data`."""
        if len(self.probabilities) != len(data) or self.digest != images_digest(data):
            raise FerError(
                f"the soft targets in {path} were computed for other training faces ({len(self.probabilities)} "
                f"rows) than these {len(data)}: write them again for this dataset with python -m training.distill"
            )
        # float16 storage rounds each row's sum slightly away from 1.
        return self.probabilities / self.probabilities.sum(1, keepdims=True)


def distillation_loss(logits: torch.Tensor, teacher_probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-target term: T^2 * KL(teacher || student), both softened by temperature T.
    The teacher's stored probabilities are softened as p^(1/T), renormalized, which is softmax(z/T)
    of its log-probabilities; T^2 keeps the gradient's scale independent of T."""
    student = F.log_softmax(logits / temperature, dim=1)
    teacher = F.log_softmax(teacher_probabilities.clamp_min(1e-8).log() / temperature, dim=1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * temperature**2


# ---------------------------------------------------------------- writing targets


def teacher_probabilities(weights: str, splits: list[np.ndarray], tta: str) -> list[np.ndarray]:
    """One teacher's (N, 7) probabilities for each of `splits` ((N, 48, 48) uint8 faces), computed in
    float32 by ONNX Runtime on a fresh export: on the CPU it runs ten-crop about 4x as fast as PyTorch
    eager (docs/benchmarks.md), and the int8 variant would hand its rounding on to the student."""
    from fer.onnx_runtime import OnnxModel
    from fer.tta import predict_probabilities
    from fer.weights import load_model
    from training.export import export_onnx

    model, _ = load_model(weights)
    with tempfile.TemporaryDirectory() as folder:
        export_onnx(model, Path(folder) / "teacher.onnx")  # checked against PyTorch as it is written
        forward = OnnxModel(Path(folder) / "teacher.onnx")
        return [
            np.concatenate(
                [
                    predict_probabilities(forward, faces[i : i + BATCH, np.newaxis], tta)
                    for i in range(0, len(faces), BATCH)
                ]
            )
            for faces in splits
        ]


def write_targets(data: str, teachers: list[str], tta: str, out: str) -> SoftTargets:
    splits = load_splits(data)
    train, val = select_split(splits, TRAIN, data), select_split(splits, VALIDATION, data)
    train_sum = np.zeros((len(train), NUM_CLASSES), dtype=np.float64)
    val_sum = np.zeros((len(val), NUM_CLASSES), dtype=np.float64)
    accuracy = {}
    for weights in teachers:
        val_probabilities, train_probabilities = teacher_probabilities(weights, [val.images, train.images], tta)
        accuracy[weights] = float((val_probabilities.argmax(1) == val.labels).mean())
        log.info(f"{weights}: {accuracy[weights]:.2%} on validation ({tta})")
        val_sum += val_probabilities
        train_sum += train_probabilities
    accuracy["ensemble"] = float((val_sum.argmax(1) == val.labels).mean())
    train_accuracy = float((train_sum.argmax(1) == train.labels).mean())
    log.info(
        f"ensemble of {len(teachers)}: {accuracy['ensemble']:.2%} on validation, "
        f"{train_accuracy:.2%} on the training faces it labels"
    )
    targets = SoftTargets(
        (train_sum / len(teachers)).astype(np.float32), images_digest(train), list(teachers), tta, accuracy
    )
    targets.save(out)
    log.info(f"wrote {out} ({Path(out).stat().st_size / 1e6:.1f} MB)")
    return targets


def main(argv: list[str] | None = None) -> int:
    # Our lines only: torch.onnx's exporter logs each optimization pass at INFO.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    parser = OneLineArgumentParser(
        prog="python -m training.distill",
        description="Write teachers' soft targets for every training face, for training --distill FILE.",
    )
    parser.add_argument("--data", required=True, help="FER2013 .zip, folder or fer2013.csv")
    parser.add_argument(
        "--teacher", action="append", required=True, help="weights (.safetensors) or a checkpoint (.pt); repeat"
    )
    parser.add_argument("--tta", choices=TTA_MODES, default="tencrop", help="each teacher's TTA (default tencrop)")
    parser.add_argument("--out", required=True, help="the .npz file to write")
    args = parser.parse_args(argv)
    try:
        write_targets(args.data, args.teacher, args.tta, args.out)
    except FerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
