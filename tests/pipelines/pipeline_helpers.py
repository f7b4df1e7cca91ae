"""Helpers for the pipeline tests: a smooth generated clip, a stand-in for tuning, a tuning record."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import torch


def moving_blob(num_frames: int = 12, size: int = 32) -> torch.Tensor:
    """uint8 (F, H, W, 3): a smooth colored blob drifting right over a gradient (a clip to invert)."""
    y, x = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    frames = []
    for f in range(num_frames):
        cx, cy = 8 + f * 1.5, size / 2 + 4 * math.sin(f / 3)
        blob = torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 40.0)
        r = 0.2 + 0.7 * blob
        g = 0.3 + 0.4 * (x / size) * (1 - blob)
        b = 0.5 * (y / size) + 0.3 * blob
        frames.append(torch.stack([r, g, b], -1))
    return (torch.stack(frames) * 255).round().clamp(0, 255).to(torch.uint8)


def perturb_(params: dict[str, torch.nn.Parameter], seed: int = 1, scale: float = 0.05) -> None:
    """Stand-in for tuning: add seeded noise to the given parameters (in place)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params.values():
            p.add_(scale * torch.randn(p.shape, generator=g))


def make_record(base: Path, video: Path, sampling, **extra) -> dict:
    return {"base_model": str(base), "video": str(video), "prompt": "a blob drifting right",
            "sampling": asdict(sampling), "steps": 0, "lr": 3e-5, "seed": 0, "lora_rank": None, **extra}
