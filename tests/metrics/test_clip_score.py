"""CLIPSIM and CLIP frame consistency on a tiny random CLIPModel saved to a folder."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from t2v.errors import T2VError
from t2v.metrics.clip_score import (
    ClipImageConfig,
    clipsim,
    frame_consistency,
    load_clip,
    mean_clipsim,
    preprocess_frames,
    prompts_for_videos,
)


def _frames(seed: int, n: int = 5, h: int = 40, w: int = 56) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, generator=g)


def _features(out) -> torch.Tensor:
    """get_*_features returns a tensor (transformers 4) or an output with pooler_output (5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def test_preprocessing_matches_clips_image_processor():
    from transformers import CLIPImageProcessor
    from PIL import Image

    ref_proc = CLIPImageProcessor()  # 224, bicubic, CLIP mean/std (the PIL path here)
    frames = _frames(1, n=3, h=180, w=300)
    ours = preprocess_frames(frames, ClipImageConfig())
    ref = ref_proc(images=[Image.fromarray(f.numpy()) for f in frames], return_tensors="pt")["pixel_values"]
    assert ours.shape == ref.shape == (3, 3, 224, 224)
    std = torch.tensor(ClipImageConfig().std).view(1, 3, 1, 1)
    levels = (ours - ref).abs() * std * 255  # differences in uint8 levels
    # PIL resamples uint8 in fixed point: a few pixels of noise round to the neighbouring level
    assert levels.max() < 1.0 + 1e-3 and (levels > 0.5).float().mean() < 0.01


def test_clipsim_equals_a_naive_computation(clip_dir):
    from transformers import AutoTokenizer, CLIPModel

    scorer = load_clip(clip_dir)
    frames, prompt = _frames(2), "a cat"
    got = clipsim(scorer, frames, prompt)
    model, tok = CLIPModel.from_pretrained(clip_dir).eval(), AutoTokenizer.from_pretrained(clip_dir)
    ids = tok([prompt], padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        t = _features(model.get_text_features(**ids))[0]
        cosines = []
        for f in frames:  # one frame at a time
            pixels = preprocess_frames(f[None], scorer.image_config)
            v = _features(model.get_image_features(pixel_values=pixels))[0]
            cosines.append(float(v @ t / (v.norm() * t.norm())))
    assert abs(got - np.mean(cosines)) < 1e-5
    assert abs(mean_clipsim(scorer, [frames, _frames(3)], [prompt, "dog"]).per_video[0] - got) < 1e-6


def test_frame_consistency_equals_all_pairs_and_is_one_for_a_still(clip_dir):
    from transformers import CLIPModel

    scorer = load_clip(clip_dir)
    frames = _frames(4, n=4)
    model = CLIPModel.from_pretrained(clip_dir).eval()
    with torch.no_grad():
        e = _features(model.get_image_features(pixel_values=preprocess_frames(frames, scorer.image_config)))
    e = e / e.norm(dim=-1, keepdim=True)
    pairs = [float(e[i] @ e[j]) for i, j in itertools.combinations(range(4), 2)]
    assert abs(frame_consistency(scorer, frames) - np.mean(pairs)) < 1e-5
    still = frames[:1].repeat(6, 1, 1, 1)
    assert abs(frame_consistency(scorer, still) - 1.0) < 1e-6
    with pytest.raises(T2VError, match="at least 2 frames"):
        frame_consistency(scorer, frames[:1])


def test_prompts_from_sidecars_json_or_lines(tmp_path):
    paths = [tmp_path / "b.mp4", tmp_path / "a.mp4"]
    with pytest.raises(T2VError, match="no prompt for b.mp4"):
        prompts_for_videos(paths)
    (tmp_path / "b.txt").write_text("a dog\n")
    (tmp_path / "a.txt").write_text("a cat")
    assert prompts_for_videos(paths) == ["a dog", "a cat"]
    (tmp_path / "p.json").write_text(json.dumps({"a": "x", "b.mp4": "y"}))
    assert prompts_for_videos(paths, tmp_path / "p.json") == ["y", "x"]
    (tmp_path / "p.txt").write_text("one\n")
    with pytest.raises(T2VError, match="1 prompts for 2 videos"):
        prompts_for_videos(paths, tmp_path / "p.txt")


def test_not_a_clip_folder(tmp_path):
    with pytest.raises(T2VError, match="not a CLIP folder"):
        load_clip(tmp_path)


def test_folder_without_tokenizer_uses_the_offline_clip_tokenizer(tmp_path):
    tokenizer_module = pytest.importorskip("t2v.models.tokenizer")  # another area's; runs once merged
    from transformers import CLIPConfig, CLIPModel

    text = dict(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(tmp_path)
    scorer = load_clip(tmp_path)
    tok = tokenizer_module.clip_tokenizer()
    ids = tok(["a photo of a cat"], padding="max_length", max_length=77, truncation=True, return_tensors="pt")["input_ids"]
    assert ids[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    model = CLIPModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        ref = _features(model.get_text_features(input_ids=ids))
    torch.testing.assert_close(scorer.text_embeddings(["a photo of a cat"]), ref / ref.norm(dim=-1, keepdim=True), rtol=1e-5, atol=1e-6)
