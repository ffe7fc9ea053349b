"""Which training faces each process reads in an epoch.

One permutation of the whole training set per epoch, drawn from (seed, epoch) alone, so that every
rank draws the same one without communicating and a run resumed at an epoch boundary replays it; rank
r of W takes every W-th face from position r. The shards are disjoint, together they cover all but
the remainder that does not fill a whole step on every rank, and that remainder moves from epoch to
epoch. (torch's DistributedSampler does the same with `set_epoch`; this one needs no DataLoader,
since the whole split already lives on the device.)
"""

import torch

PERMUTATION_SEED_STRIDE = 100_003  # a prime larger than any epoch count: (seed, epoch) pairs never collide


def epoch_shard(size: int, seed: int, epoch: int, rank: int, world_size: int, length: int) -> torch.Tensor:
    """The indices (into a split of `size` faces) that `rank` trains on in `epoch`, in order: (length,)
    int64 on the CPU. `length` is steps x batch size, at most size // world_size."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not one of {world_size} processes")
    if length * world_size > size:
        raise ValueError(f"{world_size} shards of {length} faces do not fit in {size}")
    generator = torch.Generator().manual_seed(seed * PERMUTATION_SEED_STRIDE + epoch)
    order = torch.randperm(size, generator=generator)
    return order[rank::world_size][:length]
