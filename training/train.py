"""Train a FER2013 emotion classifier with DistributedDataParallel and automatic mixed precision.

One process (CPU, one GPU or Apple MPS):
    python -m training.train --data ../shared/data/fer2013.zip --epochs 2 --max-samples 4000 --out /tmp/run
One machine, N processes (N GPUs with NCCL, or N CPU processes with gloo):
    torchrun --standalone --nproc_per_node=2 -m training.train --data ../shared/data/fer2013.zip --out /tmp/run
Several machines (run on each, with its own --node-rank not needed under c10d):
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 --rdzv-id=fer1 \
        -m training.train --data fer2013.zip --out runs/big
Survive crashed workers: torchrun --max-restarts=3 ...; restarted workers resume from OUT/last.pt.

Every rank holds the whole training set on its device as uint8 (28,709 x 48 x 48 = 66 MB) and takes a
disjoint shard of one shared, seeded permutation per epoch. Augmentation runs on whole batches on the
device. The EMA of the weights is evaluated on the validation split (PublicTest) after every epoch;
`best.pt` is the epoch with the best validation accuracy.
"""

import json
import logging
import math
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fer.datasets import TRAIN, VALIDATION, LabeledImages, load_splits, select_split, stratified_subset
from fer.errors import FerError
from fer.labels import EMOTIONS
from fer.models import build_model
from fer.weights import load_checkpoint
from training.augment import augment_batch, mix_batch
from training.checkpoint import save_checkpoint
from training.config import TrainConfig, parse_config
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

log = logging.getLogger("training")

# Config fields that may differ when resuming; every other field comes from the checkpoint so that
# the resumed run follows the same schedule.
RESUME_MAY_CHANGE = ("data", "out", "device", "resume", "compile", "dist_timeout_minutes", "eval_batch_size")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        train(parse_config(argv))
    except FerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def train(config: TrainConfig) -> tuple[nn.Module, ExponentialMovingAverage]:
    """Run the whole training; return the final model and its EMA (the same on every rank)."""
    context = init_distributed(config.device, config.dist_timeout_minutes)
    try:
        return _train(config, context)
    finally:
        close_distributed()  # also on errors, so no rank is left waiting in a collective


