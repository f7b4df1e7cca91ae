"""The shipped ShapesWorld stages (t2v/assets/cascade) against their baselines, on clips training
never saw (data seed 9001; the stages trained on seeds 11-13). 4 clips here; the 16-clip tables
come from benchmarks/cascade_eval.py (docs/cascade.md). Thresholds sit below the measured 4-clip
values by a margin for CPU-to-CPU float differences, and above the baselines."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from t2v.data.shapes import ShapesWorldDataset
from t2v.data.shapes_windows import ShapesWindows
from t2v.metrics.reconstruction import flicker, psnr, ssim, track_error
from t2v.pipelines.cascade import (
    CascadePipeline,
    CascadeStage,
    blend_neighbours,
    default_stage_dir,
    interpolate,
    load_temporal_decoder,
    place_keyframes,
    upscale,
)

CLIPS, SEED = 4, 9001
# What the shipped stages reach on these 4 clips, less a margin (measured: interpolation +3.64 dB over
# blending at 4x, +3.52 dB at 2x and +3.04 dB at 2x then 2x, windows of the training length;
# super-resolution (SSIM fine-tune) +1.26 dB PSNR and -0.0010 SSIM against bicubic; temporal decoder
# +7.06 dB and 56.6% less flicker than the per-frame decoder). The issue's target they do not reach yet
# (SR float SSIM) is the strict xfail below. 2x then 2x reaches the 3 dB target on
# benchmarks/cascade_eval.py's 16 clips (+3.08) and on these 4 only by 0.04 dB, so it is held at a floor.
INTERP_MIN_GAIN_DB = 2.0
INTERP_2X2_MIN_GAIN_DB = 2.8
SR_MIN_GAIN_DB = 0.4
DECODER_MIN_PSNR_GAIN_DB = 5.0
DECODER_MIN_FLICKER_REDUCTION = 0.45
# Issue 9's targets.
TARGET_INTERP_GAIN_DB = 3.0
TARGET_FLICKER_REDUCTION = 0.30


@pytest.fixture(scope="module")
def clips29() -> torch.Tensor:
    ds = ShapesWorldDataset(CLIPS, seed=SEED, size=64, num_frames=29, include_held_out=True)
    return torch.stack([ds[i]["video"] for i in range(CLIPS)])  # (4, 3, 29, 64, 64)


def gain_over_blending(out: torch.Tensor, clips: torch.Tensor, keys: torch.Tensor, factor: int) -> float:
    """Mean PSNR gain (dB) of `out` over linear blending of `keys` (every `factor`-th frame of
    `clips`), on the frames between the keyframes."""
    clip, known = place_keyframes(keys, factor)
    blended = blend_neighbours(clip, known)
    return float(np.mean([psnr(out[i][:, ~known], clips[i][:, ~known]) - psnr(blended[i][:, ~known], clips[i][:, ~known])
                          for i in range(len(clips))]))


def interpolate_against_blending(clips: torch.Tensor, factor: int):
    """(stage, keyframes, known mask, output, mean PSNR gain in dB over linear blending on the made
    frames) of the shipped stage with keyframes every `factor` frames of `clips`."""
    stage = CascadeStage.from_pretrained(None, "interpolate")
    keys = clips[:, :, ::factor]
    out = interpolate(stage, keys, factor, seed=0)
    known = place_keyframes(keys, factor)[1]
    return stage, keys, known, out, gain_over_blending(out, clips, keys, factor)


@pytest.fixture(scope="module")
def interpolated(clips29):
    return interpolate_against_blending(clips29, 4)  # 8 keyframes


def test_shipped_interpolation_beats_blending_and_keeps_the_track(clips29, interpolated):
    stage, keys, known, out, gain = interpolated
    assert out.shape == clips29.shape
    tracks = [track_error(out[i], clips29[i]) for i in range(CLIPS)]
    assert gain >= INTERP_MIN_GAIN_DB, gain
    assert max(tracks) <= 1.5, tracks  # the issue's bound on the oracle's centroid track, px at 64
    assert torch.equal(out[:, :, known], keys)  # keyframes come back unchanged
    again = interpolate(stage, keys[1:2], 4, seed=1)  # video i of a batch uses seed + i
    assert torch.equal(again, out[1:2])


def test_shipped_interpolation_reaches_the_issue_target_at_4x(interpolated):
    assert interpolated[-1] >= TARGET_INTERP_GAIN_DB, interpolated[-1]


def test_shipped_interpolation_reaches_the_issue_target_at_2x(clips29):
    gain = interpolate_against_blending(clips29, 2)[-1]
    assert gain >= TARGET_INTERP_GAIN_DB, gain


def test_shipped_interpolation_applied_twice(clips29, interpolated):
    """2x then 2x (8 -> 15 -> 29 frames) against blending the 8 keyframes, on 4x's made frames."""
    stage, keys, known, _, _ = interpolated
    out = interpolate(stage, interpolate(stage, keys, 2, seed=0), 2, seed=0)
    assert torch.equal(out[:, :, known], keys)
    gain = gain_over_blending(out, clips29, keys, 4)
    assert gain >= INTERP_2X2_MIN_GAIN_DB, gain


