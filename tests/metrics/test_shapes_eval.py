"""evaluate_shapes against generators whose answers are known: the world itself, and the world with
one attribute swapped (the oracle must count exactly the swapped attribute as wrong)."""

from __future__ import annotations

import pytest
import torch

from t2v.data.shapes import HELD_OUT, render_clip
from t2v.errors import T2VError
from t2v.metrics.shapes_eval import eval_jobs, evaluate_shapes, report

_OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


def _parse(prompt: str) -> tuple[str, str, str]:
    words = prompt.split()  # "a red circle moving right"
    return words[1], words[2], words[4]


def _world(flip_held_out_motion: bool = False, seen: list | None = None):
    def generate(prompts: list[str], first_seed: int) -> torch.Tensor:
        out = []
        for i, p in enumerate(prompts):
            color, shape, motion = _parse(p)
            if seen is not None:
                seen.append((p, first_seed + i))
            if flip_held_out_motion and (color, shape, motion) in HELD_OUT:
                motion = _OPPOSITE[motion]
            clip = render_clip(color, shape, motion, size=32, num_frames=4)  # (F, H, W, 3)
            out.append(torch.from_numpy(clip).permute(3, 0, 1, 2).float() / 127.5 - 1)  # (C, F, H, W)
        return torch.stack(out)

    return generate


def test_the_world_scores_perfectly_and_seeds_are_seed_major():
    seen: list = []
    scores, clips = evaluate_shapes(_world(seen=seen), seeds=2, batch_size=7, base_seed=10)
    assert (scores["held_in"]["n"], scores["held_out"]["n"]) == (176, 16)
    for group in ("held_in", "held_out"):
        assert [scores[group][m] for m in ("color", "shape", "direction", "all_three")] == [1.0] * 4
    # clip j gets seed base + j whatever the batch size, and the jobs match what was generated
    assert [s for _, s in seen] == list(range(10, 10 + 192))
    assert [(p, s) for p, _, s in eval_jobs(2, base_seed=10)] == seen
    assert report(scores, clips, {})["clips"][0]["prompt"] == "a red circle moving left"


def test_a_swapped_direction_counts_only_against_direction_on_held_out():
    scores, _ = evaluate_shapes(_world(flip_held_out_motion=True), seeds=1, batch_size=16)
    assert scores["held_in"]["all_three"] == 1.0
    held_out = scores["held_out"]
    assert (held_out["color"], held_out["shape"], held_out["direction"], held_out["all_three"]) == (1.0, 1.0, 0.0, 0.0)
    assert scores["all"]["direction"] == pytest.approx(88 / 96)


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(T2VError, match="--seeds"):
        evaluate_shapes(_world(), seeds=0)
    with pytest.raises(T2VError, match="shape"):
        evaluate_shapes(lambda prompts, seed: torch.zeros(len(prompts), 3, 16, 16), seeds=1)
