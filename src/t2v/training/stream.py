"""An endless, resumable stream of training batches, epoch after epoch.

The order of epoch e is torch's `DistributedSampler` permutation for (seed, e); process r of n
takes every n-th index of it. The position is (epoch, batches taken in that epoch), so a resumed
run continues with exactly the batch the interrupted run would have taken next, without decoding
the skipped ones. Each epoch gets a fresh DataLoader with its own generator, so creating one never
draws from torch's global RNG (which the training randomness shares).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from t2v.errors import T2VError


def collate_samples(items: list[dict]) -> dict[str, Any]:
    """Items {video (C, F, H, W), caption, fps} -> {video (B, C, F, H, W), caption: list, fps (B,)}."""
    return {
        "video": torch.stack([it["video"] for it in items]),  # (B, C, F, H, W)
        "caption": [it["caption"] for it in items],
        "fps": torch.tensor([float(it.get("fps", 8.0)) for it in items], dtype=torch.float32),  # (B,)
    }


class BatchStream:
    """`next(stream)` gives the next batch; `state_dict()` / `load_state_dict()` give and set the position."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        collate_fn: Callable[[list], Any] = collate_samples,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        # drop_last=False pads the last round by repeating indices, so a 1-clip data set feeds every process.
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False)
        if self.sampler.num_samples < batch_size:
            raise T2VError(
                f"the data set has {len(dataset)} samples: fewer than batch_size {batch_size} per process "
                f"({world_size} processes); lower data.batch_size or add data"
            )
        self.epoch = 0
        self.taken = 0
        self._it: Optional[Iterator] = None

    def batches_per_epoch(self) -> int:
        return self.sampler.num_samples // self.batch_size  # the last incomplete batch is dropped

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.taken = int(state["epoch"]), int(state["batch"])
        self._it = None

    def _start(self) -> None:
        self.sampler.set_epoch(self.epoch)
        if hasattr(self.dataset, "set_epoch"):  # new random start offsets per epoch (ClipDataset)
            self.dataset.set_epoch(self.epoch)
        order = list(self.sampler)[self.taken * self.batch_size:]  # this process's indices, skipping taken batches
        loader = DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=order, drop_last=True,
            num_workers=self.num_workers, collate_fn=self.collate_fn,
            generator=torch.Generator().manual_seed(self.epoch),
        )
        self._it = iter(loader)

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._start()
        try:
            batch = next(self._it)
        except StopIteration:
            self.epoch, self.taken = self.epoch + 1, 0
            self._start()
            batch = next(self._it)
        self.taken += 1
        return batch
