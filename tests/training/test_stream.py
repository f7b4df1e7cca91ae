"""The resumable batch stream: a stream restored at a position continues exactly; processes read
disjoint shares; epochs follow torch's DistributedSampler order."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset, DistributedSampler

from t2v.errors import T2VError
from t2v.training.stream import BatchStream


class Numbers(Dataset):
    """Item i is a (3, 1, 1, 1) clip filled with i; caption 'i'; records the epoch it was told."""

    def __init__(self, n: int) -> None:
        self.n, self.epochs = n, []

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __getitem__(self, i: int) -> dict:
        return {"video": torch.full((3, 1, 1, 1), float(i)), "caption": str(i), "fps": 8.0}


def ids(batch) -> list[int]:
    return [int(c) for c in batch["caption"]]


def test_order_is_distributed_samplers_epoch_after_epoch():
    ds = Numbers(10)
    stream = BatchStream(ds, batch_size=3, seed=5)
    got = [ids(next(stream)) for _ in range(6)]  # 3 batches per epoch (the 10th item is dropped)
    for epoch in (0, 1):
        s = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=5)
        s.set_epoch(epoch)
        order = list(s)
        assert got[3 * epoch: 3 * epoch + 3] == [order[0:3], order[3:6], order[6:9]]
    assert got[0] != got[3]  # a new permutation each epoch
    assert ds.epochs[:2] == [0, 1]
    batch = next(stream)
    assert batch["video"].shape == (3, 3, 1, 1, 1)  # (B, C, F, H, W)
    assert batch["video"][:, 0, 0, 0, 0].tolist() == [float(i) for i in ids(batch)]


@pytest.mark.parametrize("stop", [1, 2, 3, 4, 7])
def test_resumed_stream_continues_exactly(stop):
    full = BatchStream(Numbers(10), batch_size=3, seed=1)
    reference = [ids(next(full)) for _ in range(10)]
    first = BatchStream(Numbers(10), batch_size=3, seed=1)
    for _ in range(stop):
        next(first)
    resumed = BatchStream(Numbers(10), batch_size=3, seed=1)
    resumed.load_state_dict(first.state_dict())
    assert [ids(next(resumed)) for _ in range(10 - stop)] == reference[stop:]


def test_processes_read_disjoint_shares():
    a = BatchStream(Numbers(12), batch_size=2, seed=0, rank=0, world_size=2)
    b = BatchStream(Numbers(12), batch_size=2, seed=0, rank=1, world_size=2)
    ia = sum((ids(next(a)) for _ in range(3)), [])
    ib = sum((ids(next(b)) for _ in range(3)), [])
    assert set(ia).isdisjoint(ib) and sorted(ia + ib) == list(range(12))


def test_one_clip_feeds_every_process():
    streams = [BatchStream(Numbers(1), batch_size=1, seed=0, rank=r, world_size=2) for r in range(2)]
    assert [ids(next(s)) for s in streams] == [[0], [0]]


def test_too_small_data_set_is_an_error():
    with pytest.raises(T2VError, match="fewer than batch_size 4"):
        BatchStream(Numbers(3), batch_size=4, seed=0)


def test_stream_leaves_global_rng_alone():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    stream = BatchStream(Numbers(10), batch_size=3, seed=0)
    for _ in range(5):  # crosses an epoch: a new DataLoader
        next(stream)
    assert torch.equal(torch.rand(4), expected)
