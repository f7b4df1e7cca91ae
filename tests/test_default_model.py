"""The embedded default model (issue 7): it loads through the generic pipeline, draws what the
prompt asks for (read back by the ShapesWorld oracle) and is deterministic per seed.

The (prompt, seed) pairs below are held-in combinations; the model was not tuned on these seeds.
"""

from __future__ import annotations

import json

import pytest
import torch

from t2v.metrics.shapes_eval import to_uint8_frames
from t2v.metrics.shapes_oracle import read_clip
from t2v.pipelines import TextToVideoPipeline
from t2v.pipelines.model_folder import default_model_dir

# Eight held-in prompts (two colors and shapes x the four directions), clip i sampled from seed i;
# fixed before the session-7 model was measured on them. The oracle protocol puts the shipped model
# (session 14: session 10's weights, sampled with temporal skip guidance 1@500) at color 99% / shape 98% /
# direction 95% / all-three 92% held-in (docs/default_model.md), so the thresholds below sit under what 8
# clips of such a model give, not at every clip right (measured: 8 of 8 for color and shape, 8 of 8 for
# direction; sessions 10, 9, 8 and 7: 8 and 8, 8 and 8, 8 and 8, 7 and 8).
CASES = [(c, s, m, i) for i, (c, s, m) in enumerate(
    [("red", "circle", m) for m in ("right", "left", "up", "down")] + [("blue", "square", m) for m in ("down", "up", "left", "right")])]


@pytest.fixture(scope="module")
def pipe() -> TextToVideoPipeline:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return TextToVideoPipeline.from_pretrained(None, device="cpu")


def test_the_folder_is_a_small_diffusers_layout():
    folder = default_model_dir()
    for part in ("unet", "text_encoder", "tokenizer", "scheduler", "vae"):
        assert (folder / part).is_dir(), part
    weights = list(folder.rglob("*.safetensors"))
    assert len(weights) == 3
    assert sum(f.stat().st_size for f in folder.rglob("*")) <= 30 * 2**20
    defaults = json.loads((folder / "model_index.json").read_text())["t2v_generation"]
    assert (defaults["num_frames"], defaults["height"], defaults["width"]) == (16, 64, 64)


def test_the_vae_is_video_ldms_temporal_decoder_on_the_image_models_encoder(pipe):
    """Since session 10 vae/ is the cascade's temporally fine-tuned decoder (Video LDM, Sec. 3.1.1), as
    Stable Video Diffusion's vae/ is a temporal decoder; its encoder is the image VAE's, bit for bit, so
    the latents the U-Net was trained on do not move."""
    from diffusers import AutoencoderKL

    from t2v.models import TemporalAutoencoder
    from t2v.pipelines.cascade import default_stage_dir

    assert isinstance(pipe.vae, TemporalAutoencoder)
    image = AutoencoderKL.from_pretrained(default_stage_dir("image_vae")).state_dict()
    mine = pipe.vae.vae.state_dict()
    encoder = [k for k in image if k.startswith(("encoder.", "quant_conv."))]
    assert len(encoder) == 56 and all(torch.equal(image[k], mine[k]) for k in encoder)
    assert json.loads((default_model_dir() / "model_index.json").read_text())["vae"] == ["t2v.models", "TemporalAutoencoder"]


def test_loads_as_float32_with_the_recorded_size(pipe):
    assert pipe.dtype == torch.float32 and pipe.default_size == (64, 64)
    assert pipe.unet.recipe.name == "video-ldm"


@pytest.fixture(scope="module")
def readings(pipe) -> list:
    """The oracle's reading of each CASES prompt, sampled with the folder's default settings."""
    prompts = [f"a {c} {s} moving {m}" for c, s, m, _ in CASES]
    video = pipe(prompts, seed=0, progress=False)  # (8, 3, 16, 64, 64); clip i from seed i
    assert tuple(video.shape) == (len(CASES), 3, 16, 64, 64)
    return [read_clip(to_uint8_frames(v)) for v in video]


@pytest.mark.slow
def test_generates_the_color_and_shape_the_prompt_asks(readings):
    right = sum((r.color, r.shape) == (c, s) for r, (c, s, _, _) in zip(readings, CASES))
    assert right >= 6, [(r.color, r.shape) for r in readings]


