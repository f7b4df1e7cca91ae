"""`t2v train` stages interpolate, upscale and vae-decoder: config checks, tiny runs whose outputs
load, what each batch holds, a frozen encoder, and exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cascade_helpers import tiny_vae

from t2v.data.shapes_windows import ShapesWindows
from t2v.errors import T2VError
from t2v.metrics.reconstruction import centroid_track
from t2v.metrics.reconstruction import ssim_loss
from t2v.training.cascade import clip_estimate, diffusion_inputs
from t2v.training.config import config_from_dict

TINY_NET = {"block_out_channels": [8, 16], "norm_num_groups": 4}


def tiny_config(stage: str, out, **extra) -> dict:
    base = {
        "stage": stage, "output_dir": str(out), "max_steps": 3, "seed": 0,
        "data": {"dataset": "shapes", "shapes_length": 64, "seed": 1, "num_frames": 5, "height": 16, "width": 16, "batch_size": 2},
        "cascade": {**TINY_NET, "clip_frames": [8, 12]},
        "optim": {"lr": 1e-3, "warmup_steps": 0},
        "ema": {"enabled": True, "decay": 0.9},
        "checkpoint": {"every": 2, "keep": 2},
        "logging": {"every": 1, "progress": False, "tensorboard": False},
    }
    for key, value in extra.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return base


def test_config_errors_are_one_line(tmp_path):
    with pytest.raises(T2VError, match=r"must be k\*n \+ 1"):
        config_from_dict(tiny_config("interpolate", tmp_path, data={"num_frames": 6}))
    with pytest.raises(T2VError, match="remove model.recipe"):
        config_from_dict(tiny_config("upscale", tmp_path, model={"recipe": "vdm"}))
    with pytest.raises(T2VError, match="cascade.factors"):
        config_from_dict(tiny_config("interpolate", tmp_path, cascade={"factors": [3]}))
    with pytest.raises(T2VError, match="set model.vae"):
        config_from_dict(tiny_config("vae-decoder", tmp_path))
    with pytest.raises(T2VError, match="cascade.latent_noise must be >= 0"):
        config_from_dict(tiny_config("vae-decoder", tmp_path, model={"vae": str(tmp_path)}, cascade={"latent_noise": -0.1}))
    with pytest.raises(T2VError, match="unknown config key 'cascade.facters'"):
        config_from_dict(tiny_config("interpolate", tmp_path, cascade={"facters": [2]}))


def test_windows_are_deterministic_and_pairs_show_one_scene():
    ds = ShapesWindows(8, seed=3, size=16, window=4, clip_frames=(6, 10), scale=2)
    a, b = ds[5], ds[5]
    assert torch.equal(a["video"], b["video"]) and torch.equal(a["video_hi"], b["video_hi"])
    assert a["video"].shape == (3, 4, 16, 16) and a["video_hi"].shape == (3, 4, 32, 32)
    for i in range(8):
        lo, hi = centroid_track(ds[i]["video"]), centroid_track(ds[i]["video_hi"])  # both px at 64
        d = [np.hypot(p[0] - q[0], p[1] - q[1]) for p, q in zip(lo, hi) if p is not None and q is not None]
        assert d and max(d) <= 3.0  # rounding at 16 px moves a corner by at most half a pixel (2 px at 64)


def test_upscale_batches_crop_target_and_condition_alike(tmp_path):
    c = config_from_dict(tiny_config("upscale", tmp_path, data={"num_frames": 2},
                                     cascade={"crop": 8, "max_noise_level": 0.0, "residual": False}))
    video = torch.rand(2, 3, 2, 16, 16) * 2 - 1
    from t2v.pipelines.cascade import upsample

    batch = {"video": video, "video_hi": upsample(video, 2)}  # a target equal to the upsampled clip
    abar = torch.linspace(0.99, 0.01, 1000)
    x0, cond, _ = diffusion_inputs(c, batch, abar, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert x0.shape == (2, 3, 2, 8, 8)
    torch.testing.assert_close(cond["condition"], x0, rtol=0, atol=0)  # same crop; level 0: no noise
    assert torch.equal(cond["noise_level"], torch.zeros(2))
    # Residual targets (the default): scale x (target - upsampled clip), here exactly zero.
    r = config_from_dict(tiny_config("upscale", tmp_path, data={"num_frames": 2},
                                     cascade={"crop": 8, "max_noise_level": 0.0, "residual_scale": 8.0}))
    hi = batch["video_hi"] + 0.01
    x0, cond, ref = diffusion_inputs(r, {"video": video, "video_hi": hi}, abar, torch.Generator().manual_seed(0), torch.device("cpu"))
    torch.testing.assert_close(x0, torch.full_like(x0, 0.08), rtol=0, atol=1e-5)
    torch.testing.assert_close(ref, cond["condition"], rtol=0, atol=0)  # the clean upsampled crop (level 0)
    torch.testing.assert_close(clip_estimate(x0, ref, 8.0), ref + 0.01, rtol=0, atol=1e-6)  # the true crop back


def test_ssim_weight_adds_one_minus_ssim_of_the_clip_estimate(tmp_path):
    from t2v.metrics.reconstruction import ssim
    from t2v.training.loop import train

    with pytest.raises(T2VError, match="prediction_type to sample"):
        config_from_dict(tiny_config("upscale", tmp_path, cascade={"ssim_weight": 1.0}))
    with pytest.raises(T2VError, match="ssim_weight must be >= 0"):
        config_from_dict(tiny_config("upscale", tmp_path, cascade={"ssim_weight": -1.0}, diffusion={"prediction_type": "sample"}))
    a, b = torch.rand(2, 3, 2, 16, 16) * 2 - 1, torch.rand(2, 3, 2, 16, 16) * 2 - 1
    assert abs(float(ssim_loss(a, b)) - (1 - ssim(a, b))) < 1e-6 and float(ssim_loss(a, a)) < 1e-6
    runs = {}
    for w in (0.0, 2.0):
        cfg = tiny_config("upscale", tmp_path / f"w{w}", max_steps=1, data={"num_frames": 2},
                          cascade={"crop": 16, "ssim_weight": w}, diffusion={"prediction_type": "sample"})
        runs[w] = train(config_from_dict(cfg)).losses[0]
    # Same batch, noise and weights at step 1: the difference is 2 x (1 - SSIM) of the untrained
    # network's clip estimate, which is far from the target.
    assert 0.05 < runs[2.0] - runs[0.0] < 2.0, runs


def test_interpolate_batches_mask_a_drawn_factor(tmp_path):
    c = config_from_dict(tiny_config("interpolate", tmp_path, data={"num_frames": 9},
                                     cascade={"clip_frames": [9, 12], "residual": False}))
    video = torch.rand(1, 3, 9, 16, 16)
    g = torch.Generator().manual_seed(0)
    masks = set()
    for _ in range(12):
        x0, cond, _ = diffusion_inputs(c, {"video": video}, torch.ones(10), g, torch.device("cpu"))
        assert torch.equal(x0, video)
        known = cond["condition"][0, 3, :, 0, 0]
        masks.add(tuple(known.tolist()))
        torch.testing.assert_close(cond["condition"][:, :3], video * known.view(1, 1, 9, 1, 1))
    assert masks == {tuple(float(t % 2 == 0) for t in range(9)), tuple(float(t % 4 == 0) for t in range(9))}


@pytest.mark.slow
def test_tiny_runs_write_loadable_stages(tmp_path):
    from t2v.pipelines.cascade import CascadeStage, interpolate, load_temporal_decoder
    from t2v.training.loop import train

    r = train(config_from_dict(tiny_config("interpolate", tmp_path / "i")))
    assert r.step == 3 and len(r.losses) == 3 and all(np.isfinite(r.losses))
    stage = CascadeStage.from_pretrained(r.output, "interpolate")
    assert stage.defaults["window"] == 5  # the training window: what `interpolate` feeds the network at once
    assert interpolate(stage, torch.zeros(1, 3, 2, 16, 16), 4, steps=1).shape == (1, 3, 5, 16, 16)

    r = train(config_from_dict(tiny_config("upscale", tmp_path / "u", data={"num_frames": 2}, cascade={"crop": 16})))
    assert CascadeStage.from_pretrained(r.output, "upscale").unet.config.level_embedding

    vae = tiny_vae()
    vae.save_pretrained(tmp_path / "vae")
    r = train(config_from_dict(tiny_config("vae-decoder", tmp_path / "d", model={"vae": str(tmp_path / "vae")},
                                           data={"num_frames": 4}, cascade={"clip_frames": [4, 8], "adversarial_start": 0},
                                           ema={"enabled": False})))
    model = load_temporal_decoder(r.output)
    trained = model.vae.state_dict()
    for k, v in vae.state_dict().items():
        if k.startswith(("encoder.", "quant_conv.")):
            torch.testing.assert_close(trained[k], v, rtol=0, atol=0)  # the encoder stays frozen
    assert any((p != 0).any() for p in (model.temporal_parameters()[n] for n in model.temporal_parameters() if "conv2.weight" in n))


@pytest.mark.slow
def test_resume_is_exact(tmp_path):
    from safetensors.torch import load_file

    from t2v.training.loop import train

    straight = train(config_from_dict(tiny_config("interpolate", tmp_path / "a", max_steps=4)))
    first = config_from_dict(tiny_config("interpolate", tmp_path / "b", max_steps=2))
    train(first)
    resumed = train(config_from_dict(tiny_config("interpolate", tmp_path / "b", max_steps=4)), resume=True)
    assert resumed.resumed_from.name == "step-00000002"
    assert resumed.losses == straight.losses[2:]
    a = load_file(straight.output / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(resumed.output / "unet" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(T2VError, match="already has checkpoints"):
        train(config_from_dict(tiny_config("interpolate", tmp_path / "b", max_steps=5)))


@pytest.mark.slow
def test_decoder_with_latent_noise_trains_on_noisy_latents_and_resumes_exactly(tmp_path):
    from safetensors.torch import load_file

    from t2v.training.loop import train

    tiny_vae().save_pretrained(tmp_path / "vae")

    def cfg(out, steps, noise):
        return config_from_dict(tiny_config("vae-decoder", tmp_path / out, max_steps=steps, model={"vae": str(tmp_path / "vae")},
                                            data={"num_frames": 4}, cascade={"clip_frames": [4, 8], "latent_noise": noise},
                                            ema={"enabled": False}))

    clean, noisy = train(cfg("clean", 4, 0.0)), train(cfg("noisy", 4, 1.0))
    # the same clips and weights at step 1; only the noise on the latents differs, so the losses do
    assert clean.losses[0] != noisy.losses[0] and all(np.isfinite(noisy.losses))
    train(cfg("b", 2, 1.0))
    resumed = train(cfg("b", 4, 1.0), resume=True)
    assert resumed.losses == noisy.losses[2:]  # the noise draws come from the checkpointed generator
    files = [load_file(next((r.output).rglob("*.safetensors"))) for r in (noisy, resumed)]
    assert files[0].keys() == files[1].keys() and all(torch.equal(files[0][k], files[1][k]) for k in files[0])
