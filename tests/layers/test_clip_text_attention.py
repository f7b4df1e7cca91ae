"""ClipTextAttnProcessor (text keys/values once per clip) against diffusers' per-frame processor."""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from t2v.layers import ClipTextAttnProcessor


def make_attn() -> Attention:
    attn = Attention(query_dim=16, cross_attention_dim=12, heads=2, dim_head=8, bias=False)
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return attn.eval()


def test_equals_per_frame_cross_attention_and_projects_each_text_once():
    attn, b, f = make_attn(), 3, 4
    x = torch.randn(b * f, 5, 16)  # (B*F, N, C) frames
    text = torch.randn(b, 7, 12).repeat_interleave(f, dim=0)  # each clip's text over its frames, as the U-Net passes it
    with torch.no_grad():
        ref = AttnProcessor2_0()(attn, x, text)
        rows = []
        attn.to_k.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
        got = ClipTextAttnProcessor(lambda: (f, None))(attn, x, text)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-6)
    assert rows == [b]  # keys from B texts, not B*F copies


def test_one_frame_or_4d_input_delegates_or_matches():
    attn = make_attn()
    x, text = torch.randn(6, 16, 2, 3), torch.randn(2, 7, 12).repeat_interleave(3, dim=0)  # (B*F, C, H, W)
    with torch.no_grad():
        ref = AttnProcessor2_0()(attn, x, text)
        assert torch.equal(ClipTextAttnProcessor(lambda: (1, None))(attn, x, text), ref)  # image_only: diffusers' own
        torch.testing.assert_close(ClipTextAttnProcessor(lambda: (3, None))(attn, x, text), ref, atol=1e-6, rtol=1e-6)
