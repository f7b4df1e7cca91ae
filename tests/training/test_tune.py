"""`t2v tune` (Tune-A-Video's one-shot tuning through the training loop) on a real clip.

The tiny Stable-Diffusion-shaped folder of tests/sd_fixture.py (random weights, latent, 16x16
pixels) is tuned on car-turn.mp4 with its prompt. Checked against the untuned model: the denoising
loss on the clip (fixed timesteps and noise) goes down, and only what the tune-a-video recipe
trains differs (`to_q` of spatial self-/cross-attention + temporal attention); with --lora only
the LoRA weights and the temporal attention do, the pretrained `to_q` stays.
Measured (15 steps at lr 3e-3, 4 frames): clip loss 1.126 -> 1.009 (-10%); a random-weight U-Net
whose only trainable parts are `to_q` and the temporal attention moves slowly (30 steps: -13%).
"""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import DDPMScheduler
from typer.testing import CliRunner

from sd_fixture import make_tiny_sd
from t2v.cli import app
from t2v.diffusion.loss import diffusion_loss
from t2v.errors import T2VError
from t2v.pipelines import TextToVideoPipeline
from t2v.pipelines.tune_a_video import load_tuned, source_clip, tuned_parameters
from t2v.training.tune import tune_config

PROMPT = "a jeep car is moving on the road"


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd", latent=True)


def clip_loss(pipe, record) -> float:
    """Denoising loss of the pipeline's U-Net on the record's clip, 8 fixed timesteps, fixed noise."""
    video = source_clip(record)[0][None]  # (1, 3, F, H, W)
    with torch.no_grad():
        x0 = pipe.encode_video(video).repeat(8, 1, 1, 1, 1)  # (8, C, F, h, w)
        text = pipe.encode_text([PROMPT] * 8)
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
        t = torch.linspace(50, 950, 8).long()
        ddpm = DDPMScheduler.from_config(pipe.scheduler_config)  # the folder's noise schedule
        return diffusion_loss(pipe.unet, ddpm, x0, {"encoder_hidden_states": text}, timesteps=t, noise=noise).loss.item()


def _tune(sd, out, assets, *extra: str) -> None:
    video = assets / "videos" / "car-turn.mp4"
    r = CliRunner().invoke(app, ["tune", "--model", str(sd), "--video", str(video), "--prompt", PROMPT, "--out", str(out),
                                 "--num-frames", "4", "--stride", "2", "--height", "16", "--width", "16", *extra])
    assert r.exit_code == 0, r.output + repr(r.exception)


def test_tune_lowers_the_loss_and_changes_only_the_recipes_parameters(sd, tmp_path, assets):
    out = tmp_path / "tuned"
    _tune(sd, out, assets, "--steps", "15", "--lr", "3e-3")
    record = json.loads((out / "tune.json").read_text())
    assert record["steps"] == 15 and record["prompt"] == PROMPT and record["sampling"]["num_frames"] == 4

    base = TextToVideoPipeline.from_pretrained(sd, inflate_recipe="tune-a-video")
    tuned, record = load_tuned(out)
    before, after = clip_loss(base, record), clip_loss(tuned, record)
    print(f"tune: clip loss {before:.4f} -> {after:.4f}")
    assert after < 0.95 * before  # measured 1.126 -> 1.009 (-10%)

    recipe = set(tuned_parameters(base.unet))
    b, a = base.unet.state_dict(), tuned.unet.state_dict()
    changed = {k for k in b if not torch.equal(a[k], b[k])}
    assert changed and changed <= recipe
    assert any(".to_q." in k for k in changed) and any(".temporal." in k for k in changed)


def test_tune_with_lora_keeps_the_pretrained_to_q(sd, tmp_path, assets):
    out = tmp_path / "tuned-lora"
    _tune(sd, out, assets, "--steps", "3", "--lr", "1e-3", "--lora", "2")
    tuned, record = load_tuned(out)
    assert record["lora_rank"] == 2 and record["lora"]["config"]["r"] == 2
    base = TextToVideoPipeline.from_pretrained(sd, inflate_recipe="tune-a-video").unet.state_dict()
    a = tuned.unet.state_dict()
    for k, v in a.items():
        if ".base_layer." in k:  # the wrapped pretrained to_q
            assert torch.equal(v, base[k.replace(".base_layer.", ".")])
        elif ".lora_" not in k and ".temporal." not in k:
            assert torch.equal(v, base[k]), k
    assert any(".lora_B." in k and v.abs().sum() > 0 for k, v in a.items())  # LoRA B starts at 0: it trained


def test_tune_config_defaults(sd, assets):
    c = tune_config(sd, assets / "videos" / "wolf.mp4", "a wolf", 500, sd.parent / "out")
    assert (c.stage, c.model.recipe, c.model.gradient_checkpointing) == ("tune", "tune-a-video", True)
    assert (c.data.height, c.data.width) == (16, 16)  # unet sample_size 8 x VAE factor 2
    assert (c.data.num_frames, c.data.start, c.data.batch_size, c.data.caption_dropout) == (24, 0, 1, 0.0)
    assert (c.optim.lr, c.optim.weight_decay, c.ema.enabled) == (3e-5, 1e-2, False)


def test_tune_bad_input_is_one_line(sd, tmp_path, assets):
    with pytest.raises(T2VError, match="--video .* is not a file"):
        tune_config(sd, tmp_path / "missing.mp4", "a", 10, tmp_path / "o")
    with pytest.raises(T2VError, match="--model .* is not a folder"):
        tune_config(tmp_path / "nope", assets / "videos" / "wolf.mp4", "a", 10, tmp_path / "o")
    with pytest.raises(T2VError, match="needs data.prompt"):
        tune_config(sd, assets / "videos" / "wolf.mp4", "  ", 10, tmp_path / "o")
