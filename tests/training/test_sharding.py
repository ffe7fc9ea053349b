"""Each process's share of the training faces: disjoint across ranks, covering all but the remainder,
a new order every epoch, the same order on every rank. The real torchrun workers' indices are checked
in test_train.py::test_torchrun_two_processes_end_with_identical_weights."""

import pytest
import torch

from training.sharding import epoch_shard


def shards(size: int, world_size: int, length: int, epoch: int = 0, seed: int = 0) -> list[torch.Tensor]:
    return [epoch_shard(size, seed, epoch, rank, world_size, length) for rank in range(world_size)]


@pytest.mark.parametrize("size, world_size, length", [(100, 1, 96), (100, 2, 48), (101, 3, 32), (64, 4, 16)])
def test_the_ranks_shards_are_disjoint_and_miss_only_the_remainder(size, world_size, length):
    parts = shards(size, world_size, length)
    assert all(part.shape == (length,) and part.dtype == torch.int64 for part in parts)
    everything = torch.cat(parts)
    assert len(set(everything.tolist())) == world_size * length  # no face read twice in an epoch
    assert 0 <= everything.min() and everything.max() < size


def test_every_face_is_read_in_an_epoch_when_the_shards_fill_the_split():
    assert sorted(torch.cat(shards(96, 3, 32)).tolist()) == list(range(96))


def test_each_epoch_has_its_own_order_and_the_left_out_faces_change():
    first, second = torch.cat(shards(100, 2, 48, epoch=0)), torch.cat(shards(100, 2, 48, epoch=1))
    assert not torch.equal(first, second)
    assert set(range(100)) - set(first.tolist()) != set(range(100)) - set(second.tolist())
    # Over a few epochs every face is seen, though each epoch leaves 4 out.
    seen = set().union(*(torch.cat(shards(100, 2, 48, epoch=e)).tolist() for e in range(6)))
    assert seen == set(range(100))


def test_the_order_depends_on_seed_and_epoch_only():
    assert torch.equal(epoch_shard(50, 3, 7, 1, 2, 20), epoch_shard(50, 3, 7, 1, 2, 20))  # replayed on resume
    assert not torch.equal(epoch_shard(50, 3, 7, 1, 2, 20), epoch_shard(50, 4, 7, 1, 2, 20))
    # Rank r's faces are every W-th of the one permutation, from position r: the ranks agree on it.
    order = torch.randperm(50, generator=torch.Generator().manual_seed(3 * 100_003 + 7))
    assert torch.equal(epoch_shard(50, 3, 7, 1, 2, 20), order[1::2][:20])


def test_impossible_shards_are_refused():
    for rank in (-1, 2, 3):
        with pytest.raises(ValueError, match=f"rank {rank} is not one of 2 processes"):
            epoch_shard(10, 0, 0, rank, 2, 4)
    with pytest.raises(ValueError, match="2 shards of 6 faces do not fit in 10"):
        epoch_shard(10, 0, 0, 0, 2, 6)
    assert epoch_shard(10, 0, 0, 1, 2, 5).shape == (5,)
