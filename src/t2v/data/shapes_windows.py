"""ShapesWorld windows for the cascade's stages: short clips with varied motion per frame, and
aligned low/high-resolution pairs of the same scene.

A ShapesWorld clip moves its object 20-36 px (at 64) over the whole clip, so the motion per frame
depends on the clip's length. The interpolation stage must handle keyframes that are far apart (8
keyframes of a 29-frame clip) and close (the second pass of a 2x, 2x cascade), so each item renders
its clip with a length drawn from `clip_frames` and cuts a window of `window` frames at a random
start. With `scale`, the same scene is also rendered at `scale` times the size (object size,
displacement and start scaled): the super-resolution stage's target.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from t2v.data.shapes import ALL_COMBINATIONS, FPS, HELD_IN, MIN_CANVAS, clip_to_video, item_rng, render_clip, sample_params
from t2v.errors import T2VError


class ShapesWindows(Dataset):
    """`length` windows, item i decided by (seed, i) alone.

    Items: {video (C, window, size, size) in [-1, 1], caption, fps, source, clip_frames, start} and,
    with `scale`, video_hi (C, window, scale*size, scale*size): the same scene rendered larger.
    """

    def __init__(self, length: int, seed: int = 0, size: int = 64, window: int = 9,
                 clip_frames: tuple[int, int] = (15, 57), scale: int | None = None,
                 include_held_out: bool = False) -> None:
        lo, hi = clip_frames
        if length < 1 or window < 1 or size < MIN_CANVAS:
            raise T2VError(f"ShapesWindows needs length >= 1, window >= 1, size >= {MIN_CANVAS}; got {length}, {window}, {size}")
        if not window <= lo <= hi:
            raise T2VError(f"clip_frames must satisfy window <= min <= max; got window {window}, clip_frames {clip_frames}")
        if scale is not None and scale < 1:
            raise T2VError(f"scale must be >= 1; got {scale}")
        item_rng(seed, 0)  # validates the seed
        self.length, self.seed, self.size, self.window = length, seed, size, window
        self.clip_frames, self.scale = (lo, hi), scale
        self.combinations = ALL_COMBINATIONS if include_held_out else HELD_IN

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not -self.length <= index < self.length:
            raise IndexError(index)
        index %= self.length
        rng = item_rng(self.seed, index)
        p = sample_params(rng, size=self.size, combinations=self.combinations)
        n = int(rng.integers(self.clip_frames[0], self.clip_frames[1] + 1))
        start = int(rng.integers(0, n - self.window + 1))
        keep = slice(start, start + self.window)
        clip = render_clip(p.color, p.shape, p.motion, size=self.size, num_frames=n, object_size=p.object_size,
                           displacement=p.displacement, start=p.start)[keep]  # (window, H, W, 3)
        item = {"video": clip_to_video(clip), "caption": p.caption, "fps": FPS,
                "source": f"shapes-windows:seed={self.seed}:index={index}", "clip_frames": n, "start": start}
        if self.scale is not None:
            s = self.scale
            hi = render_clip(p.color, p.shape, p.motion, size=s * self.size, num_frames=n, object_size=s * p.object_size,
                             displacement=s * p.displacement, start=(s * p.start[0], s * p.start[1]))[keep]
            item["video_hi"] = clip_to_video(hi)  # (C, window, sH, sW)
        return item


def collate_windows(items: list[dict]) -> dict:
    """Items -> {video (B, C, F, H, W), video_hi (if present), caption: list, fps (B,)}."""
    out = {
        "video": torch.stack([it["video"] for it in items]),
        "caption": [it["caption"] for it in items],
        "fps": torch.tensor([float(it["fps"]) for it in items]),
    }
    if "video_hi" in items[0]:
        out["video_hi"] = torch.stack([it["video_hi"] for it in items])
    return out
