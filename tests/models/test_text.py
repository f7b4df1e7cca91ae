"""Prompt embeddings: hand-written CLIP ids through a tiny random CLIP text encoder as the reference."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel

from t2v.models.text import encode_prompts
from t2v.models.tokenizer import clip_tokenizer

BOS, EOS = 49406, 49407


@pytest.fixture(scope="module")
def encoder() -> CLIPTextModel:
    torch.manual_seed(0)
    cfg = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=EOS,
    )
    return CLIPTextModel(cfg).eval()


def _reference(encoder: CLIPTextModel, ids: list[int]) -> torch.Tensor:
    padded = ids + [EOS] * (77 - len(ids))
    with torch.no_grad():
        return encoder(torch.tensor([padded])).last_hidden_state[0]  # (77, D)


def test_matches_hand_written_ids(encoder):
    emb = encode_prompts(clip_tokenizer(), encoder, ["a photo of a cat", ""], "cpu")
    assert emb.shape == (2, 77, 32) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[0], _reference(encoder, [BOS, 320, 1125, 539, 320, 2368, EOS]))
    # "" is the unconditional embedding: start token then padding.
    torch.testing.assert_close(emb[1], _reference(encoder, [BOS, EOS]))
    assert (emb[0] - emb[1]).abs().max() > 1e-3


def test_each_distinct_prompt_encoded_once(encoder):
    rows = []
    hook = encoder.register_forward_hook(lambda mod, args, kwargs_out: rows.append(args[0].shape[0]))
    try:
        prompts = ["a cat", "", "a dog", "", "a cat"]
        emb = encode_prompts(clip_tokenizer(), encoder, prompts, "cpu")
    finally:
        hook.remove()
    assert rows == [3]
    assert emb.shape == (5, 77, 32)
    torch.testing.assert_close(emb[0], emb[4], rtol=0, atol=0)
    torch.testing.assert_close(emb[1], emb[3], rtol=0, atol=0)
    for i, p in enumerate(prompts):
        torch.testing.assert_close(emb[i], encode_prompts(clip_tokenizer(), encoder, [p], "cpu")[0])


def test_long_prompt_is_truncated_to_77(encoder):
    emb = encode_prompts(clip_tokenizer(), encoder, ["a cat " * 60], "cpu")
    assert emb.shape == (1, 77, 32)
    ids = [BOS] + [320, 2368] * 37 + [320, EOS]  # 77 ids: truncated, the end token kept
    torch.testing.assert_close(emb[0], _reference(encoder, ids))
