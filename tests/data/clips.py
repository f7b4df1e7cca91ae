"""Generated test clips (no files needed): smooth drifting gradients with a moving soft blob.

Smooth on purpose: yuv420p halves the chroma resolution, so sharp saturated color edges lose far more
than the codec's quality setting does; those edges are tested separately on ShapesWorld clips.
"""

from __future__ import annotations

import numpy as np
import torch


def make_clip(num_frames: int = 12, height: int = 48, width: int = 64, seed: int = 0) -> torch.Tensor:
    """uint8 (F, H, W, 3): a drifting color gradient plus a moving soft blob; every frame differs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, 3)
    frames = []
    for t in range(num_frames):
        r = 120 + 70 * np.sin(2 * np.pi * (x / width) + phase[0] + 0.3 * t)
        g = 120 + 70 * np.cos(2 * np.pi * (y / height) + phase[1] - 0.2 * t)
        b = 120 + 60 * np.sin(2 * np.pi * ((x + y) / (width + height)) + phase[2] + 0.1 * t)
        cx, cy, sigma = width * (0.2 + 0.6 * t / max(num_frames - 1, 1)), height / 2, max(width, height) / 8
        blob = 60 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
        frames.append(np.stack([r + blob, g + blob, b - blob], -1))
    return torch.from_numpy(np.clip(np.round(np.stack(frames)), 0, 255).astype(np.uint8))


def psnr(a, b) -> float:
    """PSNR in dB of two uint8 arrays/tensors of the same shape."""
    mse = float(((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
