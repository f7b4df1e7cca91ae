"""Model folders: each part loads as what it is; a missing or wrong part is one line naming it."""

from __future__ import annotations

import json
import shutil

import pytest

from t2v.errors import T2VError
from t2v.pipelines import model_folder
from t2v.pipelines.model_folder import default_model_dir, load_model_folder


def _copy(src, tmp_path):
    return shutil.copytree(src, tmp_path / "model")


def _one_line_error(folder, match, **kw):
    with pytest.raises(T2VError, match=match) as e:
        load_model_folder(folder, **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_parts_load_as_what_they_are(video_model):
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel

    from t2v.models import VideoUNet

    parts = load_model_folder(video_model)
    assert isinstance(parts.unet, VideoUNet) and parts.unet.recipe.name == "make-a-video"
    assert isinstance(parts.text_encoder, CLIPTextModel) and isinstance(parts.vae, AutoencoderKL)
    assert parts.default_sampler == "ddim" and parts.scheduler_config["beta_schedule"] == "scaled_linear"
    assert not any(p.requires_grad for p in parts.unet.parameters())


def test_tokenizer_falls_back_to_the_built_in_one(video_model, tmp_path):
    folder = _copy(video_model, tmp_path)
    shutil.rmtree(folder / "tokenizer")
    tok = load_model_folder(folder).tokenizer
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert load_model_folder(video_model).tokenizer("a photo of a cat").input_ids == tok("a photo of a cat").input_ids


@pytest.mark.parametrize("part", ["unet", "text_encoder", "scheduler", "vae"])
def test_missing_part_is_named(video_model, tmp_path, part):
    folder = _copy(video_model, tmp_path)
    shutil.rmtree(folder / part)
    msg = _one_line_error(folder, f"no {part}/ part")
    assert "expected" in msg


@pytest.mark.parametrize(
    "part, file, edit, match",
    [
        ("unet", "config.json", {"_class_name": "UNet3DConditionModel"}, "unet: .* names UNet3DConditionModel; expected a VideoUNet"),
        ("text_encoder", "config.json", {"model_type": "bert"}, "text_encoder: .* model_type 'bert'; expected a transformers CLIPTextModel"),
        ("vae", "config.json", {"latent_channels": 8}, "vae: .* 8 latent channels but the U-Net takes 4"),
        ("vae", "config.json", {"_class_name": "VQModel"}, "vae: .* names VQModel; expected an AutoencoderKL"),
        ("scheduler", "scheduler_config.json", {"prediction_type": "flow"}, "scheduler: .* prediction_type 'flow'"),
    ],
)
def test_wrong_part_is_named(video_model, tmp_path, part, file, edit, match):
    folder = _copy(video_model, tmp_path)
    cfg = folder / part / file
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), **edit}))
    _one_line_error(folder, match)


def test_missing_weights_and_broken_json(video_model, tmp_path):
    folder = _copy(video_model, tmp_path)
    (folder / "text_encoder" / "model.safetensors").unlink()
    _one_line_error(folder, "text_encoder: .* has no weights")
    (folder / "unet" / "config.json").write_text("{not json")
    _one_line_error(folder, "unet: .* is not readable JSON")
    _one_line_error(tmp_path / "nowhere", "does not exist")


def test_2d_unet_needs_a_recipe(tiny_sd):
    _one_line_error(tiny_sd, "holds a 2D UNet2DConditionModel; expected a VideoUNet: run `t2v inflate --from")
    parts = load_model_folder(tiny_sd, inflate_recipe="tune-a-video")
    assert parts.unet.recipe.name == "tune-a-video"


def test_no_default_model_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(model_folder, "DEFAULT_MODEL", "no-such-model")
    with pytest.raises(T2VError, match="no default model is installed .* pass --model DIR"):
        default_model_dir()
    with pytest.raises(T2VError, match="no default model is installed"):
        load_model_folder(None)
