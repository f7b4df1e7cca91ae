"""TemporalConv (Make-A-Video pseudo-3D conv, 1D part) against the identity and a naive frame loop."""

from __future__ import annotations

import pytest
import torch

from t2v.layers import TemporalConv, conv_over_frames
from t2v.layers.temporal_conv import is_frames_major


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


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("frames_major", [False, True])
def test_conv_over_frames_equals_conv3d_in_either_memory_order(kernel_size, frames_major):
    """conv_over_frames (one matrix product + shifted sums) against torch's Conv3d with kernel (k, 1, 1)."""
    conv = torch.nn.Conv3d(6, 4, (kernel_size, 1, 1), padding=(kernel_size // 2, 0, 0))
    b, f = 2, 4  # fewer frames than taps for k = 5: taps reading outside the clip must drop out
    x = torch.randn(b * f, 6, 3, 2).unflatten(0, (b, f)).transpose(1, 2)  # frames-major (B, C, F, H, W) view
    if not frames_major:
        x = x.contiguous()
    assert is_frames_major(x) == frames_major
    weight = conv.weight[:, :, :, 0, 0]
    ref = conv(x.contiguous())
    with torch.no_grad():  # the matrix-product path
        y = conv_over_frames(x, weight, conv.bias)
        torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
        assert is_frames_major(y) == frames_major  # no transpose
        torch.testing.assert_close(conv_over_frames(x, weight, None), ref - conv.bias.view(1, -1, 1, 1, 1),
                                   atol=1e-5, rtol=1e-5)
    # Under autograd (training) the same numbers, with gradients.
    torch.testing.assert_close(conv_over_frames(x, weight, conv.bias), ref, atol=1e-5, rtol=1e-5)
