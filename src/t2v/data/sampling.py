"""Turn a decoded clip into a training sample: pick frames, resize, crop, scale to [-1, 1].

Shared by every file-backed data set. Frame choice follows Tune-A-Video's `sample_frame_rate`
(every n-th frame from a start offset) or resamples to a target frame rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from t2v.errors import T2VError


class ClipTooShort(T2VError):
    """The clip has fewer frames than the sampling needs; data sets skip such clips."""


@dataclass(frozen=True)
class FrameSampling:
    """How a clip becomes a sample of `num_frames` frames at `height x width`.

    `sample_stride` keeps every n-th frame (Tune-A-Video's `sample_frame_rate`); `target_fps`
    instead picks frames nearest to a regular grid at that rate (then the stride must stay 1).
    `start` is "random" (uniform over the offsets that fit, drawn from the caller's generator)
    or a fixed frame index.

    Augmentation (off by default; the same crop and flip for every frame of a clip, so motion is
    kept): `crop_scale = (lo, hi)` takes a random window whose side is a fraction in [lo, hi] of the
    largest window of the output's aspect that fits, at a random position, before resizing (the
    random resized crop of image training, at a fixed aspect); `hflip` mirrors half the clips.
    `camera_pan = p` (with `crop_scale`) moves that window in a straight line across the clip, a
    distance of up to p times its side in a uniformly drawn direction, as a panning camera would
    (synthetic camera motion: new motion from a few real frames, for data sets too small to show
    much of it). Draws come from the caller's generator after the frame offset's.
    """

    num_frames: int = 16
    height: int = 64
    width: int = 64
    sample_stride: int = 1
    target_fps: float | None = None
    start: str | int = "random"
    crop_scale: tuple[float, float] | None = None
    hflip: bool = False
    camera_pan: float | None = None

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.height < 1 or self.width < 1:
            raise T2VError(f"num_frames, height and width must be >= 1; got {self.num_frames}, {self.height}, {self.width}")
        if self.sample_stride < 1:
            raise T2VError(f"sample_stride must be >= 1; got {self.sample_stride}")
        if self.target_fps is not None and (self.target_fps <= 0 or self.sample_stride != 1):
            raise T2VError("use either sample_stride or a positive target_fps, not both")
        if not (self.start == "random" or (isinstance(self.start, int) and self.start >= 0)):
            raise T2VError(f"start must be 'random' or a frame index >= 0; got {self.start!r}")
        if self.crop_scale is not None:
            scale = tuple(float(v) for v in self.crop_scale)
            if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
                raise T2VError(f"crop_scale (data.random_crop) must be [lo, hi] with 0 < lo <= hi <= 1 (e.g. [0.5, 1.0]); got {list(self.crop_scale)}")
            object.__setattr__(self, "crop_scale", scale)  # a YAML list becomes a tuple
        if self.camera_pan is not None:
            if not 0 < float(self.camera_pan) <= 1:
                raise T2VError(f"camera_pan (data.camera_pan) must be in (0, 1] (a fraction of the crop window's side); got {self.camera_pan}")
            if self.crop_scale is None or self.crop_scale[0] >= 1:
                raise T2VError("camera_pan (data.camera_pan) moves the random crop window: set crop_scale (data.random_crop) with lo < 1, e.g. [0.8, 0.9]")

    def step(self, fps: float) -> float:
        """Source frames between two sampled frames (a float when resampling to `target_fps`)."""
        if self.target_fps is None:
            return float(self.sample_stride)
        if not fps or fps <= 0:
            raise T2VError("the clip's frame rate is unknown; use sample_stride instead of target_fps")
        return fps / self.target_fps

    def span(self, fps: float) -> int:
        """Source frames one sample covers, first to last inclusive."""
        return round((self.num_frames - 1) * self.step(fps)) + 1

    def output_fps(self, fps: float) -> float:
        """Frame rate of the sampled clip."""
        return self.target_fps if self.target_fps is not None else fps / self.sample_stride


def frame_indices(num_source_frames: int, fps: float, sampling: FrameSampling, generator: torch.Generator | None = None) -> list[int]:
    """Source frame indices of one sample; raises `ClipTooShort` when they do not fit."""
    step, span = sampling.step(fps), sampling.span(fps)
    room = num_source_frames - span  # the largest start offset that fits
    if room < 0:
        raise ClipTooShort(
            f"clip has {num_source_frames} frames; {sampling.num_frames} frames every {step:g} need {span}"
        )
    if sampling.start == "random":
        start = int(torch.randint(0, room + 1, (1,), generator=generator))
    else:
        start = int(sampling.start)
        if start > room:
            raise ClipTooShort(f"clip has {num_source_frames} frames; start {start} + {span} frames do not fit")
    return [start + round(k * step) for k in range(sampling.num_frames)]


def resize_center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Float `(F, C, h, w)` -> `(F, C, height, width)`: scale so the clip covers the target, crop the middle.

    Bilinear with antialiasing when shrinking (torch `interpolate`), so downscaled frames do not alias.
    """
    h, w = frames.shape[-2:]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    if (new_h, new_w) != (h, w):
        frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", antialias=scale < 1, align_corners=False)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return frames[..., top : top + height, left : left + width]


def random_window(h: int, w: int, sampling: FrameSampling, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop window of the output's aspect: its side a fraction
    in `sampling.crop_scale` of the largest such window in an `h x w` frame, at a uniform position."""
    lo, hi = sampling.crop_scale
    aspect = sampling.width / sampling.height
    full_h = min(h, w / aspect)  # the largest window of the output's aspect that fits
    frac = lo + (hi - lo) * float(torch.rand((), generator=generator))
    ch = max(1, min(h, round(full_h * frac)))
    cw = max(1, min(w, round(full_h * frac * aspect)))
    top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    return top, left, ch, cw


def pan_windows(h: int, w: int, n: int, sampling: FrameSampling, generator: torch.Generator | None = None) -> list[tuple[int, int, int, int]]:
    """`n` crop windows (top, left, height, width) of one random side, on a straight line across an
    `h x w` frame: a pan of up to `sampling.camera_pan` times the window's side in a uniform direction,
    shortened to fit the frame, placed uniformly where it fits. Integer source pixels: at the
    downscaling these windows get (a frame several times the output's side), a rounding step is a
    fraction of an output pixel."""
    _, _, ch, cw = random_window(h, w, sampling, generator)
    angle = 2 * math.pi * float(torch.rand((), generator=generator))
    length = sampling.camera_pan * max(ch, cw) * float(torch.rand((), generator=generator))
    dy, dx = length * math.sin(angle), length * math.cos(angle)
    # shorten the pan, keeping its direction, until it fits in the frame
    fit = min(1.0, (h - ch) / abs(dy) if abs(dy) > 1e-9 else 1.0, (w - cw) / abs(dx) if abs(dx) > 1e-9 else 1.0)
    dy, dx = dy * fit, dx * fit
    top0 = (h - ch - abs(dy)) * float(torch.rand((), generator=generator)) + max(0.0, -dy)
    left0 = (w - cw - abs(dx)) * float(torch.rand((), generator=generator)) + max(0.0, -dx)
    steps = [k / (n - 1) if n > 1 else 0.0 for k in range(n)]
    return [(min(h - ch, max(0, round(top0 + s * dy))), min(w - cw, max(0, round(left0 + s * dx))), ch, cw) for s in steps]


def sample_clip(frames: torch.Tensor, fps: float, sampling: FrameSampling, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 `(F, H, W, 3)` clip -> float `(C, num_frames, height, width)` in [-1, 1].

    Raises `ClipTooShort` when the clip has too few frames for `sampling`.
    """
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise T2VError(f"sample_clip takes uint8 (F, H, W, 3) frames; got {frames.dtype} {tuple(frames.shape)}")
    idx = frame_indices(frames.shape[0], fps, sampling, generator)
    x = rearrange(frames[idx], "f h w c -> f c h w").float()  # (num_frames, 3, H, W)
    if sampling.camera_pan is not None:
        windows = pan_windows(x.shape[-2], x.shape[-1], x.shape[0], sampling, generator)
        x = torch.stack([x[k, :, top : top + ch, left : left + cw] for k, (top, left, ch, cw) in enumerate(windows)])
    elif sampling.crop_scale is not None:
        top, left, ch, cw = random_window(x.shape[-2], x.shape[-1], sampling, generator)
        x = x[..., top : top + ch, left : left + cw]
    x = resize_center_crop(x, sampling.height, sampling.width)  # (num_frames, 3, height, width)
    if sampling.hflip and float(torch.rand((), generator=generator)) < 0.5:
        x = x.flip(-1)
    x = (x / 127.5 - 1.0).clamp(-1.0, 1.0)
    return rearrange(x, "f c h w -> c f h w").contiguous()  # (C, num_frames, height, width)


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator that depends only on (seed, epoch, index): the same item draws the same offset."""
    g = torch.Generator()
    g.manual_seed(((seed * 1_000_003 + epoch) * 1_000_003 + index) & (2**63 - 1))
    return g


__all__ = ["ClipTooShort", "FrameSampling", "frame_indices", "pan_windows", "random_window", "resize_center_crop", "sample_clip", "item_generator"]
