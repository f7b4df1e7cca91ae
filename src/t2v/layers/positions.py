"""Absolute place of every token in the clip, (frame, row, column), as a learned embedding.

The temporal layers of the papers are translation-equivariant in space: a temporal attention mixes
one pixel's frames and a 3D convolution is the same everywhere, so neither knows where in the frame
it is (only zero padding hints at the borders). That is fine when the clip already shows where its
content is, and it cannot express what a prompt says about place and time together from pure noise:
in ShapesWorld an object "moving right" starts in the left part of the frame and ends in the right
part (shapes-world.md: the start keeps the whole path inside the canvas), so the best prediction at
the noisiest timestep, the mean clip of the prompt, puts frame 0's object left of frame 15's
(measured in docs/default_model.md, session 6). A layer that knows (frame, row, column) can write
that mean; one that does not predicts the same centred blur for every direction.

Coordinates are normalised to [0, 1] (t = f / (F - 1), y = (i + 0.5) / H, x = (j + 0.5) / W), so the
embedding is defined for any clip length and grid; features are sin/cos(2^k pi u), k < `freqs`, for
each of the three, projected by a learned linear layer to the layer's channels. The projection starts
at zero, so adding positions to a trained layer leaves it unchanged until it trains. Hand-written: no
library module gives a 3D (time, height, width) Fourier embedding at normalised coordinates.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

POSITION_FREQS = 4  # sinusoid frequencies per coordinate (2 features each, 3 coordinates)


def position_features(num_frames: int, height: int, width: int, freqs: int = POSITION_FREQS,
                      device: torch.device | None = None) -> Tensor:
    """(F, H, W, 6 * freqs) float32: sin/cos(2^k pi u) of the normalised frame, row and column."""
    t = torch.arange(num_frames, device=device, dtype=torch.float32) / max(num_frames - 1, 1)
    y = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    x = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    scales = math.pi * 2.0 ** torch.arange(freqs, device=device, dtype=torch.float32)  # (K,)

    def feats(u: Tensor) -> Tensor:  # (N,) -> (N, 2K)
        angles = u[:, None] * scales
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    ft, fy, fx = feats(t), feats(y), feats(x)
    return torch.cat([
        ft[:, None, None].expand(num_frames, height, width, -1),
        fy[None, :, None].expand(num_frames, height, width, -1),
        fx[None, None, :].expand(num_frames, height, width, -1),
    ], dim=-1)


class ClipPositions(nn.Module):
    """Learned projection of `position_features`: (F, H, W) -> (F, H, W, channels)."""

    def __init__(self, channels: int, freqs: int = POSITION_FREQS) -> None:
        super().__init__()
        self.freqs = freqs
        self.proj = nn.Linear(6 * freqs, channels)
        self._features: dict[tuple[int, int, int, torch.device], Tensor] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero: no position information until trained (a trained layer it is added to is unchanged)."""
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, num_frames: int, height: int, width: int, dtype: torch.dtype) -> Tensor:
        device = self.proj.weight.device
        key = (num_frames, height, width, device)
        feats = self._features.get(key)
        if feats is None:
            feats = self._features[key] = position_features(num_frames, height, width, self.freqs, device)
        return self.proj(feats.to(self.proj.weight.dtype)).to(dtype)
