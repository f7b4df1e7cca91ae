"""Text-to-video sampling: reproducibility, batches, eps / v prediction against a hand-written DDIM
loop, chunked VAE decoding against per-frame decoding, and one-line errors for bad input."""

from __future__ import annotations

import pytest
import torch

from sd_fixture import make_tiny_sd
from t2v.errors import T2VError
from t2v.models import inflate_folder
from t2v.pipelines import TextToVideoPipeline

FAST = dict(num_frames=3, num_inference_steps=3, progress=False)


@pytest.fixture(scope="module")
def pipe(video_model):
    return TextToVideoPipeline.from_pretrained(video_model)


@pytest.mark.parametrize("sampler", ["ddim", "dpm++", "euler", "ddpm"])
def test_seeded_reproducible_and_batch_equals_singles(pipe, sampler):
    kw = dict(FAST, scheduler=sampler, guidance_scale=4.0)
    a = pipe("a cat on a sofa", seed=5, **kw)
    assert a.shape == (1, 3, 3, 16, 16) and a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, pipe("a cat on a sofa", seed=5, **kw))  # bit-identical
    assert (a - pipe("a cat on a sofa", seed=6, **kw)).abs().max() > 1e-2  # another seed, another video
    # Video i of a batch = a single call with seed + i: the same noise, and network outputs equal up to
    # float rounding (a batch of 4 rows may pick other conv kernels than a batch of 2: ~1e-7 per step).
    both = pipe(["a cat on a sofa", "a dog in the snow"], seed=5, **kw)
    torch.testing.assert_close(both[0], a[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(both[1], pipe("a dog in the snow", seed=6, **kw)[0], atol=1e-5, rtol=0)
    print(sampler, "batch vs single max diff", (both[0] - a[0]).abs().max().item())


def test_text_encoded_once_per_distinct_prompt(pipe, monkeypatch):
    rows = []
    real = pipe.text_encoder.forward
    monkeypatch.setattr(pipe.text_encoder, "forward", lambda ids, *a, **k: rows.append(ids.shape[0]) or real(ids, *a, **k))
    pipe(["a cat", "a cat", "a dog"], guidance_scale=3.0, **FAST)
    assert rows == [3]  # one encoder call for "", "a cat", "a dog", not one per step or per video
    rows.clear()
    pipe(["a cat"], guidance_scale=1.0, **FAST)
    assert rows == [1]  # no guidance: no unconditional embedding


def test_negative_prompt_replaces_the_unconditional_branch(pipe):
    a = pipe("a cat", guidance_scale=4.0, **FAST)
    b = pipe("a cat", negative_prompt="blurry", guidance_scale=4.0, **FAST)
    assert (a - b).abs().max() > 1e-3


def _scaled_linear_alphas_cumprod(n: int = 1000, b0: float = 0.00085, b1: float = 0.012) -> torch.Tensor:
    betas = torch.linspace(b0**0.5, b1**0.5, n, dtype=torch.float64) ** 2  # SD's "scaled_linear"
    return torch.cumprod(1 - betas, 0)


def _naive_ddim(unet, emb_c, emb_u, noise, steps, g, prediction_type):
    """DDIM (Song et al. 2021, eq. 12, eta = 0) with "leading" spacing, steps_offset 1 and
    set_alpha_to_one False, written out; CFG as two separate forwards."""
    abar = _scaled_linear_alphas_cumprod()
    stride = 1000 // steps
    x = noise.double()
    for t in (torch.arange(steps) * stride).flip(0) + 1:
        with torch.no_grad():
            out_u = unet(x.float(), t, emb_u).double()
            out_c = unet(x.float(), t, emb_c).double()
        out = out_u + g * (out_c - out_u)
        a = abar[t]
        a_prev = abar[t - stride] if t - stride >= 0 else abar[0]
        if prediction_type == "epsilon":
            eps = out
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        else:  # v = sqrt(a) eps - sqrt(1 - a) x0 (Salimans & Ho 2022)
            x0 = a.sqrt() * x - (1 - a).sqrt() * out
            eps = a.sqrt() * out + (1 - a).sqrt() * x
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x.float()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_pixel_model_matches_hand_written_ddim(prediction_type, tmp_path):
    sd = make_tiny_sd(tmp_path / "sd", latent=False, prediction_type=prediction_type)
    pipe = TextToVideoPipeline.from_pretrained(inflate_folder(sd, "vdm", tmp_path / "video"))
    assert pipe.vae is None and pipe.vae_factor == 1 and pipe.default_size == (32, 32)
    x = pipe("a red circle", num_frames=3, height=8, width=8, num_inference_steps=4, guidance_scale=3.0,
             scheduler="ddim", seed=2, progress=False, output_latents=True)
    noise = torch.randn((3, 3, 8, 8), generator=torch.Generator().manual_seed(2))[None]
    emb = pipe.encode_text(["", "a red circle"])
    ref = _naive_ddim(pipe.unet, emb[1:], emb[:1], noise, 4, 3.0, prediction_type)
    torch.testing.assert_close(x, ref, atol=2e-5, rtol=1e-4)


def test_chunked_decoding_equals_per_frame_decoding(pipe):
    z = torch.randn(2, 4, 5, 8, 8, generator=torch.Generator().manual_seed(0))
    whole = pipe.decode_latents(z, decode_chunk_size=8)
    assert whole.shape == (2, 3, 5, 16, 16)
    torch.testing.assert_close(pipe.decode_latents(z, decode_chunk_size=2), whole, atol=1e-5, rtol=0)
    scale = pipe.vae.config.scaling_factor
    with torch.no_grad():
        ref = torch.stack([pipe.vae.decode(z[:, :, f] / scale).sample for f in range(5)], 2).clamp(-1, 1)
    torch.testing.assert_close(whole, ref, atol=1e-5, rtol=0)


def test_encode_then_decode_shapes(pipe):
    video = torch.rand(1, 3, 2, 16, 16) * 2 - 1
    z = pipe.encode_video(video)
    assert z.shape == (1, 4, 2, 8, 8) and z.is_contiguous()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompts=""), "the prompt is empty"),
        (dict(prompts=["a cat", "   "]), r"the prompt is empty \(prompt 2 of 2\)"),
        (dict(prompts=[]), "no prompt given"),
        (dict(prompts="a cat", num_frames=0), "num_frames must be at least 1"),
        (dict(prompts="a cat", height=15), "height 15 is not a positive multiple of 2"),
        (dict(prompts="a cat", width=0), "width 0 is not a positive multiple of 2"),
        (dict(prompts="a cat", scheduler="heun"), "unknown scheduler 'heun'"),
        (dict(prompts="a cat", num_inference_steps=0), "steps must be at least 1"),
    ],
)
def test_bad_input_is_one_line_error(pipe, kwargs, message):
    with pytest.raises(T2VError, match=message) as e:
        pipe(progress=False, **kwargs)
    assert "\n" not in str(e.value)


