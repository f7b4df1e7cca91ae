"""A side-by-side comparison video (source | edit 1 | edit 2 ...) with each clip's prompt under it."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from t2v.data.preview import caption_strip
from t2v.data.video_io import to_uint8_frames

GAP = 2  # px between clips


def side_by_side(videos: Sequence[torch.Tensor], captions: Sequence[str], *, tile: int = 192) -> np.ndarray:
    """One row of clips (each float (C, F, H, W) in [-1, 1] or uint8 (F, H, W, 3)) with captions below.

    Clips are enlarged by a whole factor (nearest neighbour) to about `tile` px on their long side,
    shorter clips hold their last frame, and each caption is written under its clip (PIL text).
    Returns uint8 (F, H_row, W_row, 3).
    """
    if len(videos) != len(captions) or not videos:
        raise ValueError(f"need one caption per clip, got {len(videos)} clips and {len(captions)} captions")
    clips = [to_uint8_frames(v).numpy() for v in videos]  # each (F, H, W, 3)
    num_frames = max(c.shape[0] for c in clips)
    h, w = max(c.shape[1] for c in clips), max(c.shape[2] for c in clips)
    k = max(1, tile // max(h, w))
    th, tw = h * k, w * k
    strips = [caption_strip(t, tw) for t in captions]
    sh = max(s.shape[0] for s in strips)
    row = np.zeros((num_frames, th + sh, len(clips) * (tw + GAP) - GAP, 3), dtype=np.uint8)
    for i, (clip, strip) in enumerate(zip(clips, strips)):
        x = i * (tw + GAP)
        clip = np.concatenate([clip, np.repeat(clip[-1:], num_frames - clip.shape[0], axis=0)])  # (num_frames, H, W, 3)
        big = clip.repeat(k, axis=1).repeat(k, axis=2)  # (num_frames, H*k, W*k, 3)
        row[:, : big.shape[1], x : x + big.shape[2]] = big
        row[:, th : th + strip.shape[0], x : x + tw] = strip[None]
    return row
