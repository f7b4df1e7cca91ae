"""ShapesWorld evaluation of a text-to-video model: generate every combination, read it with the oracle.

Protocol (issue 7): the 96 (color, shape, motion) combinations of ShapesWorld (88 held-in, 8
held-out) are each prompted with the first caption phrasing ("a red circle moving right") for
`seeds` seeds. The clips are listed seed-major (all combinations for seed 0, then seed 1, ...);
clip `j` of that list is sampled from generator seed `base_seed + j`, so results do not depend on the
batch size. Each clip is read by `t2v.metrics.shapes_oracle.read_clip` and scored per group.

The model is a callable (this module never imports pipelines): `generate(prompts, seed)` returns a
float video batch (B, C, F, H, W) in [-1, 1] (or uint8 0-255), video i sampled from seed `seed + i`:
exactly what `TextToVideoPipeline.__call__` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from t2v.data.shapes import ALL_COMBINATIONS, caption, is_held_out
from t2v.errors import T2VError
from t2v.metrics.shapes_oracle import ClipReading, read_clip, score

Generate = Callable[[list[str], int], Tensor]
METRICS = ("color", "shape", "direction", "all_three", "consistency")


@dataclass(frozen=True)
class EvalClip:
    """One evaluated clip: what was asked, with which seed, and what the oracle read."""

    prompt: str
    target: tuple[str, str, str]
    held_out: bool
    seed: int
    reading: ClipReading


def eval_jobs(
    seeds: int, combinations: Sequence[tuple[str, str, str]] = ALL_COMBINATIONS, base_seed: int = 0
) -> list[tuple[str, tuple[str, str, str], int]]:
    """The evaluation's clips as (prompt, target, generator seed), seed-major."""
    if seeds < 1:
        raise T2VError(f"--seeds must be >= 1; got {seeds}")
    jobs = []
    for s in range(seeds):
        for c in combinations:
            jobs.append((caption(*c, phrasing=0), tuple(c), base_seed + len(jobs)))
    return jobs


def to_uint8_frames(video: Tensor) -> np.ndarray:
    """(C, F, H, W) float in [-1, 1] (or uint8) -> uint8 (F, H, W, C), the oracle's input."""
    if video.dtype != torch.uint8:
        video = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return rearrange(video.cpu(), "c f h w -> f h w c").numpy()


def evaluate_shapes(
    generate: Generate,
    seeds: int = 4,
    batch_size: int = 8,
    combinations: Sequence[tuple[str, str, str]] = ALL_COMBINATIONS,
    base_seed: int = 0,
    progress: Optional[Callable[[int], None]] = None,
) -> tuple[dict[str, dict[str, float]], list[EvalClip]]:
    """Generate and read every (combination, seed); returns (scores, clips).

    scores: {"all" | "held_in" | "held_out": {n, color, shape, direction, all_three, consistency}}
    (shares in [0, 1], see `shapes_oracle.score`). `progress(k)` is called after each batch of k clips.
    """
    if batch_size < 1:
        raise T2VError(f"--batch-size must be >= 1; got {batch_size}")
    jobs = eval_jobs(seeds, combinations, base_seed)
    clips: list[EvalClip] = []
    for i in range(0, len(jobs), batch_size):
        batch = jobs[i : i + batch_size]
        videos = generate([p for p, _, _ in batch], batch[0][2])  # (B, C, F, H, W); seeds consecutive
        if videos.ndim != 5 or videos.shape[0] != len(batch):
            raise T2VError(f"the model returned shape {tuple(videos.shape)} for {len(batch)} prompts; expected (B, C, F, H, W)")
        for (prompt, target, seed), video in zip(batch, videos):
            clips.append(EvalClip(prompt, target, is_held_out(*target), seed, read_clip(to_uint8_frames(video))))
        if progress is not None:
            progress(len(batch))
    scores = score([c.reading for c in clips], [c.target for c in clips], [c.held_out for c in clips])
    return scores, clips


def report(scores: dict[str, dict[str, float]], clips: list[EvalClip], settings: dict) -> dict:
    """A JSON-able report: the settings, the scores per group and every clip's reading."""
    return {
        "settings": settings,
        "scores": scores,
        "clips": [
            {"prompt": c.prompt, "target": list(c.target), "held_out": c.held_out, "seed": c.seed, **asdict(c.reading)}
            for c in clips
        ],
    }
