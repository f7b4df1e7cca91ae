"""Helpers for the video U-Net tests: random clip batches and the per-frame 2D reference."""

from __future__ import annotations

import torch
from einops import rearrange


def clip_batch(b: int = 2, f: int = 3, seed: int = 1, equal_frames: bool = False):
    """Random (sample (B,4,F,8,8), timestep (B,), text (B,7,32)); optionally all frames equal."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 4, f, 8, 8, generator=g)
    if equal_frames:
        x = x[:, :, :1].expand(-1, -1, f, -1, -1).contiguous()
    return x, torch.randint(0, 1000, (b,), generator=g), torch.randn(b, 7, 32, generator=g)


def per_frame(unet2d, x, t, text):
    """The 2D U-Net applied to every frame: the reference every inflated model is compared with."""
    b, f = x.shape[0], x.shape[2]
    out = unet2d(rearrange(x, "b c f h w -> (b f) c h w"), t.repeat_interleave(f), text.repeat_interleave(f, 0)).sample
    return rearrange(out, "(b f) c h w -> b c f h w", b=b)
