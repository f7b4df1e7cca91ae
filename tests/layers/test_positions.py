"""Clip positions (frame, row, column) for the temporal layers: the features, and what they let a
temporal layer do that it cannot without them (act differently at different places of the frame)."""

from __future__ import annotations

import math

import pytest
import torch

from t2v.layers import TemporalAttention, TemporalResBlock
from t2v.layers.positions import ClipPositions, position_features


def test_features_are_sinusoids_of_normalised_coordinates():
    feats = position_features(5, 4, 8, freqs=3)
    assert feats.shape == (5, 4, 8, 18)
    # column 6 of 8 is x = 6.5 / 8; the column block is the last 2K features: sin(2^k pi x), then cos.
    x = 6.5 / 8
    expected = [math.sin(math.pi * 2 ** k * x) for k in range(3)] + [math.cos(math.pi * 2 ** k * x) for k in range(3)]
    torch.testing.assert_close(feats[2, 1, 6, 12:], torch.tensor(expected), atol=1e-6, rtol=0)
    # Normalised: frames 0, 2, 4 of a 5-frame clip are t = 0, 0.5, 1, as frames 0, 1, 2 of a 3-frame clip;
    # rows of a 4-row grid sit at the centres of rows 1, 3, 5, 7 of an 8-row grid only approximately, so
    # compare time alone.
    torch.testing.assert_close(feats[::2, :, :, :6], position_features(3, 4, 8, freqs=3)[..., :6])
    # Every place of the clip gets its own feature vector.
    flat = feats.reshape(-1, 18)
    assert torch.cdist(flat, flat).add(torch.eye(len(flat)) * 10).min() > 1e-3


def test_clip_positions_start_at_zero_and_cache_per_size():
    pos = ClipPositions(16)
    assert torch.equal(pos(3, 4, 4, torch.float32), torch.zeros(3, 4, 4, 16))
    torch.nn.init.normal_(pos.proj.weight)
    a = pos(3, 4, 4, torch.float32)
    torch.testing.assert_close(a, pos.proj(position_features(3, 4, 4)))
    assert len(pos._features) == 1 and pos(3, 4, 4, torch.float32).shape == a.shape and len(pos._features) == 1


def spatially_constant(c: int = 8, f: int = 5, h: int = 4, w: int = 4) -> torch.Tensor:
    """(1, C, F, H, W): each frame one random value per channel, the same at every pixel."""
    return torch.randn(1, c, f, 1, 1).expand(1, c, f, h, w).contiguous()


def spatial_spread(y: torch.Tensor) -> float:
    """Largest difference between pixels of the same frame and channel."""
    return (y - y[..., :1, :1]).abs().max().item()


@pytest.mark.parametrize("make", [
    lambda positions: TemporalResBlock(8, (3, 1, 1), groups=4, positions=positions),
    lambda positions: TemporalAttention(8, head_dim=4, pixel_positions=positions),
], ids=["resblock", "attention"])
def test_positions_let_a_temporal_layer_act_by_place(make):
    """Frame-only layers map a spatially constant clip to a spatially constant clip (they are the same at
    every pixel); with positions they do not. Both start as the identity."""
    torch.manual_seed(0)
    x = spatially_constant()
    outs = {}
    for positions in (False, True):
        torch.manual_seed(1)
        layer = make(positions)
        with torch.no_grad():
            assert torch.equal(layer(x), x)  # identity at init
            for p in layer.parameters():
                torch.nn.init.normal_(p, std=0.3)
            outs[positions] = layer(x)
    assert spatial_spread(outs[False]) < 1e-5
    assert spatial_spread(outs[True]) > 1e-2
