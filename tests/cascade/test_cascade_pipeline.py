"""The stages' sampling and the whole cascade on tiny random models: what reaches the network, what
comes back, seeds, and the base model / decoder fit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, DDPMScheduler

from t2v.errors import T2VError
from t2v.pipelines.cascade import (
    CascadePipeline,
    CascadeStage,
    augment_condition,
    interpolate,
    load_temporal_decoder,
    upsample,
    upscale,
    window_starts,
)
from t2v.pipelines.text_to_video import seeded_generators


def _capture(unet):
    seen = []
    handle = unet.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs), with_kwargs=True)
    return seen, handle


@pytest.mark.parametrize("factor", [2, 4])
def test_interpolation_keeps_keyframes_and_conditions_on_them(stage_dirs, factor):
    stage = CascadeStage.from_pretrained(stage_dirs / "interpolate", "interpolate")
    keys = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    seen, handle = _capture(stage.unet)
    out = interpolate(stage, keys, factor, steps=2)
    handle.remove()
    f = 2 * factor + 1
    assert out.shape == (2, 3, f, 16, 16)
    torch.testing.assert_close(out[:, :, ::factor], keys, rtol=0, atol=0)
    assert len(seen) == 2  # one network call per step
    for kwargs in seen:
        cond = kwargs["condition"]  # (B, 4, F, H, W)
        torch.testing.assert_close(cond[:, :3, ::factor], keys, rtol=0, atol=0)
        known = torch.arange(f) % factor == 0
        assert torch.equal(cond[:, 3, :, 0, 0], known.float().expand(2, f))
        assert cond[:, :3, ~known].abs().sum() == 0


def test_interpolation_depends_on_keyframes_and_seed(stage_dirs):
    stage = CascadeStage.from_pretrained(stage_dirs / "interpolate", "interpolate")
    keys = torch.rand(1, 3, 2, 16, 16) * 2 - 1
    a, b = interpolate(stage, keys, 4, steps=2, seed=3), interpolate(stage, keys, 4, steps=2, seed=3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (interpolate(stage, keys, 4, steps=2, seed=4) - a).abs().max() > 1e-4
    keys2 = keys.clone()
    keys2[:, :, 1] = -keys2[:, :, 1]
    assert (interpolate(stage, keys2, 4, steps=2, seed=3)[:, :, 2] - a[:, :, 2]).abs().max() > 1e-4
    with pytest.raises(T2VError, match="--factor must be 2 or 4"):
        interpolate(stage, keys, 3)
    with pytest.raises(T2VError, match="at least 2 frames"):
        interpolate(stage, keys[:, :, :1], 2)


def test_batch_equals_single_calls(stage_dirs):
    stage = CascadeStage.from_pretrained(stage_dirs / "interpolate", "interpolate")
    keys = torch.rand(2, 3, 2, 16, 16) * 2 - 1
    both = interpolate(stage, keys, 2, steps=2, seed=5)
    second = interpolate(stage, keys[1:], 2, steps=2, seed=6)
    torch.testing.assert_close(both[1:], second, rtol=0, atol=1e-5)


def test_window_starts_tile_the_clip_from_keyframe_to_keyframe():
    assert window_starts(13, 5, 4) == [0, 4, 8]  # 4 keyframes at 4x: one gap per window
    assert window_starts(29, 5, 2) == [0, 4, 8, 12, 16, 20, 24]  # 15 keyframes at 2x: two gaps per window
    assert window_starts(15, 5, 2) == [0, 4, 8, 10]  # the last window moved back to end on frame 14
    assert window_starts(3, 5, 2) == [0]  # a clip shorter than the window is one window
    assert window_starts(29, 29, 4) == [0]
    with pytest.raises(T2VError, match="does not hold whole gaps"):
        window_starts(13, 4, 4)


def _windowed(stage_dirs, window):
    stage = CascadeStage.from_pretrained(stage_dirs / "interpolate", "interpolate")
    stage.defaults["window"] = window
    return stage


def test_windowed_interpolation_runs_the_network_on_each_window(stage_dirs):
    stage = _windowed(stage_dirs, 5)
    keys = torch.rand(2, 3, 4, 16, 16) * 2 - 1  # 4 keyframes -> 13 frames at 4x: windows 0-4, 4-8, 8-12
    seen, handle = _capture(stage.unet)
    out = interpolate(stage, keys, 4, steps=2, seed=1)
    handle.remove()
    assert out.shape == (2, 3, 13, 16, 16)
    torch.testing.assert_close(out[:, :, ::4], keys, rtol=0, atol=0)
    for kwargs in seen:  # 3 windows x 2 clips, 5 frames each, the two end keyframes known
        cond = kwargs["condition"]
        assert cond.shape == (6, 4, 5, 16, 16)
        assert torch.equal(cond[:, 3, :, 0, 0], torch.tensor([1.0, 0, 0, 0, 1]).expand(6, 5))
        for j in range(3):
            torch.testing.assert_close(cond[2 * j:2 * j + 2, :3, 0], keys[:, :, j], rtol=0, atol=0)
            torch.testing.assert_close(cond[2 * j:2 * j + 2, :3, 4], keys[:, :, j + 1], rtol=0, atol=0)
    # A frame depends only on the keyframes of its own window: changing the last keyframe leaves
    # frames 0-7 exactly as they were (the whole-clip network's receptive field reaches them).
    keys2 = keys.clone()
    keys2[:, :, 3] = -keys2[:, :, 3]
    out2 = interpolate(stage, keys2, 4, steps=2, seed=1)
    torch.testing.assert_close(out2[:, :, :8], out[:, :, :8], rtol=0, atol=0)
    assert (out2[:, :, 9:12] - out[:, :, 9:12]).abs().max() > 1e-4
    whole = interpolate(_windowed(stage_dirs, None), keys2, 4, steps=2, seed=1)
    assert (whole[:, :, 1:4] - out[:, :, 1:4]).abs().max() > 1e-6  # the whole clip in one piece differs


def test_windowed_interpolation_is_per_seed_and_batch_free(stage_dirs):
    stage = _windowed(stage_dirs, 5)
    keys = torch.rand(2, 3, 3, 16, 16) * 2 - 1  # 2x: 5 frames = one window; 4x: 9 frames = two
    for factor in (2, 4):
        both = interpolate(stage, keys, factor, steps=2, seed=5)
        torch.testing.assert_close(interpolate(stage, keys, factor, steps=2, seed=5), both, rtol=0, atol=0)
        torch.testing.assert_close(interpolate(stage, keys[1:], factor, steps=2, seed=6), both[1:], rtol=0, atol=1e-5)
    # A clip of exactly one window is the whole clip: the same result with or without windows.
    one = keys[:, :, :2]
    torch.testing.assert_close(interpolate(stage, one, 4, steps=2, seed=2),
                               interpolate(_windowed(stage_dirs, None), one, 4, steps=2, seed=2), rtol=0, atol=0)
    # A stochastic sampler draws its noise per (clip, window): still the same video per seed.
    a = interpolate(stage, keys, 4, steps=3, sampler="ddpm", seed=7)
    torch.testing.assert_close(interpolate(stage, keys, 4, steps=3, sampler="ddpm", seed=7), a, rtol=0, atol=0)


def test_upscale_condition_is_the_augmented_upsampled_clip(stage_dirs):
    stage = CascadeStage.from_pretrained(stage_dirs / "upscale", "upscale")
    video = torch.rand(2, 3, 2, 8, 8) * 2 - 1
    seen, handle = _capture(stage.unet)
    out = upscale(stage, video, noise_level=0.2, steps=2, seed=7)
    handle.remove()
    assert out.shape == (2, 3, 2, 16, 16)
    abar = DDPMScheduler.from_config(stage.scheduler_config).alphas_cumprod
    noise = torch.cat([torch.randn(3, 2, 16, 16, generator=g)[None] for g in seeded_generators(7 + 1_000_003, 2)])
    ref = augment_condition(abar, upsample(video, 2), torch.full((2,), 0.2), noise)
    for kwargs in seen:
        torch.testing.assert_close(kwargs["condition"], ref, rtol=0, atol=0)
        torch.testing.assert_close(kwargs["noise_level"], torch.full((2,), 0.2), rtol=0, atol=0)
    # Level 0 conditions on the plain upsampled clip.
    seen, handle = _capture(stage.unet)
    upscale(stage, video, noise_level=0.0, steps=1)
    handle.remove()
    torch.testing.assert_close(seen[0]["condition"], upsample(video, 2), rtol=0, atol=0)
    with pytest.raises(T2VError, match=r"in \[0, 1\]"):
        upscale(stage, video, noise_level=1.5)
    with pytest.raises(T2VError, match="pass a super-resolution stage"):
        upscale(CascadeStage.from_pretrained(stage_dirs / "interpolate", "interpolate"), video)


def test_self_ensemble_averages_the_flipped_clips_flipped_back(stage_dirs):
    """EDSR's geometric self-ensemble for video: n=4 is the mean of the clip super-resolved as is, flipped
    in width, in height and in both, each flipped back; n=1 is the plain sample; the folder sets the default."""
    stage = CascadeStage.from_pretrained(stage_dirs / "upscale", "upscale")
    video = torch.rand(1, 3, 3, 8, 8) * 2 - 1
    kw = dict(noise_level=0.1, steps=2, seed=4)
    plain = upscale(stage, video, **kw)
    assert torch.equal(upscale(stage, video, self_ensemble=1, **kw), plain)
    flips = [(), (-1,), (-2,), (-2, -1)]
    ref = sum(upscale(stage, video.flip(d), **kw).flip(d) if d else plain for d in flips) / 4
    torch.testing.assert_close(upscale(stage, video, self_ensemble=4, **kw), ref, rtol=0, atol=1e-6)
    assert (ref - plain).abs().max() > 1e-4  # the flips do change the samples: the test can fail
    eight = upscale(stage, video, self_ensemble=8, **kw)
    ref8 = sum(upscale(stage, video.flip(d), **kw).flip(d) for d in [(), (-1,), (-2,), (-2, -1), (2,), (2, -1), (2, -2), (2, -2, -1)]) / 8
    torch.testing.assert_close(eight, ref8, rtol=0, atol=1e-6)
    stage.defaults["self_ensemble"] = 4
    torch.testing.assert_close(upscale(stage, video, **kw), ref, rtol=0, atol=1e-6)
    with pytest.raises(T2VError, match="--self-ensemble must be 1, 2, 4 or 8"):
        upscale(stage, video, self_ensemble=3, **kw)


def test_windowed_upscale_runs_the_network_on_consecutive_windows(stage_dirs):
    stage = CascadeStage.from_pretrained(stage_dirs / "upscale", "upscale")
    stage.defaults["window"] = 3
    video = torch.rand(2, 3, 8, 8, 8) * 2 - 1  # 8 frames, windows of 3: frames 0-2, 3-5 and 5-7 (moved back)
    seen, handle = _capture(stage.unet)
    out = upscale(stage, video, noise_level=0.0, steps=2, seed=3)
    handle.remove()
    assert out.shape == (2, 3, 8, 16, 16)
    up = upsample(video, 2)
    for kwargs in seen:  # 3 windows x 2 clips, window-major
        assert kwargs["condition"].shape == (6, 3, 3, 16, 16)
        for j, s0 in enumerate((0, 3, 5)):
            torch.testing.assert_close(kwargs["condition"][2 * j:2 * j + 2], up[:, :, s0:s0 + 3], rtol=0, atol=0)
        torch.testing.assert_close(kwargs["noise_level"], torch.zeros(6), rtol=0, atol=0)
    # A frame depends only on its own window: changing frame 7 leaves frames 0-4 exactly as they were.
    video2 = video.clone()
    video2[:, :, 7] = -video2[:, :, 7]
    out2 = upscale(stage, video2, noise_level=0.0, steps=2, seed=3)
    torch.testing.assert_close(out2[:, :, :5], out[:, :, :5], rtol=0, atol=0)
    assert (out2[:, :, 7] - out[:, :, 7]).abs().max() > 1e-4
    # Per seed and free of the batch, as without windows.
    torch.testing.assert_close(upscale(stage, video[1:], noise_level=0.0, steps=2, seed=4), out[1:], rtol=0, atol=1e-5)
    stage.defaults["window"] = None
    whole = upscale(stage, video, noise_level=0.0, steps=2, seed=3)
    assert (whole[:, :, :3] - out[:, :, :3]).abs().max() > 1e-6  # the whole clip in one piece differs


# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_cascade(tmp_path_factory, stage_dirs):
    """A tiny latent base model (16x16 pixels) and stages whose decoder is made from its VAE."""
    from sd_fixture import make_tiny_sd

    from t2v.models import inflate_folder
    from t2v.models.temporal_vae import TemporalAutoencoder

    root = tmp_path_factory.mktemp("tc")
    base = inflate_folder(make_tiny_sd(root / "sd"), "video-ldm", root / "base")
    stages = root / "stages"
    for name in ("interpolate", "upscale"):
        shutil.copytree(stage_dirs / name, stages / name)
    TemporalAutoencoder.from_vae(AutoencoderKL.from_pretrained(base / "vae")).save_pretrained(stages / "vae_temporal")
    return base, stages


def test_cascade_runs_every_stage(tiny_cascade):
    base, stages = tiny_cascade
    pipe = CascadePipeline.from_pretrained(base, interpolator=stages / "interpolate", upscaler=stages / "upscale",
                                           decoder=stages / "vae_temporal")
    out = pipe("a red circle moving right", keyframes=3, factors=(2, 2), num_inference_steps=2, stage_steps=1,
               return_stages=True)
    assert out["keyframes"].shape == (1, 3, 3, 16, 16)
    assert out["interpolated"].shape == (1, 3, 9, 16, 16)
    assert out["video"].shape == (1, 3, 9, 32, 32)
    torch.testing.assert_close(out["interpolated"][:, :, ::4], out["keyframes"], rtol=0, atol=0)
    # The keyframes are the base model's latents through the temporal decoder (identity at init here:
    # the base pipeline's own per-frame decoding).
    latents = pipe.base("a red circle moving right", num_frames=3, num_inference_steps=2, output_latents=True, progress=False)
    torch.testing.assert_close(out["keyframes"], pipe.base.decode_latents(latents), rtol=0, atol=1e-5)
    again = pipe("a red circle moving right", keyframes=3, factors=(2, 2), num_inference_steps=2, stage_steps=1)
    torch.testing.assert_close(again, out["video"], rtol=0, atol=0)


def test_cascade_refuses_a_decoder_of_another_vae(tiny_cascade, stage_dirs):
    base, stages = tiny_cascade
    with pytest.raises(T2VError, match="does not fit the base model's VAE"):
        CascadePipeline.from_pretrained(base, interpolator=stages / "interpolate", upscaler=stages / "upscale",
                                        decoder=stage_dirs / "vae_temporal")
    with pytest.raises(T2VError, match="not a temporal decoder folder"):
        load_temporal_decoder(stages / "upscale")
    with pytest.raises(T2VError, match="--keyframes must be at least 2"):
        CascadePipeline.from_pretrained(base, interpolator=stages / "interpolate", upscaler=stages / "upscale",
                                        decoder=stages / "vae_temporal")("a cat", keyframes=1)
