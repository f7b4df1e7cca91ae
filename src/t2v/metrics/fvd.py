"""Frechet Video Distance (Unterthiner et al., 2018): the Frechet distance between Gaussians fitted
to I3D features of real and of generated clips.

The protocol of the common implementations (original TF `frechet_video_distance.py`, StyleGAN-V,
VideoGPT/TATS), each step explicit in `FVDConfig`:
1. the first 16 frames of every video (`frames`, `stride`);
2. every frame resized to 224x224, bilinear: `resize="squash"` (the original and StyleGAN-V: the
   aspect ratio is not kept) or `"center_crop"` (VideoGPT/TATS: short side to 224, then the center);
3. values scaled from [0, 255] to [-1, 1];
4. I3D (Kinetics-400) features: the 400 logits before softmax (`feature="logits"`, the original) or
   the 1024-d average pool (`"pool"`);
5. mean and covariance of each set, accumulated in float64 chunk by chunk (`RunningGaussian`),
   then the Frechet distance (`frechet.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from t2v.errors import T2VError
from t2v.metrics.frechet import Method, frechet_distance
from t2v.metrics.running_stats import RunningGaussian
from t2v.metrics.video_folder import batched

Resize = Literal["squash", "center_crop"]
Extractor = Callable[[Tensor], Tensor]  # (B, 3, F, H, W) in [-1, 1] -> (B, D)


@dataclass(frozen=True)
class FVDConfig:
    """FVD protocol; the defaults are the original paper's."""

    frames: int = 16
    stride: int = 1
    size: int = 224
    resize: Resize = "squash"
    feature: Literal["logits", "pool"] = "logits"
    batch_size: int = 8
    method: Method = "eigh"
    ddof: int = 1  # covariance normalisation: 1 = np.cov (TF FVD, VideoGPT); StyleGAN-V divides by N (0)


@dataclass(frozen=True)
class FVDResult:
    fvd: float
    n_real: int
    n_fake: int


def resize_frames(x: Tensor, size: int, resize: Resize) -> Tensor:
    """(N, C, H, W) float -> (N, C, size, size), bilinear (half-pixel centres, no antialiasing)."""
    h, w = x.shape[-2:]
    if resize == "squash":
        if (h, w) == (size, size):
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if resize == "center_crop":
        scale = size / min(h, w)
        th, tw = (size, math.ceil(w * scale)) if h <= w else (math.ceil(h * scale), size)
        if (th, tw) != (h, w):
            x = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False)
        top, left = (th - size) // 2, (tw - size) // 2
        return x[..., top : top + size, left : left + size]
    raise T2VError(f"unknown resize {resize!r}: use 'squash' or 'center_crop'")


def preprocess_clip(clip: Tensor, size: int = 224, resize: Resize = "squash") -> Tensor:
    """uint8 (F, H, W, 3) -> float32 (3, F, size, size) in [-1, 1] (steps 2-3 of the protocol)."""
    x = rearrange(clip, "f h w c -> f c h w").float()
    x = resize_frames(x, size, resize)  # (F, 3, size, size), still [0, 255]
    x = x / 127.5 - 1.0
    return rearrange(x, "f c h w -> c f h w")


@torch.no_grad()
def feature_statistics(
    clips: Iterable[Tensor], extractor: Extractor, config: FVDConfig = FVDConfig(), device: str | torch.device = "cpu"
) -> RunningGaussian:
    """Stream uint8 (F, H, W, 3) clips through the extractor into a float64 `RunningGaussian`."""
    stats = RunningGaussian()
    prepare = lambda c: preprocess_clip(c, config.size, config.resize)  # noqa: E731
    for batch in batched(clips, config.batch_size, prepare):  # (B, 3, F, S, S)
        feats = extractor(batch.to(device))  # (B, D)
        stats.update(feats.detach().double().cpu().numpy())
    return stats


def fvd_from_statistics(real: RunningGaussian, fake: RunningGaussian, config: FVDConfig = FVDConfig()) -> float:
    """FVD of two sets of accumulated features."""
    for name, s in (("real", real), ("generated", fake)):
        if s.n < 2:
            raise T2VError(f"FVD needs at least 2 {name} clips, got {s.n}")
    return frechet_distance(real.mean, real.covariance(config.ddof), fake.mean, fake.covariance(config.ddof), config.method)


def i3d_extractor(model: torch.nn.Module, feature: Literal["logits", "pool"] = "logits") -> Extractor:
    """Features of an `I3D` or `TorchScriptI3D` as an extractor."""
    return lambda x: model.features(x, feature)


def frechet_video_distance(
    real_clips: Iterable[Tensor],
    fake_clips: Iterable[Tensor],
    extractor: Extractor,
    config: FVDConfig = FVDConfig(),
    device: str | torch.device = "cpu",
) -> FVDResult:
    """FVD between two streams of uint8 (F, H, W, 3) clips (already cut to `config.frames`)."""
    real = feature_statistics(real_clips, extractor, config, device)
    fake = feature_statistics(fake_clips, extractor, config, device)
    return FVDResult(fvd_from_statistics(real, fake, config), real.n, fake.n)

