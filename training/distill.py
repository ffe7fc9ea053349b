"""Knowledge distillation: teachers' soft targets for every training face, and the loss that teaches
a student from them.

Offline distillation (Hinton et al. 2015): the teachers (exported models or training checkpoints,
with test-time augmentation) classify every training face once, and the averaged probabilities are
stored as a small compressed file (28,709 x 7 float16, about 0.4 MB) that a training run reads with
`--distill FILE`. A student then learns both the labels and what the teachers see in each face, at
the cost of one network at inference. Targets are written for the faces as stored, not for each
augmented view: a teacher's forward pass per step would cost as much again as the student's.

    python -m training.distill --data ../shared/data/fer2013.zip --tta tencrop \\
        --teacher weights/fer-v3.safetensors --teacher runs/ablation/base-e40-s0/best.pt \\
        --out docs/runs/teachers/fer-v3+base-tencrop.npz

It prints each teacher's and the ensemble's validation accuracy (the file keeps them too), so the
ensemble is measured before a student is trained on it.

A file also keeps the teachers' validation probabilities, so a finished run's targets can stand in
for its checkpoint: `--teacher docs/runs/teachers/base-e40-s0.npz` reuses them (checked against the
faces) without the checkpoint, which a 2-core machine's run folders do not outlive. Each file given
counts as one teacher, so an ensemble can be built later from any runs' committed targets.
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
from fer.errors import FerError
from fer.labels import EMOTIONS, NUM_CLASSES
from fer.options import TTA_MODES
from training.arguments import OneLineArgumentParser

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
    validation_probabilities: np.ndarray  # (M, 7) float32, the same teachers on the validation faces
    validation_digest: str  # images_digest of the validation split

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": TARGETS_FORMAT,
            "digest": self.digest,
            "teachers": self.teachers,
            "tta": self.tta,
            "validation_accuracy": self.validation_accuracy,
            "validation_digest": self.validation_digest,
            "emotions": list(EMOTIONS),
        }
        temporary = path.with_name(f".{path.name}.tmp")
        with open(temporary, "wb") as handle:  # np.savez would add ".npz" to a name without it
            np.savez_compressed(
                handle,
                probabilities=self.probabilities.astype(np.float16),
                validation_probabilities=self.validation_probabilities.astype(np.float16),
                meta=json.dumps(meta),
            )
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SoftTargets":
        try:
            with np.load(path, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                format_ = meta.get("format") if isinstance(meta, dict) else None
                if format_ == TARGETS_FORMAT:
                    probabilities = stored["probabilities"].astype(np.float32)
                    validation = stored["validation_probabilities"].astype(np.float32)
                    fields = [meta[key] for key in ("digest", "teachers", "tta", "validation_accuracy")]
                    validation_digest = meta["validation_digest"]
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:  # JSONDecodeError: ValueError
            raise FerError(f"cannot read soft targets {path}: {error}") from None
        if format_ != TARGETS_FORMAT:
            raise FerError(f"{path} is not a soft-targets file of format {TARGETS_FORMAT} (python -m training.distill)")
        for rows in (probabilities, validation):
            if meta.get("emotions") != list(EMOTIONS) or rows.ndim != 2 or rows.shape[1] != NUM_CLASSES:
                raise FerError(f"{path} holds targets for other classes than {', '.join(EMOTIONS)}")
            # float16 storage leaves each row's sum within about 0.004 of 1.
            if not np.all(np.isfinite(rows)) or np.any(rows < 0) or np.any(np.abs(rows.sum(1) - 1.0) > 0.02):
                raise FerError(
                    f"{path} holds rows that are not probabilities (negative, not finite or not summing to 1)"
                )
        return cls(probabilities, *fields, validation, validation_digest)

    def for_split(self, data: LabeledImages, path: str | os.PathLike, split: str = TRAIN) -> np.ndarray:
        """The (N, 7) targets of `split` (TRAIN or VALIDATION), row-normalized, after checking they were
        computed for `data`."""
        if split == TRAIN:
            probabilities, digest, faces = self.probabilities, self.digest, "training"
        else:
            probabilities, digest, faces = self.validation_probabilities, self.validation_digest, split
        if len(probabilities) != len(data) or digest != images_digest(data):
            raise FerError(
                f"the soft targets in {path} were computed for other {faces} faces ({len(probabilities)} rows) "
                f"than these {len(data)}: write them again for this dataset with python -m training.distill"
            )
        # float16 storage rounds each row's sum slightly away from 1.
        return probabilities / probabilities.sum(1, keepdims=True)


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

    model, card = load_model(weights)
    with tempfile.TemporaryDirectory() as folder:
        export_onnx(model, Path(folder) / "teacher.onnx")  # checked against PyTorch as it is written
        forward = OnnxModel(Path(folder) / "teacher.onnx")
        return [
            np.concatenate(
                [
                    predict_probabilities(forward, faces[i : i + BATCH, np.newaxis], tta, card.window)
                    for i in range(0, len(faces), BATCH)
                ]
            )
            for faces in splits
        ]


def stored_teacher_probabilities(path: str, train: LabeledImages, val: LabeledImages, tta: str) -> list[np.ndarray]:
    """A targets file as one teacher: its validation and training probabilities, checked against the
    faces and the TTA asked for."""
    stored = SoftTargets.load(path)
    if stored.tta != tta:
        raise FerError(f"{path} holds {stored.tta} probabilities, not {tta}: ask for --tta {stored.tta}")
    return [stored.for_split(val, path, VALIDATION), stored.for_split(train, path, TRAIN)]


def write_targets(data: str, teachers: list[str], tta: str, out: str) -> SoftTargets:
    splits = load_splits(data)
    train, val = select_split(splits, TRAIN, data), select_split(splits, VALIDATION, data)
    train_sum = np.zeros((len(train), NUM_CLASSES), dtype=np.float64)
    val_sum = np.zeros((len(val), NUM_CLASSES), dtype=np.float64)
    accuracy = {}
    for teacher in teachers:
        if Path(teacher).suffix == ".npz":
            val_probabilities, train_probabilities = stored_teacher_probabilities(teacher, train, val, tta)
        else:
            val_probabilities, train_probabilities = teacher_probabilities(teacher, [val.images, train.images], tta)
        accuracy[teacher] = float((val_probabilities.argmax(1) == val.labels).mean())
        log.info(f"{teacher}: {accuracy[teacher]:.2%} on validation ({tta})")
        val_sum += val_probabilities
        train_sum += train_probabilities
    accuracy["ensemble"] = float((val_sum.argmax(1) == val.labels).mean())
    train_accuracy = float((train_sum.argmax(1) == train.labels).mean())
    log.info(
        f"ensemble of {len(teachers)}: {accuracy['ensemble']:.2%} on validation, "
        f"{train_accuracy:.2%} on the training faces it labels"
    )
    targets = SoftTargets(
        (train_sum / len(teachers)).astype(np.float32), images_digest(train), list(teachers), tta, accuracy,
        (val_sum / len(teachers)).astype(np.float32), images_digest(val),
    )  # fmt: skip
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
        "--teacher",
        action="append",
        required=True,
        help="weights (.safetensors), a checkpoint (.pt) or targets written before (.npz); repeat",
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
