"""Tune-A-Video ST-Attn processor against naive attention over explicitly gathered keys/values."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from t2v.layers import SparseCausalAttnProcessor


def make_attn() -> Attention:
    attn = Attention(query_dim=16, heads=2, dim_head=8, bias=False)
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return attn.eval()


def naive_st_attn(attn: Attention, x: torch.Tensor, frames: int) -> torch.Tensor:
    """For clip b, frame i: softmax(q_i [k_0; k_{max(i-1,0)}]^T / sqrt(d)) [v_0; v_{max(i-1,0)}], per head."""
    bf, n, c = x.shape
    heads, d = attn.heads, 8
    q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)  # (BF, N, heads*d)
    out = torch.empty_like(q)
    for b in range(bf // frames):
        for i in range(frames):
            me, first, prev = b * frames + i, b * frames, b * frames + max(i - 1, 0)
            keys = torch.cat([k[first], k[prev]], dim=0)  # (2N, heads*d): explicit gather
            values = torch.cat([v[first], v[prev]], dim=0)
            for h in range(heads):
                sl = slice(h * d, (h + 1) * d)
                w = torch.softmax(q[me, :, sl] @ keys[:, sl].T / math.sqrt(d), dim=-1)
                out[me, :, sl] = w @ values[:, sl]
    return attn.to_out[0](out)


def test_equals_naive_attention_over_gathered_keys_values():
    attn, frames = make_attn(), 4
    attn.set_processor(SparseCausalAttnProcessor(frames))
    x = torch.randn(2 * frames, 6, 16)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), naive_st_attn(attn, x, frames), atol=1e-5, rtol=1e-5)


def test_frame_count_from_callable_and_from_kwarg_agree():
    attn, x = make_attn(), torch.randn(6, 5, 16)
    with torch.no_grad():
        attn.set_processor(SparseCausalAttnProcessor(lambda: (3, None)))
        a = attn(x)
        attn.set_processor(SparseCausalAttnProcessor(1))
        b = attn(x, num_frames=3)
    assert torch.equal(a, b)


def test_equal_frames_give_plain_self_attention():
    attn, frames = make_attn(), 5
    x = torch.randn(2, 1, 7, 16).expand(2, frames, 7, 16).reshape(2 * frames, 7, 16)
    with torch.no_grad():
        plain = AttnProcessor2_0()(attn, x)
        attn.set_processor(SparseCausalAttnProcessor(frames))
        torch.testing.assert_close(attn(x), plain, atol=1e-6, rtol=1e-6)


def test_one_frame_and_masked_clips_are_plain_self_attention():
    attn, x = make_attn(), torch.randn(6, 5, 16)
    with torch.no_grad():
        plain = AttnProcessor2_0()(attn, x)
        assert torch.equal(SparseCausalAttnProcessor(1)(attn, x), plain)  # delegates: bit-identical
        keep = torch.tensor([True, False])
        y = SparseCausalAttnProcessor(lambda: (3, keep))(attn, x)
        torch.testing.assert_close(y[3:], plain[3:], atol=1e-6, rtol=1e-6)
        assert torch.equal(y[:3], SparseCausalAttnProcessor(3)(attn, x)[:3])


def test_image_layout_input_matches_token_layout():
    attn, frames = make_attn(), 3
    proc = SparseCausalAttnProcessor(frames)
    x = torch.randn(2 * frames, 16, 2, 3)  # (B*F, C, H, W)
    with torch.no_grad():
        y4 = proc(attn, x)
        y3 = proc(attn, x.flatten(2).transpose(1, 2))
    torch.testing.assert_close(y4, y3.transpose(1, 2).reshape_as(x), atol=1e-6, rtol=1e-6)


def test_rejects_cross_attention():
    attn = make_attn()
    with pytest.raises(ValueError, match="self-attention"):
        SparseCausalAttnProcessor(2)(attn, torch.randn(4, 3, 16), encoder_hidden_states=torch.randn(4, 2, 16))