@pytest.fixture(scope="module")
def super_resolved():
    stage = CascadeStage.from_pretrained(None, "upscale")
    ds = ShapesWindows(CLIPS, seed=SEED, size=64, window=8, clip_frames=(16, 29), scale=2, include_held_out=True)
    lo = torch.stack([ds[i]["video"] for i in range(CLIPS)])  # (4, 3, 8, 64, 64)
    hi = torch.stack([ds[i]["video_hi"] for i in range(CLIPS)])  # (4, 3, 8, 128, 128)
    out = upscale(stage, lo, seed=0)
    bicubic = rearrange(F.interpolate(rearrange(lo, "b c f h w -> (b f) c h w"), scale_factor=2, mode="bicubic",
                                      align_corners=False).clamp(-1, 1), "(b f) c h w -> b c f h w", b=CLIPS)
    gain_psnr = np.mean([psnr(out[i], hi[i]) - psnr(bicubic[i], hi[i]) for i in range(CLIPS)])
    gain_ssim = np.mean([ssim(out[i], hi[i]) - ssim(bicubic[i], hi[i]) for i in range(CLIPS)])
    return float(gain_psnr), float(gain_ssim)


def test_shipped_super_resolution_beats_bicubic_in_psnr(super_resolved):
    assert super_resolved[0] >= SR_MIN_GAIN_DB, super_resolved


def test_shipped_super_resolution_beats_bicubic_in_ssim(super_resolved):
    """With the folder's self-ensemble (4 flips averaged); a single sample stays ~0.001 below bicubic here."""
    assert super_resolved[1] > 0, super_resolved


@pytest.fixture(scope="module")
def decoded():
    from diffusers import AutoencoderKL

    temporal = load_temporal_decoder(None)
    assert temporal.dtype == torch.float32  # stored in fp16, loaded as float32
    image_vae = AutoencoderKL.from_pretrained(default_stage_dir("image_vae")).eval()
    ds = ShapesWorldDataset(CLIPS, seed=SEED, size=64, num_frames=16, include_held_out=True)
    videos = [ds[i]["video"] for i in range(CLIPS)]
    with torch.no_grad():
        per_frame = [rearrange(image_vae.decode(image_vae.encode(rearrange(v, "c f h w -> f c h w")).latent_dist.mode())
                               .sample.clamp(-1, 1), "f c h w -> c f h w") for v in videos]
        ours = [temporal(v[None]).clamp(-1, 1)[0] for v in videos]
    d_psnr = np.mean([psnr(o, v) - psnr(p, v) for o, p, v in zip(ours, per_frame, videos)])
    reduction = 1 - np.mean([flicker(o, v) for o, v in zip(ours, videos)]) / np.mean([flicker(p, v) for p, v in zip(per_frame, videos)])
    return float(d_psnr), float(reduction)


def test_shipped_temporal_decoder_against_the_per_frame_decoder(decoded):
    d_psnr, reduction = decoded
    assert d_psnr >= DECODER_MIN_PSNR_GAIN_DB and reduction >= DECODER_MIN_FLICKER_REDUCTION, decoded


def test_shipped_temporal_decoder_reaches_the_issue_target_on_shapesworld(decoded):
    """Issue 9: flicker at least 30% lower than the per-frame decoder's (ShapesWorld; real clips need
    a real-image autoencoder, docs/cascade.md)."""
    assert decoded[1] >= TARGET_FLICKER_REDUCTION


@pytest.mark.slow
def test_the_cascade_runs_out_of_the_box(tmp_path):
    """`t2v generate --cascade` with no folder: 8 keyframes -> 29 frames -> 128x128, read back."""
    from t2v.data.video_io import read_video

    out = tmp_path / "c.mp4"
    r = subprocess.run([sys.executable, "-m", "t2v.cli", "generate", "a red circle moving right", "--cascade",
                        "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    frames, _ = read_video(str(out))
    assert tuple(frames.shape) == (29, 128, 128, 3)
    assert isinstance(CascadePipeline.from_pretrained(None), CascadePipeline)


def test_the_decoder_stage_is_the_default_models_vae_and_ships_once():
    """The ShapesWorld decoder stage is the default model's `vae/` (Video LDM's temporally fine-tuned
    decoder); the package holds its weights once."""
    from importlib import resources

    from safetensors.torch import load_file

    from t2v.pipelines.model_folder import default_model_dir

    temporal = load_temporal_decoder(None)
    mine = load_file(default_model_dir() / "vae" / "diffusion_pytorch_model.safetensors")
    state = temporal.state_dict()
    assert mine.keys() == state.keys() and all(torch.equal(mine[k].float(), state[k]) for k in mine)
    assets = __import__("pathlib").Path(str(resources.files("t2v.assets").joinpath("cascade")))
    assert sorted(p.name for p in assets.iterdir() if p.is_dir()) == ["image_vae", "interpolate", "upscale"]
    pipe = CascadePipeline.from_pretrained(None)
    assert pipe.decoder is pipe.base.vae  # no decoder given: the base model decodes with its own, loaded once


def test_the_shipped_weights_fit_the_budget():
    """Issue 9 raised the package's weight budget (default model + cascade stages) to 60 MB."""
    from importlib import resources

    assets = __import__("pathlib").Path(str(resources.files("t2v.assets").joinpath("cascade"))).parent
    weights = sorted(assets.rglob("*.safetensors"))
    names = {p.relative_to(assets).parts[:2] for p in weights}
    assert {("cascade", "interpolate"), ("cascade", "upscale"), ("default_model", "vae")} <= names
    assert sum(p.stat().st_size for p in weights) <= 60e6