def test_timestep_shift_comes_from_the_folder_and_runs_the_shifted_steps(video_model, tmp_path, monkeypatch):
    """`t2v_generation.timestep_shift` in model_index.json is the default shift; the model is called at
    exactly the shifted timesteps; an explicit argument overrides the folder; DDIM refuses a shift."""
    import json
    import shutil

    from t2v.diffusion.schedulers import shifted_timesteps

    folder = shutil.copytree(video_model, tmp_path / "shifted")
    index = json.loads((folder / "model_index.json").read_text())
    index["t2v_generation"] = {"timestep_shift": 4.0}
    (folder / "model_index.json").write_text(json.dumps(index))
    shifted = TextToVideoPipeline.from_pretrained(folder)
    seen = []
    real = shifted.unet.forward
    monkeypatch.setattr(shifted.unet, "forward", lambda x, t, *a, **k: seen.append(int(t.flatten()[0])) or real(x, t, *a, **k))
    kw = dict(FAST, scheduler="dpm++", guidance_scale=1.0, seed=2)
    default = shifted("a cat on a sofa", **kw)
    assert seen == shifted_timesteps(3, 1000, 4.0)  # [999, 888, 666]
    assert torch.equal(default, shifted("a cat on a sofa", timestep_shift=4.0, **kw))
    assert (default - shifted("a cat on a sofa", timestep_shift=1.0, **kw)).abs().max() > 1e-3
    with pytest.raises(T2VError, match="no timestep shift; use --scheduler dpm\\+\\+"):
        shifted("a cat on a sofa", **dict(kw, scheduler="ddim"))