@pytest.mark.slow
def test_generates_the_direction_the_prompt_asks(readings):
    # Since session 6 (conditional-mean targets at high noise, docs/default_model.md); before, the
    # direction was the seed's, not the prompt's (2 of 8 is chance).
    right = sum(r.direction == m for r, (_, _, m, _) in zip(readings, CASES))
    assert right >= 5, [r.direction for r in readings]


@pytest.mark.slow
def test_same_seed_same_video_bit_for_bit(pipe):
    kw = dict(num_frames=8, num_inference_steps=4, progress=False)
    a = pipe(["a green triangle moving up"], seed=7, **kw)
    b = pipe(["a green triangle moving up"], seed=7, **kw)
    c = pipe(["a green triangle moving up"], seed=8, **kw)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_image_only_is_the_2d_parent_frame_by_frame(pipe):
    """The ablation switch: skipping the trained temporal layers equals a fresh inflation of the 2D
    parent (temporal layers at identity), i.e. the image model applied to each frame."""
    from dataclasses import replace

    from t2v.models import inflate

    parent = TextToVideoPipeline(replace(pipe.parts, unet=inflate(pipe.unet.to_unet2d(), "video-ldm").eval()))
    kw = dict(num_frames=4, num_inference_steps=3, seed=3, progress=False, output_latents=True)
    skipped = pipe(["a cyan square moving left"], image_only=True, **kw)
    reference = parent(["a cyan square moving left"], **kw)
    full = pipe(["a cyan square moving left"], **kw)
    torch.testing.assert_close(skipped, reference, rtol=1e-4, atol=1e-4)
    assert (full - reference).abs().max() > 1e-2  # the trained temporal layers do change the result


def test_generation_defaults_come_from_the_folder(pipe):
    recorded = json.loads((default_model_dir() / "model_index.json").read_text())["t2v_generation"]
    defaults = pipe.generation_defaults
    assert defaults["num_inference_steps"] == recorded["num_inference_steps"]
    assert defaults["guidance_scale"] == recorded["guidance_scale"]
    # Trained with timesteps shifted by 4 (configs/default_model/3_video.yaml), so it samples with that shift.
    assert defaults["timestep_shift"] == recorded["timestep_shift"] == 4.0
    # Session 14: spatiotemporal skip guidance away from the image model at t >= 500 (the protocol's 92.0%).
    assert pipe.sampling_settings()["temporal_guidance"] == tuple(recorded["temporal_guidance"]) == (1.0, 500.0)


@pytest.mark.parametrize("name,stage,recipe", [("2_image", "image", None), ("3_video", "video", "video-ldm"),
                                               ("4_positions", "video", "video-ldm")])
def test_presets_load_and_describe_the_shipped_architecture(name, stage, recipe):
    """The presets are what made the shipped folder: the same 2D U-Net, recipe options and shift."""
    from pathlib import Path

    from t2v.training.config import load_config

    config = load_config(Path(__file__).parents[1] / "configs" / "default_model" / f"{name}.yaml")
    assert (config.stage, config.model.recipe) == (stage, recipe)
    import dataclasses

    if stage == "image":
        unet = json.loads((default_model_dir() / "unet" / "config.json").read_text())["unet2d"]
        assert list(config.model.unet.block_out_channels) == unet["block_out_channels"]
        assert config.model.text_encoder.max_length == 16
    else:
        from t2v.models.recipes import Recipe
        from t2v.training.parts import recipe_with_options

        # As Recipe objects: a recipe field added after the folder was written takes its default.
        shipped = Recipe.from_dict(json.loads((default_model_dir() / "unet" / "config.json").read_text())["recipe_spec"])
        preset = recipe_with_options(config.model.recipe, config.model.recipe_options)
        # Stage 3 builds the temporal layers; stage 4 adds the positions to them (the shipped architecture).
        assert preset == (shipped if name == "4_positions" else dataclasses.replace(shipped, temporal_positions=False))
        recorded = json.loads((default_model_dir() / "model_index.json").read_text())["t2v_generation"]
        assert config.diffusion.timestep_shift == recorded["timestep_shift"]
        assert not config.model.train_text_encoder
