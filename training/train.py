"""Train a FER2013 emotion classifier with DistributedDataParallel and automatic mixed precision.

One process (CPU, one GPU or Apple MPS):
    python -m training.train --data ../shared/data/fer2013.zip --epochs 2 --max-samples 4000 --out /tmp/run
One machine, N processes (N GPUs with NCCL, or N CPU processes with gloo):
    torchrun --standalone --nproc_per_node=2 -m training.train --data ../shared/data/fer2013.zip --out /tmp/run
Several machines (run on each, with its own --node-rank not needed under c10d):
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 --rdzv-id=fer1 \
        -m training.train --data fer2013.zip --out runs/big
Survive crashed workers: torchrun --max-restarts=3 ...; restarted workers resume from OUT/last.pt.
Stop with Ctrl+C or SIGTERM: one line says what last.pt holds and the command that resumes it.

Every rank holds the whole training set on its device as uint8 (28,709 x 48 x 48 = 66 MB) and takes a
disjoint shard of one shared, seeded permutation per epoch. Augmentation runs on whole batches on the
device. The EMA of the weights is evaluated on the validation split (PublicTest) after every epoch;
`best.pt` is the epoch with the best validation accuracy.
"""

import contextlib
import json
import logging
import math
import os
import random
import shlex
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fer.cpu import cpu_info
from fer.datasets import (
    ALL,
    TRAIN,
    VALIDATION,
    LabeledImages,
    hold_out,
    load_splits,
    select_split,
    stratified_indices,
)
from fer.errors import FerError
from fer.models import training_input_size
from fer.preprocess import INPUT_SIZE
from fer.weights import load_checkpoint
from training.augment import augment_batch, mix_batch
from training.capture import Capture, captured_faces, load_framing_errors
from training.checkpoint import check_run_folder_writable, load_training_checkpoint, save_checkpoint
from training.config import TrainConfig, parse_config
from training.distill import SoftTargets
from training.distributed import (
    DistributedContext,
    average_buffers,
    barrier,
    close_distributed,
    init_distributed,
    mean_across_ranks,
    restarted_by_torchrun,
)
from training.ema import ExponentialMovingAverage
from training.loss import batch_loss
from training.precision import autocast_context, choose_amp
from training.run_log import METRICS_ROW_KEY, RunLog
from training.sharding import epoch_shard
from training.state import TrainingState

log = logging.getLogger("training")

# Config fields that may differ when resuming; every other field comes from the checkpoint so that
# the resumed run follows the same schedule.
RESUME_MAY_CHANGE = (
    "data", "out", "device", "resume", "overwrite", "compile", "dist_timeout_minutes", "dist_backend",
    "eval_batch_size",
)  # fmt: skip
# What makes a folder hold a run: fer never writes over these without --resume or --overwrite.
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl")
# Fields a resumed run takes from the command line when they are given there. The precision is the
# machine's business, not the schedule's: a leg on another machine may train in what runs fast there
# (auto, the default, chooses again by itself).
RESUME_MAY_CHANGE_WHEN_GIVEN = ("amp",)
HELD_OUT_SHARE = 0.1  # of a dataset without a validation split, held out to validate on


class Interrupted(BaseException):
    """SIGINT (Ctrl+C) or SIGTERM (kill, a job scheduler, torchrun stopping its workers). A
    BaseException, like KeyboardInterrupt, so that no `except Exception` on the way swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = None
    try:
        config = parse_config(argv)
        with _signals_as_interrupts():
            train(config)
    except FerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (Interrupted, KeyboardInterrupt) as stop:
        signum = stop.signum if isinstance(stop, Interrupted) else signal.SIGINT
        if config is not None and int(os.environ.get("RANK", "0")) == 0:
            print(_interrupted_message(config, signum), file=sys.stderr)
        return 128 + signum
    return 0


@contextlib.contextmanager
def _signals_as_interrupts():
    """SIGINT and SIGTERM raise Interrupted wherever the run is: checkpoint writes are atomic, so
    stopping at any point leaves the last whole epoch's last.pt, and main says so in one line."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live there only
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupted_message(config: TrainConfig, signum: int) -> str:
    out = Path(config.out)
    try:
        checkpoint = load_checkpoint(out / "last.pt") if (out / "last.pt").is_file() else None
    except FerError:
        checkpoint = None
    if checkpoint is not None:
        saved = f"{out / 'last.pt'} holds epoch {checkpoint['epoch']} of {checkpoint['config']['epochs']}"
    elif (out / "config.json").is_file():
        saved = f"no epoch finished, nothing saved but the settings ({out / 'config.json'})"
    else:
        saved = "nothing saved"
    command = ["-m", "training.train", "--data", config.data, "--out", str(out), "--resume"]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        launcher = "torchrun (with the same options) "
    else:
        launcher = "python "
    return f"interrupted ({signal.Signals(signum).name}): {saved}; resume with: {launcher}{shlex.join(command)}"


