"""A torchrun worker for the tests: runs `training.train` and records what each rank ended with.

Environment:
- FER_TEST_REPORT_DIR: each rank writes its final model and EMA weights to rank<RANK>.pt there;
- FER_TEST_SHARD_DIR: each rank records the training-face indices it read in each epoch there
  (rank<RANK>-epoch<E>.pt), as training.sharding.epoch_shard gave them to the trainer;
- FER_TEST_DIE_AT_EPOCH=N with FER_TEST_DIE_MARKER=PATH: rank 0 exits abruptly when epoch N (0-based)
  is about to start, once (the marker file records that it already died). Epoch N-1's checkpoint
  has been written by then, so a restarted or resumed run must continue from it.

The fault is injected here, around the real training code, so that the trainer carries no test hooks.
"""

import inspect
import os
import sys
from pathlib import Path

import torch

import training.train as train_module

die_at = os.environ.get("FER_TEST_DIE_AT_EPOCH")
marker = Path(os.environ.get("FER_TEST_DIE_MARKER", "/nonexistent"))
real_train_one_epoch = train_module.train_one_epoch


def train_one_epoch_that_dies_once(*args, **kwargs):
    epoch = inspect.signature(real_train_one_epoch).bind(*args, **kwargs).arguments["state"].epoch
    if die_at is not None and epoch == int(die_at) and os.environ.get("RANK", "0") == "0" and not marker.exists():
        marker.write_text("died once\n")
        os._exit(17)  # no cleanup, no checkpoint: as abrupt as a crash or an OOM kill
    return real_train_one_epoch(*args, **kwargs)


train_module.train_one_epoch = train_one_epoch_that_dies_once
real_epoch_shard = train_module.epoch_shard


def epoch_shard_recorded(size, seed, epoch, rank, world_size, length):
    shard = real_epoch_shard(size, seed, epoch, rank, world_size, length)
    shard_dir = os.environ.get("FER_TEST_SHARD_DIR")
    if shard_dir:
        torch.save(shard.clone(), Path(shard_dir) / f"rank{rank}-epoch{epoch}.pt")
    return shard


train_module.epoch_shard = epoch_shard_recorded

if __name__ == "__main__":
    import logging

    from training.config import parse_config

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # as training.train.main does
    model, ema = train_module.train(parse_config(sys.argv[1:]))
    report_dir = os.environ.get("FER_TEST_REPORT_DIR")
    if report_dir:
        rank = os.environ.get("RANK", "0")
        torch.save({"model": model.state_dict(), "ema": ema.module.state_dict()}, Path(report_dir) / f"rank{rank}.pt")
