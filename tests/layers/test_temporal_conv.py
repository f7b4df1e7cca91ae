"""TemporalConv (Make-A-Video pseudo-3D conv, 1D part) against the identity and a naive frame loop."""

from __future__ import annotations

import torch

from t2v.layers import TemporalConv


def naive_temporal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """out[:, :, f] = bias + sum_k W_k @ x[:, :, f + k - k//2] with zero padding; weight (C, C, k)."""
    b, c, f, h, w = x.shape
    k = weight.shape[-1]
    out = torch.zeros_like(x) + bias.view(1, -1, 1, 1, 1)
    for t in range(f):
        for j in range(k):
            src = t + j - k // 2
            if 0 <= src < f:
                out[:, :, t] += torch.einsum("oc,bchw->bohw", weight[:, :, j], x[:, :, src])
    return out


def test_identity_at_init_is_exact():
    layer = TemporalConv(6)
    x = torch.randn(2, 6, 5, 4, 3)
    assert torch.equal(layer(x), x)


def test_matches_naive_frame_loop_with_random_weights():
    layer = TemporalConv(5, kernel_size=3)
    torch.nn.init.normal_(layer.conv.weight)
    torch.nn.init.normal_(layer.conv.bias)
    x = torch.randn(2, 5, 7, 3, 4)
    ref = naive_temporal_conv(x, layer.conv.weight[:, :, :, 0, 0], layer.conv.bias)
    torch.testing.assert_close(layer(x), ref, atol=1e-5, rtol=1e-5)


def test_keep_mask_passes_image_samples_through():
    layer = TemporalConv(4)
    torch.nn.init.normal_(layer.conv.weight)
    x = torch.randn(3, 4, 5, 2, 2)
    keep = torch.tensor([True, False, True])
    y, full = layer(x, keep), layer(x)
    assert torch.equal(y[1], x[1])
    assert torch.equal(y[[0, 2]], full[[0, 2]])
    assert not torch.allclose(full[1], x[1])