def train(config: TrainConfig) -> tuple[nn.Module, ExponentialMovingAverage]:
    """Run the whole training; return the final model and its EMA (the same on every rank)."""
    context = init_distributed(config.device, config.dist_timeout_minutes, config.dist_backend)
    try:
        return _train(config, context)
    finally:
        close_distributed()  # also on errors, so no rank is left waiting in a collective


@dataclass
class DeviceSplit:
    images: torch.Tensor  # (N, 1, 48, 48) uint8, on the training device
    labels: torch.Tensor  # (N,) int64
    soft_targets: torch.Tensor | None = None  # (N, 7) float32 teachers' probabilities (--distill)

    @classmethod
    def of(cls, data: LabeledImages, device: torch.device, soft_targets: np.ndarray | None = None) -> "DeviceSplit":
        return cls(
            torch.from_numpy(data.images).unsqueeze(1).to(device),
            torch.from_numpy(data.labels).to(device),
            None if soft_targets is None else torch.from_numpy(soft_targets).to(device),
        )


def _train(config: TrainConfig, context: DistributedContext) -> tuple[nn.Module, ExponentialMovingAverage]:
    device = context.device
    out = Path(config.out)
    if not context.is_main:
        log.setLevel(logging.WARNING)

    # ------------------------------------------------------------ the run folder is ours to write?
    _claim_run_folder(out, config, context)
    if context.is_main:
        check_run_folder_writable(out)

    # ------------------------------------------------------------ resume: the checkpoint's config wins
    checkpoint = None
    if config.resume or restarted_by_torchrun():
        if (out / "last.pt").exists():
            checkpoint = load_training_checkpoint(out / "last.pt")
            config = _resumed_config(config, checkpoint)
        elif (out / "config.json").is_file():
            config = _config_of_unstarted_run(config, out / "config.json")
        else:
            log.info(f"no {out / 'last.pt'} to resume from; starting from scratch")

    # ------------------------------------------------------------ data, whole splits on the device
    splits = load_splits(config.data)
    if set(splits) == {ALL}:  # emotion folders, or a CSV without Usage: no validation split of its own
        train_set, val_set = hold_out(splits[ALL], HELD_OUT_SHARE, config.seed)
        log.info(
            f"{config.data} has no validation split: holding out {len(val_set)} faces ({HELD_OUT_SHARE:.0%}, "
            f"stratified, seed {config.seed}) to choose the best checkpoint on"
        )
    else:
        train_set = select_split(splits, TRAIN, config.data)
        val_set = select_split(splits, VALIDATION, config.data)
    soft_targets = None
    if config.distill:  # checked against the whole split, before a subset is drawn from it
        soft_targets = SoftTargets.load(config.distill).for_split(train_set, config.distill)
    if config.max_samples and config.max_samples < len(train_set):
        keep = stratified_indices(train_set, config.max_samples, config.seed)
        train_set = LabeledImages(train_set.images[keep], train_set.labels[keep])
        soft_targets = None if soft_targets is None else soft_targets[keep]
    missing = [emotion for emotion, count in train_set.class_counts().items() if count == 0]
    if missing:
        log.warning(f"no training faces of {', '.join(missing)}: the model will never learn to predict them")
    amp = choose_amp(config.amp, device)
    if amp.mode == "fp16" and device.type == "cpu":
        log.warning("--amp fp16 on a CPU is emulated and very slow (13 img/s here, against about 400 with bf16)")
    elif amp.mode == "bf16" and device.type == "cpu" and not cpu_info().has_native_bf16:
        log.warning(
            f"--amp bf16 on this CPU is emulated: {cpu_info().describe()} has no bf16 instructions, "
            "and training runs about 10x slower than with --amp off (or auto)"
        )
    train, val = DeviceSplit.of(train_set, device, soft_targets), DeviceSplit.of(val_set, device)
    steps_per_epoch = len(train_set) // (config.batch_size * context.world_size)
    if steps_per_epoch == 0:
        raise FerError(
            f"{len(train_set)} training images are fewer than one batch of {config.batch_size} "
            f"x {context.world_size} processes; lower --batch-size"
        )

    # ------------------------------------------------------------ model, EMA, optimizer, schedule, scaler
    state = TrainingState.create(config, steps_per_epoch, device)
    if checkpoint is not None:
        try:
            state.restore(checkpoint)
        except (RuntimeError, KeyError, ValueError) as error:  # torch's load_state_dict mismatches
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise FerError(
                f"{out / 'last.pt'} does not fit the {config.arch} run its own settings describe ({reason})"
            ) from None
        log.info(f"resumed from {out / 'last.pt'} after epoch {state.epoch}/{config.epochs}")
    net = state.model
    if context.is_distributed:
        net = DistributedDataParallel(state.model, device_ids=[device] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)

    # ------------------------------------------------------------ run folder (rank 0 writes everything)
    run_log = None
    if context.is_main:
        # Resumed, metrics.jsonl keeps only what the checkpoint holds (nothing, when there was no last.pt).
        resuming = checkpoint is not None or config.resume or restarted_by_torchrun()
        checkpoint_row = checkpoint.get(METRICS_ROW_KEY) if checkpoint is not None else None
        run_log = RunLog(out, config, resumed_after=state.epoch if resuming else None, checkpoint_row=checkpoint_row)
        crop = training_input_size(config.arch)
        crops = f" as random {crop}x{crop} crops, validated on their centres" if crop < INPUT_SIZE else ""
        log.info(
            f"training {config.arch} on {len(train_set)} images{crops} ({len(val_set)} validation), "
            f"{context.world_size} process(es) on {device.type}"
            f"{f' ({context.backend})' if context.backend else ''}, amp {amp.mode} ({amp.reason}), "
            f"{steps_per_epoch} steps/epoch of {config.batch_size} x {context.world_size}"
        )

    # ------------------------------------------------------------ the loop
    for epoch in range(state.epoch, config.epochs):
        epoch_start = time.perf_counter()
        train_loss, train_accuracy = train_one_epoch(net, state, train, steps_per_epoch, config, context)
        epoch_seconds = time.perf_counter() - epoch_start
        average_buffers(state.model, context)  # every rank evaluates and saves the same model
        average_buffers(state.ema.module, context)
        val_loss, val_accuracy = evaluate_accuracy(state.ema.module, val.images, val.labels, config, context)
        improved = val_accuracy > state.best_accuracy
        state.epoch, state.best_accuracy = epoch + 1, max(state.best_accuracy, val_accuracy)
        if run_log is not None:
            row = run_log.epoch_row(
                state.epoch,
                epoch_seconds,
                steps_per_epoch * config.batch_size * context.world_size,
                train_loss=train_loss,
                train_accuracy=train_accuracy,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                best_val_accuracy=state.best_accuracy,
                lr=state.scheduler.get_last_lr()[0],
            )
            # Checkpoints first, each holding the epoch's log line, then the log: metrics.jsonl never
            # lists an epoch that last.pt does not hold, and a kill between the two loses no line (the
            # resumed run writes it from last.pt).
            saved = {**state.checkpoint(config, val_accuracy), METRICS_ROW_KEY: row}
            # best.pt first: killed between the two saves, last.pt still says the older best, so the
            # resumed run replays this epoch, finds it better again and writes both.
            if improved:
                save_checkpoint(saved, out / "best.pt")
            save_checkpoint(saved, out / "last.pt")
            run_log.append(row)
        barrier(context)  # no rank starts the next epoch (or exits) before the checkpoint exists

    if run_log is not None:
        run_log.close()
        log.info(f"done: best validation accuracy {state.best_accuracy:.2%}; checkpoints in {out}")
    return state.model, state.ema


