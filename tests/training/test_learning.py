"""Training lowers the loss: the tiny preset on ShapesWorld for 300 steps.

The measure is the denoising loss (Ho et al. 2020, eps target) on a fixed evaluation set that
training never sees (ShapesWorld seed 99: 64 frames, fixed timesteps spread over the schedule,
fixed noise), for the initial weights and for the final EMA model folder. Measured on this CPU
(1 thread, `pytest tests/training/test_learning.py -s` prints it): 1.063 -> 0.074 (-93%), and the
mean training loss of the first 30 steps 0.761 against 0.067 for the last 30; the test asserts
drops of at least 60%.
"""

from __future__ import annotations

import pytest
import torch

from t2v.data.shapes import ShapesWorldDataset
from t2v.diffusion.loss import diffusion_loss
from t2v.models import load_unet2d
from t2v.models.text import encode_prompts
from t2v.training.loop import train
from t2v.training.parts import build_parts
from training_helpers import tiny_config

STEPS = 300


def eval_loss(unet, parts, n: int = 64) -> float:
    ds = ShapesWorldDataset(n, seed=99, size=16, num_frames=4, images=True)
    items = [ds[i] for i in range(n)]
    x0 = torch.stack([it["video"][:, 0] for it in items])  # (n, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    timesteps = torch.linspace(0, 999, n).round().long()
    noise = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        text = encode_prompts(parts.tokenizer, parts.text_encoder, [it["caption"] for it in items], "cpu")
        out = diffusion_loss(unet, parts.noise_scheduler, x0, {"encoder_hidden_states": text}, timesteps=timesteps, noise=noise)
    return out.loss.item()


@pytest.mark.slow
def test_tiny_model_on_shapesworld_lowers_the_loss(tmp_path):
    config = tiny_config(tmp_path / "run", max_steps=STEPS, **{
        "data.batch_size": 8, "optim.warmup_steps": 20, "ema.decay": 0.99, "checkpoint.every": 0, "logging.every": 50})
    torch.manual_seed(config.seed)
    parts = build_parts(config)  # the initial weights of the run (same seed)
    before = eval_loss(parts.unet.eval(), parts)
    result = train(config)
    after = eval_loss(load_unet2d(result.output).eval(), parts)
    first, last = sum(result.losses[:30]) / 30, sum(result.losses[-30:]) / 30
    print(f"eval loss {before:.3f} -> {after:.3f} ({after / before - 1:+.0%}); "
          f"training loss, first 30 steps {first:.3f}, last 30 {last:.3f}")
    assert after < 0.4 * before
    assert last < 0.4 * first