def test_high_noise_guidance_comes_from_the_folder_and_can_be_turned_off(video_model, tmp_path, monkeypatch):
    """`t2v_generation.high_noise_guidance` [scale, t_min] is the default: with guidance 1 the
    unconditional branch runs (2B rows) only at t >= t_min; () turns it off; the CLI's G@T parses."""
    import json
    import shutil

    from t2v.pipelines.text_to_video import parse_high_noise_guidance

    folder = shutil.copytree(video_model, tmp_path / "high")
    index = json.loads((folder / "model_index.json").read_text())
    index["t2v_generation"] = {"high_noise_guidance": [5.0, 600]}
    (folder / "model_index.json").write_text(json.dumps(index))
    high = TextToVideoPipeline.from_pretrained(folder)
    seen = []
    real = high.unet.forward
    monkeypatch.setattr(high.unet, "forward", lambda x, t, *a, **k: seen.append((int(t.flatten()[0]), x.shape[0])) or real(x, t, *a, **k))
    kw = dict(FAST, scheduler="dpm++", guidance_scale=1.0, seed=2)
    default = high("a cat on a sofa", **kw)
    assert seen and [rows for _, rows in seen] == [2 if t >= 600 else 1 for t, _ in seen]
    assert any(t < 600 for t, _ in seen) and any(t >= 600 for t, _ in seen)
    assert torch.equal(default, high("a cat on a sofa", high_noise_guidance=(5.0, 600), **kw))
    seen.clear()
    off = high("a cat on a sofa", high_noise_guidance=(), **kw)
    assert {rows for _, rows in seen} == {1}
    assert (default - off).abs().max() > 1e-3
    assert parse_high_noise_guidance("8@900") == (8.0, 900.0) and parse_high_noise_guidance("none") == ()
    # What a call samples with (and what `t2v eval shapes` reports): the folder's values where None.
    s = high.sampling_settings(guidance_scale=2.0)
    assert s["high_noise_guidance"] == (5.0, 600.0) and s["guidance_scale"] == 2.0
    assert s["num_inference_steps"] == high.generation_defaults["num_inference_steps"] and s["timestep_shift"] == 1.0
    assert high.sampling_settings(high_noise_guidance=())["high_noise_guidance"] is None
    for bad in ("8", "x@900", "0@900", "8@-1"):
        with pytest.raises(T2VError, match="--high-noise-guidance"):
            parse_high_noise_guidance(bad)