def train_one_epoch(
    net: nn.Module,
    state: TrainingState,
    train: DeviceSplit,
    steps: int,
    config: TrainConfig,
    context: DistributedContext,
) -> tuple[float, float]:
    """Epoch `state.epoch` (0-based): one pass over this rank's shard of `train`, `steps` batches;
    returns (mean loss, accuracy) over all ranks. `net` is `state.model`, or its DDP/compiled wrapper."""
    device, epoch, model = context.device, state.epoch, state.model
    net.train()
    # All randomness of an epoch derives from (seed, epoch, rank): a run resumed at an epoch boundary
    # replays exactly what an uninterrupted run would have done, on every rank.
    shard = epoch_shard(
        len(train.labels), config.seed, epoch, context.rank, context.world_size, steps * config.batch_size
    ).to(device)
    torch.manual_seed(config.seed * 100_003 + epoch * 1_009 + context.rank)  # dropout
    augment_generator = torch.Generator(device=device).manual_seed(config.seed * 7_919 + epoch * 131 + context.rank)
    mix_rng = random.Random(config.seed * 6_151 + epoch * 389 + context.rank)
    autocast = autocast_context(config.amp, device)

    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    progress = _progress_bar(steps, f"epoch {epoch + 1}/{config.epochs}", context)
    images = _captured(train.images, shard, config, epoch, context.rank) if config.capture else train.images
    crop = training_input_size(config.arch)  # 48, or a crop-trained architecture's random window
    step_start, seen = time.perf_counter(), 0
    for step in range(steps):
        batch = shard[step * config.batch_size : (step + 1) * config.batch_size]
        x = augment_batch(images[batch].float(), config.augment, augment_generator, crop)  # (B, 1, crop, crop)
        y = train.labels[batch]
        mixed = mix_batch(x, config.mix, config.mix_alpha, mix_rng)
        x = mixed.pixels.contiguous(memory_format=torch.channels_last)
        with autocast:
            logits = net(x)  # (B, 7)
        soft = None if train.soft_targets is None else train.soft_targets[batch]
        loss = batch_loss(
            logits.float(), y, mixed, config.label_smoothing, soft, config.distill_weight, config.distill_temperature
        )
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.unscale_(state.optimizer)  # clip the true gradients, not the fp16-scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        state.ema.update(model)
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()  # against each face's own label, also when mixed
        seen += len(y)
        if (step % 10 == 9 or step == steps - 1) and not bool(torch.isfinite(loss_sum)):
            # A GPU sync every 10 steps: a diverged run stops within 10 steps, before any checkpoint.
            raise FerError(
                f"the training loss became {loss_sum.item() / seen} in epoch {epoch + 1} (by step {step + 1}, "
                f"learning rate {state.scheduler.get_last_lr()[0]:.3g}); nothing of this epoch was saved. "
                f"Try a lower --lr (this run: {config.lr}), or --amp off"
            )
        if progress is not None and (step % 10 == 9 or step == steps - 1):
            # .item() waits for the GPU: only every 10 steps, only on rank 0.
            elapsed = time.perf_counter() - step_start
            progress.set_postfix(
                loss=f"{loss_sum.item() / seen:.3f}",
                acc=f"{correct.item() / seen:.1%}",
                img_s=f"{seen * context.world_size / elapsed:.0f}",
            )
            progress.update(step + 1 - progress.n)
    if progress is not None:
        progress.close()
    return mean_across_ranks(loss_sum.item(), correct.item(), seen, context)


