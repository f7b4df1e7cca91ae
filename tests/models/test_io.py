"""Diffusers folder layout: save/load round trip, loading SD folders, and `t2v inflate`."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from t2v.cli import app
from t2v.errors import T2VError
from t2v.models import RECIPES, VideoUNet, inflate, load_unet2d, load_video_unet
from unet_refs import clip_batch, per_frame


def test_save_pretrained_round_trip(unet2d, tmp_path):
    model = inflate(unet2d, dataclasses.replace(RECIPES["video-ldm"], causal_attention=True))
    for p in model.added_parameters().values():
        torch.nn.init.normal_(p, std=0.1)
    model.save_pretrained(tmp_path / "unet")
    assert {p.name for p in (tmp_path / "unet").iterdir()} == {"config.json", "diffusion_pytorch_model.safetensors"}
    loaded = VideoUNet.from_pretrained(tmp_path / "unet")
    assert loaded.recipe == model.recipe and loaded.recipe.causal_attention
    cfg = loaded.config
    assert (cfg.in_channels, cfg.out_channels, cfg.sample_size, cfg.cross_attention_dim, cfg.recipe) == (4, 4, 8, 32, "video-ldm")
    x, t, text = clip_batch()
    with torch.no_grad():
        assert torch.equal(loaded(x, t, text), model(x, t, text))


def test_load_unet2d_from_sd_folder_or_unet_folder(tiny_sd, unet2d):
    a, b = load_unet2d(tiny_sd), load_unet2d(tiny_sd / "unet")
    for (n, p), (_, q), (_, r) in zip(a.state_dict().items(), b.state_dict().items(), unet2d.state_dict().items()):
        assert torch.equal(p, q) and torch.equal(p, r), n


@pytest.mark.parametrize("where", ["text_encoder", "scheduler", "missing", "empty"])
def test_not_a_unet_folder_is_a_one_line_error(tiny_sd, tmp_path, where):
    folder = {"missing": tmp_path / "nope", "empty": tmp_path}.get(where, tiny_sd / where)
    with pytest.raises(T2VError) as e:
        load_unet2d(folder)
    msg = str(e.value)
    assert "\n" not in msg and "UNet2DConditionModel" in msg and "config.json" in msg


def test_cli_inflates_a_tiny_sd_folder(tiny_sd, unet2d, tmp_path):
    out = tmp_path / "video-model"
    runner = CliRunner()
    res = runner.invoke(app, ["inflate", "--from", str(tiny_sd), "--recipe", "video-ldm", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert str(out) in res.output
    assert {p.name for p in out.iterdir()} == {"unet", "text_encoder", "tokenizer", "scheduler", "vae", "model_index.json"}
    index = json.loads((out / "model_index.json").read_text())
    assert index["unet"] == ["t2v.models", "VideoUNet"] and index["_t2v_recipe"] == "video-ldm"
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        tiny_sd / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()

    model = load_video_unet(out)
    assert model.config.recipe == "video-ldm"
    x, t, text = clip_batch()
    with torch.no_grad():
        assert (model(x, t, text) - per_frame(unet2d, x, t, text)).abs().max() < 1e-5

    # The output folder is not a 2D U-Net, and it is not overwritten without --overwrite.
    res = runner.invoke(app, ["inflate", "--from", str(out), "--out", str(tmp_path / "again")])
    assert isinstance(res.exception, T2VError) and "VideoUNet" in str(res.exception)
    res = runner.invoke(app, ["inflate", "--from", str(tiny_sd), "--out", str(out)])
    assert isinstance(res.exception, T2VError) and "--overwrite" in str(res.exception)


def test_cli_unknown_recipe_is_a_one_line_error(tiny_sd, tmp_path):
    # main() prints a T2VError as one `error:` line with exit 2 (tests/test_cli.py checks that path).
    res = CliRunner().invoke(app, ["inflate", "--from", str(tiny_sd), "--recipe", "sora", "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, T2VError)
    msg = str(res.exception)
    assert "\n" not in msg and all(name in msg for name in RECIPES)
    assert not (tmp_path / "o").exists()
