"""The one skip-and-count mechanism of every file-backed video-text data set.

A data set is a list of entries (video path, caption); each access decodes one video and samples
it. An entry that cannot be used (missing, unreadable, truncated, too short) is skipped with one
warning line and counted, and the access moves on to the next index (deterministically), so one
bad file never stops a training run. A data set with no usable clip raises `T2VError`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from t2v.data.sampling import ClipTooShort, FrameSampling, item_generator, sample_clip
from t2v.data.video_io import DEFAULT_FOLDER_FPS, VideoReadError, read_video
from t2v.errors import T2VError

log = logging.getLogger("t2v.data")


@dataclass(frozen=True)
class ClipEntry:
    """One video of a data set: where it is, its caption, and the name warnings use for it."""

    path: Path
    caption: str
    source: str


@dataclass(frozen=True)
class Skip:
    """Why an entry was left out. `kind`: "missing", "no caption", "unreadable", "too short" or "unusable"."""

    source: str
    kind: str
    detail: str


class ClipDataset(Dataset):
    """Base class: entries decoded with `read_video` and sampled with `sample_clip` on access.

    Items are dicts `{video: float (C, F, H, W) in [-1, 1], caption: str, source: str, fps: float}`
    (`fps` is the rate of the sampled frames, for Make-A-Video's fps conditioning).
    Random start offsets come from a generator seeded by (seed, epoch, index): the same index gives
    the same sample until `set_epoch` changes the epoch.

    Folders of frames play at `folder_fps`. Skips are counted per process: with DataLoader workers, each worker keeps its own tally.
    """

    def __init__(
        self,
        entries: list[ClipEntry],
        sampling: FrameSampling,
        *,
        description: str,
        seed: int = 0,
        skipped_early: list[Skip] | None = None,
        folder_fps: float = DEFAULT_FOLDER_FPS,
    ) -> None:
        self.entries = list(entries)
        self.folder_fps = folder_fps
        self.sampling = sampling
        self.description = description
        self.seed = seed
        self.epoch = 0
        self._skips: list[Skip] = list(skipped_early or [])
        self._bad: set[int] = set()
        self._total = len(self.entries) + len(self._skips)
        if not self.entries:
            raise T2VError(f"no usable clip in {description}: {self.skip_summary()}")

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        """Draw other random start offsets (as `DistributedSampler.set_epoch`)."""
        self.epoch = epoch

    @property
    def skipped(self) -> list[Skip]:
        """Every entry left out so far, in the order it was found."""
        return list(self._skips)

    def skip_counts(self) -> dict[str, int]:
        """How many entries were left out, per kind."""
        return dict(Counter(s.kind for s in self._skips))

    def skip_summary(self) -> str:
        """One line: 'skipped 2 of 5 clips (1 unreadable, 1 too short)'."""
        if not self._skips:
            return f"skipped 0 of {self._total} clips"
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.skip_counts().items()))
        return f"skipped {len(self._skips)} of {self._total} clips ({kinds})"

    def load(self, index: int) -> dict:
        """Decode and sample entry `index`; raises `T2VError` (e.g. `ClipTooShort`) when it cannot."""
        entry = self.entries[index]
        frames, fps = read_video(entry.path, folder_fps=self.folder_fps)  # (F, H, W, 3) uint8
        video = sample_clip(frames, fps, self.sampling, item_generator(self.seed, self.epoch, index))
        return {"video": video, "caption": entry.caption, "source": entry.source, "fps": float(self.sampling.output_fps(fps))}

    def __getitem__(self, index: int) -> dict:
        n = len(self.entries)
        if not -n <= index < n:
            raise IndexError(index)
        index %= n
        for k in range(n):
            j = (index + k) % n  # a bad entry hands over to the next one: deterministic
            if j in self._bad:
                continue
            try:
                return self.load(j)
            except T2VError as e:
                self._skip(j, e)
        raise T2VError(f"no usable clip in {self.description}: {self.skip_summary()}")

    def _skip(self, index: int, error: T2VError) -> None:
        kind = "too short" if isinstance(error, ClipTooShort) else "unreadable" if isinstance(error, VideoReadError) else "unusable"
        detail = " ".join(str(error).split())  # one line
        source = self.entries[index].source
        self._bad.add(index)
        self._skips.append(Skip(source, kind, detail))
        log.warning("skipped %s (%s): %s", source, kind, detail)


def warn_early_skips(description: str, skips: list[Skip], total: int) -> None:
    """One summary line for entries dropped while the data set was being built (e.g. missing files)."""
    if skips:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(Counter(s.kind for s in skips).items()))
        log.warning("%s: skipped %d of %d entries (%s), e.g. %s", description, len(skips), total, kinds, skips[0].detail)