def _train(config: TrainConfig, context: DistributedContext) -> tuple[nn.Module, ExponentialMovingAverage]:
    device = context.device
    out = Path(config.out)
    if not context.is_main:
        log.setLevel(logging.WARNING)

    # ------------------------------------------------------------ resume: the checkpoint's config wins
    checkpoint = None
    if config.resume or restarted_by_torchrun():
        if (out / "last.pt").exists():
            checkpoint = load_checkpoint(out / "last.pt")
            config = _resumed_config(config, checkpoint)
        else:
            log.info(f"no {out / 'last.pt'} to resume from; starting from scratch")

    # ------------------------------------------------------------ data, whole splits on the device
    splits = load_splits(config.data)
    train_set = select_split(splits, TRAIN, config.data)
    if config.max_samples:
        train_set = stratified_subset(train_set, config.max_samples, config.seed)
    val_set = select_split(splits, VALIDATION, config.data)
    train_x, train_y = _to_device(train_set, device)  # (N, 1, 48, 48) uint8, (N,) int64
    val_x, val_y = _to_device(val_set, device)
    steps_per_epoch = len(train_set) // (config.batch_size * context.world_size)
    if steps_per_epoch == 0:
        raise FerError(
            f"{len(train_set)} training images are fewer than one batch of {config.batch_size} "
            f"x {context.world_size} processes; lower --batch-size"
        )

    # ------------------------------------------------------------ model, EMA, optimizer, schedule, scaler
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = build_model(config.arch).to(device, memory_format=torch.channels_last)
    ema = ExponentialMovingAverage(model, config.ema_decay)
    optimizer = _make_optimizer(model, config)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = max(1, round(config.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(warmup_steps, total_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    start_epoch, best_accuracy = 0, 0.0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        ema.load_state_dict(checkpoint["ema"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        start_epoch, best_accuracy = checkpoint["epoch"], checkpoint["best_accuracy"]
        if context.is_main:
            _drop_metrics_after(out / "metrics.jsonl", start_epoch)
        log.info(f"resumed from {out / 'last.pt'} after epoch {start_epoch}/{config.epochs}")

    net = model
    if context.is_distributed:
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)

    # ------------------------------------------------------------ run folder (rank 0 writes everything)
    writer = None
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        writer = _tensorboard_writer(out)
        log.info(
            f"training {config.arch} on {len(train_set)} images ({len(val_set)} validation), "
            f"{context.world_size} process(es) on {device.type}, amp {config.amp}, "
            f"{steps_per_epoch} steps/epoch of {config.batch_size} x {context.world_size}"
        )
    # A run trained in legs reports its whole time: the clocks go on from the last logged epoch.
    resumed_main = checkpoint is not None and context.is_main  # only rank 0 reads or writes metrics.jsonl
    elapsed_before, cpu_before = _time_logged_before(out / "metrics.jsonl") if resumed_main else (0.0, 0.0)
    started, cpu_started = time.perf_counter() - elapsed_before, time.process_time() - cpu_before

    # ------------------------------------------------------------ the loop
    for epoch in range(start_epoch, config.epochs):
        epoch_start = time.perf_counter()
        train_loss, train_accuracy = train_one_epoch(
            net, model, ema, optimizer, scheduler, scaler, train_x, train_y, epoch, steps_per_epoch, config, context
        )
        epoch_seconds = time.perf_counter() - epoch_start
        average_buffers(model, context)  # every rank evaluates and saves the same model
        average_buffers(ema.module, context)
        val_loss, val_accuracy = evaluate_accuracy(ema.module, val_x, val_y, config, context)
        improved = val_accuracy > best_accuracy
        best_accuracy = max(best_accuracy, val_accuracy)
        if context.is_main:
            images_per_second = steps_per_epoch * config.batch_size * context.world_size / epoch_seconds
            row = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_accuracy": train_accuracy,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "best_val_accuracy": best_accuracy,
                "lr": scheduler.get_last_lr()[0],
                "images_per_second": images_per_second,
                "epoch_seconds": epoch_seconds,
                "elapsed_seconds": time.perf_counter() - started,
                # This process's CPU time (all its threads), so CPU-hours stay honest whatever else
                # ran on the machine; on N processes the run used about N times as much.
                "cpu_seconds": time.process_time() - cpu_started,
            }
            with open(out / "metrics.jsonl", "a") as metrics:
                metrics.write(json.dumps(row) + "\n")
            for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "images_per_second"):
                writer.add_scalar(name, row[name], epoch + 1)
            writer.flush()
            log.info(
                f"epoch {epoch + 1}/{config.epochs}  train loss {train_loss:.3f} acc {train_accuracy:.1%}  "
                f"val loss {val_loss:.3f} acc {val_accuracy:.2%} (best {best_accuracy:.2%})  "
                f"{images_per_second:.0f} img/s  {epoch_seconds:.0f}s"
            )
            state = {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch + 1,
                "best_accuracy": best_accuracy,
                "val_accuracy": val_accuracy,
                "rng": {"torch": torch.get_rng_state()},
                "config": config.to_dict(),
                "arch": config.arch,
                "labels": list(EMOTIONS),
            }
            save_checkpoint(state, out / "last.pt")
            if improved:
                save_checkpoint(state, out / "best.pt")
        barrier(context)  # no rank starts the next epoch (or exits) before the checkpoint exists

    if writer is not None:
        writer.close()
        log.info(f"done: best validation accuracy {best_accuracy:.2%}; checkpoints in {out}")
    return model, ema


def train_one_epoch(
    net, model, ema, optimizer, scheduler, scaler, train_x, train_y, epoch, steps, config, context
) -> tuple[float, float]:
    """One pass over this rank's shard; returns (mean loss, accuracy) summed over all ranks."""
    device = context.device
    net.train()
    # All randomness of an epoch derives from (seed, epoch, rank): a run resumed at an epoch boundary
    # replays exactly what an uninterrupted run would have done, on every rank.
    order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
    shard = order[context.rank :: context.world_size][: steps * config.batch_size].to(device)
    torch.manual_seed(config.seed * 100_003 + epoch * 1_009 + context.rank)  # dropout
    augment_generator = torch.Generator(device=device).manual_seed(config.seed * 7_919 + epoch * 131 + context.rank)
    mix_rng = random.Random(config.seed * 6_151 + epoch * 389 + context.rank)
    autocast = _autocast(config.amp, device)

    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    progress = _progress_bar(steps, f"epoch {epoch + 1}/{config.epochs}", context)
    step_start, seen = time.perf_counter(), 0
    for step in range(steps):
        batch = shard[step * config.batch_size : (step + 1) * config.batch_size]
        x = augment_batch(train_x[batch].float(), config.augment, augment_generator)  # (B, 1, 48, 48)
        y = train_y[batch]
        mixed = mix_batch(x, config.mix, config.mix_alpha, mix_rng)
        x = mixed.pixels.contiguous(memory_format=torch.channels_last)
        with autocast:
            logits = net(x)  # (B, 7)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        if mixed.weight < 1.0:
            partner_loss = F.cross_entropy(logits.float(), y[mixed.partner], label_smoothing=config.label_smoothing)
            loss = mixed.weight * loss + (1.0 - mixed.weight) * partner_loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        ema.update(model)
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()  # against each face's own label, also when mixed
        seen += len(y)
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


@torch.no_grad()
def evaluate_accuracy(model, images, labels, config, context) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on a split; each rank scores a disjoint shard."""
    model.eval()
    indices = torch.arange(context.rank, len(labels), context.world_size, device=images.device)
    loss_sum = torch.zeros((), device=images.device)
    correct = torch.zeros((), device=images.device, dtype=torch.long)
    with _autocast(config.amp, context.device):
        for start in range(0, len(indices), config.eval_batch_size):
            batch = indices[start : start + config.eval_batch_size]
            x = images[batch].float().contiguous(memory_format=torch.channels_last)
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, labels[batch], reduction="sum")
            correct += (logits.argmax(1) == labels[batch]).sum()
    # One device sync for the whole split, not one per batch.
    return mean_across_ranks(loss_sum.item(), correct.item(), len(indices), context)


# ---------------------------------------------------------------- helpers


def _to_device(data: LabeledImages, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(data.images).unsqueeze(1).to(device)  # (N, 1, 48, 48) uint8
    return images, torch.from_numpy(data.labels).to(device)


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # Weight decay on norm weights and biases only shrinks scales that BN re-learns; skip them.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)


def _warmup_cosine(warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _autocast(amp: str, device: torch.device):
    if amp == "off":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _resumed_config(requested: TrainConfig, checkpoint: dict) -> TrainConfig:
    saved = TrainConfig.from_dict(checkpoint["config"])
    ignored = [
        name
        for name, value in requested.to_dict().items()
        if name not in RESUME_MAY_CHANGE and value != saved.to_dict()[name]
    ]
    if ignored:
        log.warning(f"resuming with the checkpoint's settings; ignoring changed {', '.join(ignored)}")
    for name in RESUME_MAY_CHANGE:
        setattr(saved, name, getattr(requested, name))
    return saved


def _time_logged_before(path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) the run had logged by its last epoch in metrics.jsonl. Runs logged
    before cpu_seconds existed count their CPU time from the resume on."""
    if not path.exists():
        return 0.0, 0.0
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return 0.0, 0.0
    return float(rows[-1].get("elapsed_seconds", 0.0)), float(rows[-1].get("cpu_seconds", 0.0))


def _drop_metrics_after(path: Path, epoch: int) -> None:
    """A crash between logging an epoch and checkpointing it would log that epoch twice on resume."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line)["epoch"] <= epoch]
    if len(kept) != len(rows):
        path.write_text("".join(line + "\n" for line in kept))


def _progress_bar(steps: int, description: str, context: DistributedContext):
    # Progress bars are for terminals: under nohup, in CI or in a log file, tqdm's carriage-return
    # updates would make one endless line; the one log line per epoch says everything there.
    if not context.is_main or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=steps, desc=description, leave=False, dynamic_ncols=True, mininterval=1.0)


def _tensorboard_writer(out: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(out / "tensorboard"))


if __name__ == "__main__":
    sys.exit(main())
