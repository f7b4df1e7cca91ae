"""Tune-A-Video save / load / inversion / edit on the tiny SD model (CPU, seconds)."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from pipeline_helpers import make_record, perturb_
from t2v.errors import T2VError
from t2v.models import RECIPES, inflate, load_unet2d
from t2v.pipelines import tune_a_video as tav
from t2v.pipelines.tune_a_video import add_lora, load_tuned, save_tuned, tuned_parameters

GEN = dict(num_frames=4, num_inference_steps=4, guidance_scale=3.0, progress=False)


def _tuned_unet(tiny_sd, lora_rank=None):
    unet = inflate(load_unet2d(tiny_sd), "tune-a-video")
    if lora_rank:
        add_lora(unet, lora_rank)
    perturb_(tuned_parameters(unet))
    return unet.eval()


def _unet_out(unet):
    g = torch.Generator().manual_seed(3)
    x, text = torch.randn(1, 4, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        return unet(x, 500, text)


def test_delta_holds_only_recipe_params_and_reloads_bit_identical(tiny_sd, clip_path, sampling, tmp_path):
    unet = _tuned_unet(tiny_sd)
    out = save_tuned(tmp_path / "t", unet, record=make_record(tiny_sd, clip_path, sampling))
    delta = load_file(out / "unet_delta.safetensors")
    trainable = unet.trainable_parameters()
    assert set(delta) == set(trainable)
    pattern = [re.compile(p) for p in RECIPES["tune-a-video"].trainable]
    assert all(any(p.search(n) for p in pattern) for n in delta)
    assert any(".attn1.to_q." in n for n in delta) and any(".attn2.to_q." in n for n in delta)
    assert any(".temporal." in n for n in delta)
    full = sum(p.numel() for p in unet.parameters())
    small = sum(t.numel() for t in delta.values())
    assert small < 0.1 * full, (small, full)  # 43,616 of 822,244 parameters
    rec = json.loads((out / "tune.json").read_text())
    assert rec["prompt"] == "a blob drifting right" and rec["delta_numel"] == small and rec["lora"] is None
    assert not list(out.glob(".*.tmp"))  # written via temp + rename

    pipe, record = load_tuned(out)
    assert record["tuned_dir"] == str(out)
    assert torch.equal(_unet_out(pipe.unet), _unet_out(unet))  # bit-identical reload
    base = inflate(load_unet2d(tiny_sd), "tune-a-video")
    assert not torch.allclose(_unet_out(base), _unet_out(unet))  # the delta matters
    # Whole pipeline: the reloaded model samples what the in-memory tuned model samples.
    pipe2, _ = load_tuned(out)
    pipe2.unet = unet
    assert torch.equal(pipe(["a wolf"], **GEN), pipe2(["a wolf"], **GEN))


def test_lora_delta_reloads_bit_identical(tiny_sd, clip_path, sampling, tmp_path):
    unet = _tuned_unet(tiny_sd, lora_rank=2)
    params = tuned_parameters(unet)
    assert any(".lora_A." in n for n in params) and not any(".base_layer." in n for n in params)
    out = save_tuned(tmp_path / "t", unet, record=make_record(tiny_sd, clip_path, sampling, lora_rank=2))
    delta = load_file(out / "unet_delta.safetensors")
    assert set(delta) == set(params)
    assert not any(".to_q.weight" in n for n in delta)  # the frozen to_q weights stay out
    assert json.loads((out / "tune.json").read_text())["lora"]["config"]["r"] == 2
    pipe, _ = load_tuned(out)
    assert torch.equal(_unet_out(pipe.unet), _unet_out(unet))


def test_missing_or_mismatched_delta_is_one_line_error(tiny_sd, video_model, clip_path, sampling, tmp_path):
    out = save_tuned(tmp_path / "t", _tuned_unet(tiny_sd), record=make_record(tiny_sd, clip_path, sampling))
    delta = load_file(out / "unet_delta.safetensors")
    name = next(iter(delta))

    wrong = dict(delta, **{name: torch.zeros(3, 3)})
    save_file(wrong, str(out / "unet_delta.safetensors"), metadata={"format": tav._DELTA_FORMAT})
    with pytest.raises(T2VError, match="does not match the base model") as e:
        load_tuned(out)
    assert "\n" not in str(e.value)

    save_file({k: v for k, v in delta.items() if k != name}, str(out / "unet_delta.safetensors"),
              metadata={"format": tav._DELTA_FORMAT})
    with pytest.raises(T2VError, match="missing names"):
        load_tuned(out)

    (out / "unet_delta.safetensors").unlink()
    with pytest.raises(T2VError, match="no unet_delta.safetensors"):
        load_tuned(out)

    save_file(delta, str(out / "unet_delta.safetensors"), metadata={"format": tav._DELTA_FORMAT})
    rec = json.loads((out / "tune.json").read_text())
    (out / "tune.json").write_text(json.dumps(dict(rec, base_model=str(video_model))))
    with pytest.raises(T2VError, match="inflated with 'make-a-video'"):
        load_tuned(out)

    with pytest.raises(T2VError, match="no tune.json"):
        load_tuned(tmp_path)


def test_save_tuned_rejects_incomplete_record(tiny_sd, tmp_path):
    with pytest.raises(T2VError, match="lacks video, prompt, sampling"):
        save_tuned(tmp_path, _tuned_unet(tiny_sd), record={"base_model": str(tiny_sd)})


# ----------------------------------------------------------------------------------------------
# inversion and editing
# ----------------------------------------------------------------------------------------------
def _rmse(a, b):
    return (a - b).pow(2).mean().sqrt().item()


def test_inversion_round_trip_beats_fresh_noise(tuned_dir):
    """Invert the clip's latents (empty prompt, no guidance), sample back with DDIM: the clip returns.

    Latent RMSE on the tiny random-weight model (latents have unit variance; numbers from
    tests/pipelines/measure_inversion.py): round trip 0.67 (10 steps) -> 0.38 (50 steps), first-order
    convergence beyond (0.14 at 200, 0.063 at 500); sampling from fresh noise 9.4 / 14.6 (ratio 39 at 50).
    """
    pipe, record = load_tuned(tuned_dir)
    z0 = pipe.encode_video(tav.source_clip(record)[0][None])  # (1, 4, 4, 8, 8)
    assert z0.shape == (1, 4, 4, 8, 8) and 0.5 < z0.std() < 2  # the fixture's VAE scales to unit variance
    kw = dict(guidance_scale=1.0, scheduler="ddim", progress=False, output_latents=True, allow_empty_prompt=True)
    errors = {}
    for steps in (10, 50):
        noise = tav.invert_source(pipe, record, steps, cache=False, progress=False)
        back = pipe([""], latents=noise, num_inference_steps=steps, **kw)
        fresh = pipe([""], num_frames=4, num_inference_steps=steps, **kw)
        errors[steps] = (_rmse(back, z0), _rmse(fresh, z0))
    print("latent RMSE (round trip, fresh noise):", errors)
    assert errors[50][0] < 0.75 * errors[10][0]  # the DDIM discretisation error shrinks with steps
    assert errors[50][1] > 10 * errors[50][0]


def test_inversion_cache_is_reused_and_rejected_on_other_settings(tuned_dir, monkeypatch):
    import t2v.diffusion.inversion as inversion

    pipe, record = load_tuned(tuned_dir)
    calls = []
    real = inversion.ddim_invert
    monkeypatch.setattr(inversion, "ddim_invert", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = tav.inversion_path(record, 3)
    path.unlink(missing_ok=True)

    first = tav.invert_source(pipe, record, 3, progress=False)
    assert path.is_file() and len(calls) == 1
    mtime = path.stat().st_mtime_ns
    second = tav.invert_source(pipe, record, 3, progress=False)
    assert len(calls) == 1 and path.stat().st_mtime_ns == mtime  # read back, not recomputed
    assert torch.equal(first, second)

    # A cache made with other settings (here: another clip sampling) is recomputed and replaced.
    inversion.save_inversion(path, torch.zeros_like(first), dict(tav.inversion_meta(pipe, record, 3), sampling={"num_frames": 99}))
    third = tav.invert_source(pipe, record, 3, progress=False)
    assert len(calls) == 2 and torch.equal(third, first)
    assert torch.equal(tav.invert_source(pipe, record, 3, progress=False), first) and len(calls) == 2
    # Another step count is another cache file.
    tav.invert_source(pipe, record, 2, progress=False)
    assert len(calls) == 3 and tav.inversion_path(record, 2).is_file()


def test_edit_samples_each_prompt_from_the_inverted_noise(tuned_dir):
    pipe, record = load_tuned(tuned_dir)
    noise = tav.invert_source(pipe, record, 4, progress=False)
    videos = tav.edit(pipe, record, ["a red wolf", "a blue wolf"], steps=4, guidance=5.0, progress=False)
    assert [v.shape for v in videos] == [(3, 4, 16, 16)] * 2
    ref = pipe(["a blue wolf"], latents=noise, num_inference_steps=4, guidance_scale=5.0, scheduler="ddim", progress=False)
    assert torch.equal(videos[1], ref[0])
    assert not torch.equal(videos[0], videos[1])
    with pytest.raises(T2VError, match="prompt is empty"):
        tav.edit(pipe, record, ["  "], steps=4, progress=False)


def test_real_clip_goes_through_invert_source(assets, tmp_path):
    """wolf.mp4 (Tune-A-Video's example clip) at 32x32, 6 frames every 2nd: encode + DDIM inversion."""
    from t2v.data.sampling import FrameSampling
    from sd_fixture import make_tiny_sd

    sd = make_tiny_sd(tmp_path / "sd")
    s = FrameSampling(num_frames=6, height=32, width=32, sample_stride=2, start=0)
    unet = inflate(load_unet2d(sd), "tune-a-video")
    out = save_tuned(tmp_path / "t", unet, record=make_record(sd, assets / "videos" / "wolf.mp4", s, prompt="a wolf"))
    pipe, record = load_tuned(out)
    clip, fps = tav.source_clip(record)
    assert clip.shape == (3, 6, 32, 32) and fps > 0
    noise = tav.invert_source(pipe, record, 5, progress=False)
    assert noise.shape == (1, 4, 6, 16, 16) and torch.isfinite(noise).all()
    kw = dict(num_inference_steps=5, guidance_scale=1.0, scheduler="ddim", progress=False, output_latents=True,
              allow_empty_prompt=True)
    back = pipe([""], latents=noise, **kw)
    fresh = pipe([""], num_frames=6, height=32, width=32, **kw)
    z0 = pipe.encode_video(clip[None])
    assert _rmse(fresh, z0) > 5 * _rmse(back, z0), (_rmse(back, z0), _rmse(fresh, z0))


def test_clip_shorter_than_frames_times_stride_is_one_line_error(tuned_dir):
    pipe, record = load_tuned(tuned_dir)
    record = dict(record, sampling=dict(record["sampling"], num_frames=8, sample_stride=2))  # needs 15 of 12 frames
    with pytest.raises(T2VError, match="clip has 12 frames; 8 frames every 2 need 15") as e:
        tav.invert_source(pipe, record, 2, progress=False)
    assert "\n" not in str(e.value)
