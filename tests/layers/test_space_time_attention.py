"""SpaceTimeAttention against attention written out token by token with the 3D offset bias and the gates."""

from __future__ import annotations

import math

import pytest
import torch

from t2v.errors import T2VError
from t2v.layers import SpaceTimeAttention
from t2v.layers.space_time_attention import MAX_TOKENS

from test_temporal_attention import naive_text, randomize


def naive(layer: SpaceTimeAttention, x: torch.Tensor, gates: torch.Tensor | None = None) -> torch.Tensor:
    """Every (frame, y, x) token attends to every token of its clip:
    softmax(q k^T / sqrt(d) + table[head, clamp(df), clamp(dy), clamp(dx)]) v, times the head's gate."""
    b, c, f, h, w = x.shape
    heads, d = layer.heads, c // layer.heads
    mf, ms = layer.max_frame_offset, layer.max_offset
    coords = [(fi, yi, xi) for fi in range(f) for yi in range(h) for xi in range(w)]
    out = x.clone()
    for bi in range(b):
        tok = torch.stack([x[bi, :, fi, yi, xi] for fi, yi, xi in coords])  # (N, C)
        tok = torch.nn.functional.layer_norm(tok, (c,), layer.norm.weight, layer.norm.bias)
        q, k, v = (tok @ layer.to_qkv.weight.T).split(c, dim=-1)
        res = []
        for hd in range(heads):
            sl = slice(hd * d, (hd + 1) * d)
            logits = q[:, sl] @ k[:, sl].T / math.sqrt(d)
            for i, (fq, yq, xq) in enumerate(coords):
                for j, (fk, yk, xk) in enumerate(coords):
                    df = max(-mf, min(mf, fk - fq)) + mf
                    dy = max(-ms, min(ms, yk - yq)) + ms
                    dx = max(-ms, min(ms, xk - xq)) + ms
                    logits[i, j] += layer.rel_pos.table[hd, df, dy, dx]
                    if layer.causal and fk > fq:
                        logits[i, j] = -math.inf
            o = torch.softmax(logits, dim=-1) @ v[:, sl]
            res.append(o if gates is None else o * gates[bi, hd])
        o = torch.cat(res, dim=-1) @ layer.to_out.weight.T + layer.to_out.bias  # (N, C)
        for n, (fi, yi, xi) in enumerate(coords):
            out[bi, :, fi, yi, xi] += o[n]
    return out


def test_identity_at_init_is_exact():
    for text_dim in (None, 12):
        layer = SpaceTimeAttention(16, head_dim=8, cross_attention_dim=text_dim)
        x = torch.randn(2, 16, 3, 4, 5)
        text = None if text_dim is None else torch.randn(2, 5, 12)
        assert torch.equal(layer(x, text=text), x)


@pytest.mark.parametrize("causal", [False, True])
def test_matches_naive_attention_with_clamped_offsets(causal):
    # Offsets beyond the table (frames 4 > 2, pixels 5 > 1 apart) share the edge entries.
    layer = randomize(SpaceTimeAttention(16, head_dim=8, causal=causal, max_frame_offset=2, max_offset=1))
    x = torch.randn(2, 16, 4, 2, 5)
    torch.testing.assert_close(layer(x), naive(layer, x), atol=1e-4, rtol=1e-4)


def test_text_gates_scale_each_head_and_text_attention_follows():
    layer = randomize(SpaceTimeAttention(16, head_dim=8, cross_attention_dim=12, max_frame_offset=3, max_offset=2))
    x, text = torch.randn(2, 16, 3, 2, 3), torch.randn(2, 5, 12)
    # Gates written out: 1 + W (softmax(text . q / sqrt(D)) . text) + b.
    weights = torch.softmax(text @ layer.gate_query / math.sqrt(12), dim=1)
    gates = 1 + (weights[..., None] * text).sum(1) @ layer.gate.weight.T + layer.gate.bias  # (B, heads)
    assert (gates - 1).abs().min() > 1e-3  # the gates do something in this check
    plain = SpaceTimeAttention(16, head_dim=8, max_frame_offset=3, max_offset=2)
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if "text" not in k and "gate" not in k})
    y = naive(plain, x, gates)
    torch.testing.assert_close(layer(x, text=text), naive_text(layer, y, text), atol=1e-4, rtol=1e-4)


def test_gates_start_at_one_so_the_prompt_changes_nothing_before_training():
    layer = randomize(SpaceTimeAttention(16, head_dim=8, cross_attention_dim=12))
    layer.reset_gates()  # gates back to exactly 1; the rest stays random
    torch.nn.init.zeros_(layer.to_out_text.weight), torch.nn.init.zeros_(layer.to_out_text.bias)
    x = torch.randn(1, 16, 3, 2, 2)
    torch.testing.assert_close(layer(x, text=torch.randn(1, 5, 12)), layer(x, text=torch.randn(1, 5, 12)))


def test_follows_content_across_pixels_unlike_per_pixel_attention():
    """A token can read another pixel of another frame: changing one pixel of frame 0 changes
    the output at a different pixel of frame 2 (per-pixel temporal attention cannot)."""
    layer = randomize(SpaceTimeAttention(8, head_dim=8))
    x = torch.randn(1, 8, 3, 3, 3)
    x2 = x.clone()
    x2[0, :, 0, 0, 0] += torch.randn(8)  # not a constant: the layer norm would remove it
    assert (layer(x2) - layer(x))[0, :, 2, 2, 2].abs().max() > 1e-4


def test_causal_hides_later_frames_and_keep_passes_images_through():
    layer = randomize(SpaceTimeAttention(8, head_dim=8, causal=True))
    x = torch.randn(2, 8, 4, 2, 2)
    later = x.clone()
    later[:, :, 3] += torch.randn(8, 2, 2)
    torch.testing.assert_close(layer(later)[:, :, :3], layer(x)[:, :, :3])
    keep = torch.tensor([True, False])
    out = layer(x, keep)
    assert torch.equal(out[1], x[1]) and not torch.equal(out[0], x[0])


def test_refuses_grids_beyond_the_token_limit_with_one_line():
    layer = SpaceTimeAttention(8, head_dim=8)
    side = int(math.sqrt(MAX_TOKENS // 16)) + 1
    with pytest.raises(T2VError, match="space-time attention over 16x.* tokens exceeds"):
        layer(torch.randn(1, 8, 16, side, side))
