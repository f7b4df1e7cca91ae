"""TemporalResBlock (Video LDM) against the identity and a reference built from explicit taps."""

from __future__ import annotations

import torch

from t2v.layers import TemporalResBlock


def conv_taps(x: torch.Tensor, conv: torch.nn.Conv3d) -> torch.Tensor:
    """3D conv with kernel (k, 1, 1) as a sum over frame taps of channel mixes (zero padding)."""
    k, f = conv.kernel_size[0], x.shape[2]
    out = conv.bias.view(1, -1, 1, 1, 1).expand_as(x).clone()
    for t in range(f):
        for j in range(k):
            src = t + j - k // 2
            if 0 <= src < f:
                out[:, :, t] += torch.einsum("oc,bchw->bohw", conv.weight[:, :, j, 0, 0], x[:, :, src])
    return out


def group_norm(x: torch.Tensor, norm: torch.nn.GroupNorm) -> torch.Tensor:
    b, c = x.shape[:2]
    g = x.reshape(b, norm.num_groups, -1)
    g = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + norm.eps)
    return g.reshape_as(x) * norm.weight.view(1, -1, 1, 1, 1) + norm.bias.view(1, -1, 1, 1, 1)


def test_identity_at_init_is_exact():
    block = TemporalResBlock(16)
    x = torch.randn(2, 16, 5, 3, 3)
    assert torch.equal(block(x), x)


def test_matches_reference_with_random_weights():
    block = TemporalResBlock(8, groups=4)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 8, 6, 3, 2)
    silu = torch.nn.functional.silu
    h = conv_taps(silu(group_norm(x, block.norm1)), block.conv1)
    ref = x + conv_taps(silu(group_norm(h, block.norm2)), block.conv2)
    torch.testing.assert_close(block(x), ref, atol=1e-4, rtol=1e-4)
    y = block(x, keep=torch.tensor([False, True]))
    assert torch.equal(y[0], x[0])


def test_channels_last_frames_view_gives_the_same_gradients():
    """A channels-last view of the U-Net's frames is channels-last-3D to GroupNorm, whose backward
    crashed (torch 2.13 CPU) when only the block's weights need gradients; the block must not care."""
    block = TemporalResBlock(32)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.1)
    frames = torch.randn(8, 32, 4, 4)  # (B*F, C, H, W), no gradient
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = frames.contiguous(memory_format=fmt).unflatten(0, (2, 4)).transpose(1, 2)  # (B, C, F, H, W) view
        block.zero_grad()
        block(x).square().mean().backward()
        grads.append([p.grad.clone() for p in block.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