def test_temporal_guidance_runs_the_image_model_and_comes_from_the_folder(video_model, tmp_path, monkeypatch):
    """`t2v_generation.temporal_guidance` [scale, t_min] is the default: at t >= t_min one more forward
    of B conditional rows with every temporal layer skipped (image_only); () turns it off (plain CFG bit
    for bit); image_only sampling ignores it; the CLI's S@T parses. (The mix: tests/diffusion/test_guidance.py.)"""
    import json
    import shutil

    from t2v.pipelines.text_to_video import parse_temporal_guidance

    folder = shutil.copytree(video_model, tmp_path / "stg")
    index = json.loads((folder / "model_index.json").read_text())
    index["t2v_generation"] = {"temporal_guidance": [2.0, 600]}
    (folder / "model_index.json").write_text(json.dumps(index))
    from pipeline_helpers import perturb_

    stg = TextToVideoPipeline.from_pretrained(folder)
    perturb_(stg.unet.trainable_parameters(), scale=0.2)  # the temporal layers start as the identity; make them matter
    seen = []
    real = stg.unet.forward
    monkeypatch.setattr(stg.unet, "forward", lambda x, t, *a, **k: seen.append((int(t.flatten()[0]), x.shape[0], k.get("image_only"))) or real(x, t, *a, **k))
    kw = dict(FAST, scheduler="dpm++", guidance_scale=3.0, seed=2)
    default = stg("a cat on a sofa", **kw)
    skipped = [t for t, rows, image_only in seen if image_only]
    assert skipped and all(t >= 600 for t in skipped) and len(skipped) == sum(t >= 600 for t, _, io in seen if not io)
    assert all(rows == 1 for _, rows, io in seen if io) and all(rows == 2 for _, rows, io in seen if not io)
    assert any(t < 600 for t, _, _ in seen)
    seen.clear()
    off = stg("a cat on a sofa", temporal_guidance=(), **kw)
    assert not any(io for _, _, io in seen) and (default - off).abs().max() > 1e-3
    plain = TextToVideoPipeline.from_pretrained(video_model)
    perturb_(plain.unet.trainable_parameters(), scale=0.2)
    assert torch.equal(off, plain("a cat on a sofa", **kw))
    seen.clear()
    stg("a cat on a sofa", image_only=True, **kw)
    assert {io for _, _, io in seen} == {True} and {rows for _, rows, _ in seen} == {2}  # no third branch

    # The weak branch sees the prompt's embedding (the conditional rows), not the empty caption's.
    embs = []
    monkeypatch.setattr(stg.unet, "forward", lambda x, t, e, *a, **k: (k.get("image_only") and embs.append(e)) or real(x, t, e, *a, **k))
    stg("a cat on a sofa", **kw)
    assert embs and all(torch.equal(e, stg.encode_text(["a cat on a sofa"]).to(e.dtype)) for e in embs)
    assert parse_temporal_guidance("1@750") == (1.0, 750.0) and parse_temporal_guidance("none") == ()
    assert stg.sampling_settings()["temporal_guidance"] == (2.0, 600.0)
    assert stg.sampling_settings(temporal_guidance=())["temporal_guidance"] is None
    for bad in ("1", "x@750", "0@750", "1@-1"):
        with pytest.raises(T2VError, match="--temporal-guidance"):
            parse_temporal_guidance(bad)


def test_eval_shapes_cli_reports_the_folder_defaults_it_sampled_with(video_model, tmp_path):
    """`t2v eval shapes` on a folder whose t2v_generation sets high-noise guidance: 96 clips read, and
    the JSON's settings are the ones sampled with (the folder's), not the flags' None."""
    import json
    import shutil

    from typer.testing import CliRunner

    from t2v.cli import app

    folder = shutil.copytree(video_model, tmp_path / "m")
    index = json.loads((folder / "model_index.json").read_text())
    index["t2v_generation"] = {"high_noise_guidance": [5.0, 600], "guidance_scale": 3.0}
    (folder / "model_index.json").write_text(json.dumps(index))
    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["eval", "shapes", "--model", str(folder), "--seeds", "1", "--steps", "1",
                                 "--num-frames", "2", "--batch-size", "48", "--json", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["settings"]["high_noise_guidance"] == [5.0, 600.0] and rep["settings"]["guidance"] == 3.0
    assert rep["settings"]["steps"] == 1 and rep["scores"]["all"]["n"] == 96 and len(rep["clips"]) == 96
    assert "guidance 5 at t >= 600" in " ".join(r.output.split())  # the title, however rich wraps it
