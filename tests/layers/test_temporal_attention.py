"""TemporalAttention (VDM) against naive attention with an explicit bias, for any frame count."""

from __future__ import annotations

import math

import pytest
import torch

from t2v.layers import TemporalAttention, relative_position_buckets


def randomize(layer: TemporalAttention) -> TemporalAttention:
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return layer


def naive(layer: TemporalAttention, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
    """Loop over pixels; softmax(q k^T / sqrt(d) + bias[bucket(j - i)] (+ causal -inf)) v per head.
    pos: optional (F, C) added to the normed tokens (absolute frame positions)."""
    b, c, f, h, w = x.shape
    heads, d = layer.heads, c // layer.heads
    table = layer.rel_pos.bias.weight  # (buckets, heads)
    out = x.clone()
    for bi in range(b):
        for yi in range(h):
            for xi in range(w):
                tok = torch.nn.functional.layer_norm(x[bi, :, :, yi, xi].T, (c,), layer.norm.weight, layer.norm.bias)
                if pos is not None:
                    tok = tok + pos
                q, k, v = (tok @ layer.to_qkv.weight.T).split(c, dim=-1)  # (F, C) each
                res = []
                for hd in range(heads):
                    sl = slice(hd * d, (hd + 1) * d)
                    logits = q[:, sl] @ k[:, sl].T / math.sqrt(d)
                    for i in range(f):
                        for j in range(f):
                            off = j - i
                            logits[i, j] += table[bucket_scalar(off, layer.rel_pos.num_buckets, layer.rel_pos.max_distance), hd]
                            if layer.causal and j > i:
                                logits[i, j] = -math.inf
                    res.append(torch.softmax(logits, dim=-1) @ v[:, sl])
                o = torch.cat(res, dim=-1) @ layer.to_out.weight.T + layer.to_out.bias  # (F, C)
                out[bi, :, :, yi, xi] += o.T
    return out


def bucket_scalar(offset: int, num_buckets: int, max_distance: int) -> int:
    """Scalar restatement of the bucketing: sign half, exact below n/2, log-spaced up to max_distance."""
    half = num_buckets // 2
    base = half if offset > 0 else 0
    dist = abs(offset)
    exact = half // 2
    if dist < exact:
        return base + dist
    return base + min(half - 1, exact + int(math.log(dist / exact) / math.log(max_distance / exact) * (half - exact)))


def test_identity_at_init_is_exact():
    layer = TemporalAttention(32)
    x = torch.randn(2, 32, 6, 3, 3)
    assert torch.equal(layer(x), x)


@pytest.mark.parametrize("causal", [False, True])
def test_matches_naive_attention(causal):
    layer = randomize(TemporalAttention(16, head_dim=8, causal=causal))
    x = torch.randn(2, 16, 5, 2, 3)
    torch.testing.assert_close(layer(x), naive(layer, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("frames", [8, 16, 40, 100])
def test_any_frame_count_matches_naive(frames):
    layer = randomize(TemporalAttention(8, head_dim=4))
    x = torch.randn(1, 8, frames, 1, 2)
    torch.testing.assert_close(layer(x), naive(layer, x), atol=1e-4, rtol=1e-4)


def test_buckets_agree_with_scalar_rule_and_saturate():
    f = 300
    got = relative_position_buckets(f, 32, 128)
    ref = torch.tensor([[bucket_scalar(j - i, 32, 128) for j in range(f)] for i in range(f)])
    assert torch.equal(got, ref)
    assert got[0, 8].item() == 16 + 8  # offsets below n/2 = 8 ... are exact (+1 .. +7 -> 17 .. 23)
    assert got[0, 1:8].tolist() == list(range(17, 24))
    assert set(got[0, 128:].tolist()) == {31} and set(got[299, :172].tolist()) == {15}


def test_frame_order_matters_through_relative_positions():
    layer = randomize(TemporalAttention(16, head_dim=8))
    x = torch.randn(1, 16, 8, 2, 2)
    perm = torch.randperm(8)
    permuted_out = layer(x[:, :, perm])
    # With relative positions: permuting frames does not just permute the output.
    assert (permuted_out - layer(x)[:, :, perm]).abs().max() > 1e-2
    # Without them (bias zeroed) attention is permutation-equivariant: the reference behaviour.
    torch.nn.init.zeros_(layer.rel_pos.bias.weight)
    torch.testing.assert_close(layer(x[:, :, perm]), layer(x)[:, :, perm], atol=1e-5, rtol=1e-5)


def test_causal_mask_hides_future_frames():
    layer = randomize(TemporalAttention(8, head_dim=8, causal=True))
    x = torch.randn(1, 8, 6, 2, 2)
    x2 = x.clone()
    x2[:, :, 4:] = torch.randn_like(x2[:, :, 4:])
    y, y2 = layer(x), layer(x2)
    assert torch.equal(y[:, :, :4], y2[:, :, :4])
    assert not torch.allclose(y[:, :, 4:], y2[:, :, 4:])


def test_keep_mask_passes_image_samples_through():
    layer = randomize(TemporalAttention(8, head_dim=4))
    x = torch.randn(2, 8, 4, 2, 2)
    y = layer(x, torch.tensor([False, True]))
    assert torch.equal(y[0], x[0])
    assert torch.equal(y[1], layer(x)[1])


@pytest.mark.parametrize("channels_last", [False, True])
def test_frames_major_input_matches_naive_and_keeps_its_layout(channels_last):
    """The video U-Net hands the layer a view of its (B*F, C, H, W) frames, not a contiguous video."""
    layer = randomize(TemporalAttention(16, head_dim=8))
    b, f = 2, 5
    frames = torch.randn(b * f, 16, 3, 2)
    if channels_last:
        frames = frames.contiguous(memory_format=torch.channels_last)
    x = frames.unflatten(0, (b, f)).transpose(1, 2)  # (B, C, F, H, W) view of the frames
    y = layer(x)
    torch.testing.assert_close(y, naive(layer, x.contiguous()), atol=1e-4, rtol=1e-4)
    assert y.stride() == x.stride()  # the result folds back into frames without a copy


def naive_text(layer: TemporalAttention, y: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The text sub-layer by hand: every (frame, pixel) token attends to its clip's text tokens."""
    b, c, f, h, w = y.shape
    heads, d = layer.heads, c // layer.heads
    out = y.clone()
    for bi in range(b):
        kv = text[bi] @ layer.to_kv_text.weight.T  # (L, 2C)
        k, v = kv[:, :c], kv[:, c:]
        for fi in range(f):
            for yi in range(h):
                for xi in range(w):
                    tok = torch.nn.functional.layer_norm(y[bi, :, fi, yi, xi], (c,), layer.norm_text.weight, layer.norm_text.bias)
                    q = tok @ layer.to_q_text.weight.T  # (C,)
                    res = [torch.softmax(k[:, s] @ q[s] / math.sqrt(d), dim=0) @ v[:, s]
                           for s in (slice(hd * d, (hd + 1) * d) for hd in range(heads))]
                    out[bi, :, fi, yi, xi] += torch.cat(res) @ layer.to_out_text.weight.T + layer.to_out_text.bias
    return out


def test_text_attention_identity_at_init_and_matches_naive():
    layer = TemporalAttention(16, head_dim=8, cross_attention_dim=12)
    x, text = torch.randn(2, 16, 4, 2, 3), torch.randn(2, 5, 12)
    assert torch.equal(layer(x, text=text), x)  # both output projections start at zero
    randomize(layer)
    plain = TemporalAttention(16, head_dim=8)
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if "text" not in k})
    y = plain(x)  # the frame self-attention, then the text sub-layer on its output
    torch.testing.assert_close(layer(x, text=text), naive_text(layer, y, text), atol=1e-4, rtol=1e-4)


def test_text_attention_depends_on_the_prompt_and_needs_it():
    layer = randomize(TemporalAttention(16, head_dim=8, cross_attention_dim=12))
    x, text = torch.randn(1, 16, 4, 2, 2), torch.randn(1, 5, 12)
    assert (layer(x, text=text) - layer(x, text=text.flip(1) + 1)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="pass text"):
        layer(x)


def frame_position_reference(layer: TemporalAttention, f: int) -> torch.Tensor:
    """(F, C): W [sin(2^k pi t), cos(2^k pi t)]_k + b with t = i / (F - 1), written out per frame."""
    rows = []
    for i in range(f):
        t = i / (f - 1)
        feats = [math.sin(2**k * math.pi * t) for k in range(4)] + [math.cos(2**k * math.pi * t) for k in range(4)]
        rows.append(torch.tensor(feats) @ layer.frame_pos.weight.T + layer.frame_pos.bias)
    return torch.stack(rows)


def test_frame_positions_identity_at_init_and_match_naive():
    layer = TemporalAttention(16, head_dim=8, frame_positions=True)
    x = torch.randn(2, 16, 5, 2, 3)
    assert torch.equal(layer(x), x)  # the output projection starts at zero
    randomize(layer)
    torch.testing.assert_close(layer(x), naive(layer, x, frame_position_reference(layer, 5)), atol=1e-4, rtol=1e-4)


def test_frame_positions_tell_early_from_late_frames():
    """On a clip whose frames are all equal, relative positions alone give every frame the same
    output (equal values); with absolute positions the frames differ."""
    x = torch.randn(1, 16, 1, 2, 2).expand(1, 16, 6, 2, 2).contiguous()
    plain = randomize(TemporalAttention(16, head_dim=8))
    y = plain(x)
    torch.testing.assert_close(y[:, :, 1:], y[:, :, :1].expand_as(y[:, :, 1:]), atol=1e-5, rtol=1e-5)
    timed = randomize(TemporalAttention(16, head_dim=8, frame_positions=True))
    z = timed(x)
    assert (z[:, :, -1] - z[:, :, 0]).abs().max() > 1e-2
    text_timed = randomize(TemporalAttention(16, head_dim=8, cross_attention_dim=12, frame_positions=True))
    assert text_timed(x, text=torch.randn(1, 3, 12)).shape == x.shape
