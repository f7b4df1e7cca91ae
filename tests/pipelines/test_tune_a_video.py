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