def _captured(images: torch.Tensor, shard: torch.Tensor, config: TrainConfig, epoch: int, rank: int) -> torch.Tensor:
    """This epoch's training faces with --capture's share of this rank's shard captured, drawn from (seed,
    epoch, rank) like the rest: on the CPU, with OpenCV, 5.6 s an epoch for half of FER2013 beside
    another trainer on 2 cores (an epoch is about 190 s)."""
    rng = np.random.default_rng([config.seed, epoch, rank, 4_111])
    capture = Capture(framing_errors=load_framing_errors())
    chosen, faces = captured_faces(images[:, 0].cpu().numpy(), shard.cpu().numpy(), config.capture, rng, capture)
    captured = images.clone()
    captured[torch.from_numpy(chosen).to(images.device), 0] = torch.from_numpy(faces).to(images.device)
    return captured


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig, context: DistributedContext
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on a split; each rank scores a disjoint shard."""
    model.eval()
    indices = torch.arange(context.rank, len(labels), context.world_size, device=images.device)
    loss_sum = torch.zeros((), device=images.device)
    correct = torch.zeros((), device=images.device, dtype=torch.long)
    with autocast_context(config.amp, context.device):
        for start in range(0, len(indices), config.eval_batch_size):
            batch = indices[start : start + config.eval_batch_size]
            x = images[batch].float().contiguous(memory_format=torch.channels_last)
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, labels[batch], reduction="sum")
            correct += (logits.argmax(1) == labels[batch]).sum()
    # One device sync for the whole split, not one per batch.
    return mean_across_ranks(loss_sum.item(), correct.item(), len(indices), context)


# ---------------------------------------------------------------- helpers


def _claim_run_folder(out: Path, config: TrainConfig, context: DistributedContext) -> None:
    """Refuse to write over a run that is already in `out`, unless told to continue it (--resume,
    or a worker restarted by torchrun) or to replace it (--overwrite)."""
    found = [name for name in RUN_FILES if (out / name).exists()]
    if not found:
        return
    if config.overwrite:
        if context.is_main:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(out / "tensorboard", ignore_errors=True)
            log.info(f"--overwrite: removed the run that was in {out} ({', '.join(found)})")
        barrier(context)  # no rank looks at the folder before it is empty
        return
    if config.resume or restarted_by_torchrun():
        return  # from last.pt; without one, the run died before its first checkpoint and starts anew
    raise FerError(
        f"{out} already holds a run ({', '.join(found)}): --resume continues it, --overwrite replaces it, "
        "or choose another --out"
    )


def _resumed_config(requested: TrainConfig, checkpoint: dict) -> TrainConfig:
    """The checkpoint's settings, except those a resumed run may change, and except --epochs when it
    asks a finished run for more: then the run is extended (see _extend)."""
    saved = TrainConfig.from_dict(checkpoint["config"])
    given = getattr(requested, "given", None)  # None: a TrainConfig built in code means every field

    def asked_for(name: str) -> bool:
        return given is None or name in given

    if asked_for("epochs") and requested.epochs > saved.epochs and checkpoint["epoch"] >= saved.epochs:
        _extend(saved, requested.epochs)
    ignored = [
        name
        for name, value in requested.to_dict().items()
        if name not in RESUME_MAY_CHANGE + RESUME_MAY_CHANGE_WHEN_GIVEN
        and asked_for(name)
        and value != saved.to_dict()[name]
    ]
    if ignored:
        log.warning(f"resuming with the checkpoint's settings; ignoring changed {', '.join(ignored)}")
    for name in RESUME_MAY_CHANGE:
        setattr(saved, name, getattr(requested, name))
    for name in RESUME_MAY_CHANGE_WHEN_GIVEN:
        if asked_for(name):
            setattr(saved, name, getattr(requested, name))
    return saved


def _config_of_unstarted_run(requested: TrainConfig, saved_file: Path) -> TrainConfig:
    """--resume of a run stopped before its first checkpoint: its config.json says what it was asked
    to train, and starts it again; settings given now override it, and the log says which."""
    try:
        saved = TrainConfig.from_dict(json.loads(saved_file.read_text()))
    except (OSError, ValueError, TypeError) as error:
        raise FerError(f"cannot read {saved_file} to resume its run: {error}") from None
    given = getattr(requested, "given", None)  # None: a TrainConfig built in code means every field
    overridden = []
    for name, value in requested.to_dict().items():
        if name in RESUME_MAY_CHANGE or given is None or name in given:
            if name not in RESUME_MAY_CHANGE and value != getattr(saved, name):
                overridden.append(f"{name} {getattr(saved, name)} -> {value}")
            setattr(saved, name, getattr(requested, name))
    log.info(
        f"no {saved_file.parent / 'last.pt'} yet (stopped before its first epoch ended): starting its run again "
        f"from {saved_file.name}" + (f", with what was given now: {', '.join(overridden)}" if overridden else "")
    )
    saved.validate()
    return saved


def _extend(saved: TrainConfig, epochs: int) -> None:
    """A finished run trained for more epochs: the cosine schedule is stretched over the new total, so
    the learning rate, which had decayed to 0, rises to where the longer schedule stands and decays
    again. The result is not the run that --epochs N from the start would have given."""
    warmup = min(saved.warmup_epochs, saved.epochs)
    now = 0.5 * (1 + math.cos(math.pi * (saved.epochs - warmup) / max(epochs - warmup, 1e-9)))
    log.info(
        f"extending the finished run from {saved.epochs} to {epochs} epochs: the cosine schedule now spans "
        f"{epochs} epochs, so the learning rate restarts at {now:.0%} of its peak and decays to 0 again"
    )
    saved.epochs = epochs


def _progress_bar(steps: int, description: str, context: DistributedContext):
    # Progress bars are for terminals: under nohup, in CI or in a log file, tqdm's carriage-return
    # updates would make one endless line; the one log line per epoch says everything there.
    if not context.is_main or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=steps, desc=description, leave=False, dynamic_ncols=True, mininterval=1.0)


if __name__ == "__main__":
    sys.exit(main())
