"""Full-reference video measures for the cascade: PSNR, SSIM, flicker, and the oracle's centroid track error.

All take float clips (C, F, H, W) or batches (B, C, F, H, W) in [-1, 1] (compared on the [0, 1]
scale, data range 1).
- PSNR: 10 log10(1 / MSE) over every value of the clip.
- SSIM: Wang et al. 2004 ("Image quality assessment: from error visibility to structural
  similarity"), 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, per frame and channel
  over the valid (unpadded) window positions, then averaged (skimage's `gaussian_weights=True`
  convention). Hand-written: no installed library computes it (scikit-image is not a dependency).
- flicker: mean |e[t+1] - e[t]| of the reconstruction error e = recon - true (how much the error
  changes from frame to frame; 0 for an error that stays put).
- track error: mean distance (px at a 64 canvas) between the ShapesWorld oracle's object centroid
  in each frame of a clip and in the true clip.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from t2v.data.shapes import CANVAS
from t2v.metrics.shapes_oracle import MIN_OBJECT_AREA_64, read_frame


def _unit(x: Tensor) -> Tensor:
    return (x.float().clamp(-1, 1) + 1) / 2


def _check(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape or a.ndim not in (4, 5):
        raise ValueError(f"compare clips of one shape (C, F, H, W) or (B, C, F, H, W); got {tuple(a.shape)} and {tuple(b.shape)}")


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB between two clips in [-1, 1] (on [0, 1]); inf when equal."""
    _check(a, b)
    mse = float((_unit(a) - _unit(b)).double().pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """(size, size) normalised Gaussian."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_map(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """SSIM at every valid window position of frames x, y (N, 1, H, W) on [0, 1] -> (N, 1, H-k+1, W-k+1).
    Differentiable (no clamping): `ssim` scores with it and `ssim_loss` trains with it."""
    if min(x.shape[-2:]) < window:
        raise ValueError(f"frames of {tuple(x.shape[-2:])} are smaller than the {window}x{window} SSIM window")
    w = gaussian_window(window, sigma)[None, None].to(x.device, x.dtype)  # (1, 1, k, k)
    c1, c2 = 0.01**2, 0.03**2
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mx**2
    syy = F.conv2d(y * y, w) - my**2
    sxy = F.conv2d(x * y, w) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))


def _frames(a: Tensor) -> Tensor:
    """(..., C, F, H, W) -> (N, 1, H, W): every frame and channel."""
    return a.movedim(-3, 1).reshape(-1, 1, *a.shape[-2:])


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004) over frames and channels of two clips in [-1, 1]."""
    _check(a, b)
    return float(ssim_map(_frames(_unit(a).double()), _frames(_unit(b).double()), window, sigma).mean())


def ssim_loss(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """1 - mean SSIM of clips in [-1, 1] (compared on [0, 1], not clamped), as a differentiable float32 loss."""
    _check(a, b)
    x, y = _frames((a.float() + 1) / 2), _frames((b.float() + 1) / 2)
    return 1 - ssim_map(x, y, window, sigma).mean()


def flicker(recon: Tensor, true: Tensor) -> float:
    """Mean absolute temporal difference of the reconstruction error, on [0, 1] values."""
    _check(recon, true)
    e = _unit(recon) - _unit(true)  # (..., C, F, H, W)
    if e.shape[-3] < 2:
        raise ValueError("flicker needs at least 2 frames")
    return float((e[..., 1:, :, :] - e[..., :-1, :, :]).abs().mean())


def centroid_track(clip: Tensor) -> list[tuple[float, float] | None]:
    """The oracle's object centroid (x, y) per frame of a clip (C, F, H, W) in [-1, 1], px at a 64 canvas."""
    frames = ((clip.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()  # (F, H, W, 3)
    scale = CANVAS / max(frames.shape[1:3])
    track = []
    for f in frames:
        r = read_frame(f, MIN_OBJECT_AREA_64 / scale**2)
        track.append(None if r.centroid is None else (r.centroid[0] * scale, r.centroid[1] * scale))
    return track


def track_error(clip: Tensor, true: Tensor, frames: list[int] | None = None) -> float:
    """Mean centroid distance (px at 64) between `clip` and `true` (C, F, H, W) over `frames` (default all).

    A frame where the true clip shows an object and `clip` shows none counts as the canvas size (64 px)."""
    a, b = centroid_track(clip), centroid_track(true)
    idx = range(len(b)) if frames is None else frames
    d = []
    for i in idx:
        if b[i] is None:
            continue
        d.append(float(CANVAS) if a[i] is None else float(np.hypot(a[i][0] - b[i][0], a[i][1] - b[i][1])))
    return float(np.mean(d)) if d else math.nan
