"""3D-convolution residual block for the temporal layers of Video LDM.

Blattmann et al. 2023, "Align your Latents" (Video LDM), Sec. 3.1: the temporal layers interleaved
with the frozen spatial layers are temporal attention and residual blocks of 3D convolutions. The
block is `x + conv2(act(norm(conv1(act(norm(x))))))` with the last convolution zero at init, so it
starts as the identity. The default kernel (3, 1, 1) mixes frames only (as Stable Video Diffusion's
temporal residual blocks do); pass (3, 3, 3) for full space-time kernels.

With `embedding_dim`, the block also takes a per-clip conditioning vector (the timestep embedding,
plus pooled text in the default model: `t2v.layers.ClipCondition`), projected to the channels and
added after the first convolution, as in the LDM code base's `ResBlock` and diffusers' `ResnetBlock2D`;
with `scale_shift`, it scales and shifts the normed activations instead (Dhariwal & Nichol 2021's
scale-shift norm, diffusers' `time_embedding_norm="scale_shift"`), which can switch what a kernel
does by condition rather than only bias it. With `positions`, a learned embedding of each token's
place in the clip, (frame, row, column) (`t2v.layers.positions.ClipPositions`), is added there too,
so the block can act differently in different parts of the frame and clip (a convolution cannot).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from t2v.layers.positions import ClipPositions
from t2v.layers.temporal_conv import conv_over_frames


def _groups(channels: int, at_most: int = 32) -> int:
    """The largest group count <= `at_most` that divides `channels` (GroupNorm needs a divisor)."""
    return max(g for g in range(1, min(at_most, channels) + 1) if channels % g == 0)


class TemporalResBlock(nn.Module):
    """Residual block of two 3D convolutions over (B, C, F, H, W); the last one is zero at init."""

    def __init__(self, channels: int, kernel_size: tuple[int, int, int] = (3, 1, 1), groups: int = 32,
                 embedding_dim: int | None = None, scale_shift: bool = False, positions: bool = False) -> None:
        super().__init__()
        if any(k % 2 != 1 for k in kernel_size):
            raise ValueError(f"kernel_size must be odd in every axis, got {kernel_size}")
        padding = tuple(k // 2 for k in kernel_size)
        self.norm1 = nn.GroupNorm(_groups(channels, groups), channels)
        self.conv1 = nn.Conv3d(channels, channels, kernel_size, padding=padding)
        self.norm2 = nn.GroupNorm(_groups(channels, groups), channels)
        self.conv2 = nn.Conv3d(channels, channels, kernel_size, padding=padding)
        self.act = nn.SiLU()
        self.embedding_dim = embedding_dim
        self.scale_shift = scale_shift and embedding_dim is not None
        if embedding_dim is not None:
            self.emb_proj = nn.Linear(embedding_dim, 2 * channels if self.scale_shift else channels)
        self.positions = ClipPositions(channels) if positions else None
        self.reset_parameters()

    @property
    def uses_emb(self) -> bool:
        """True when `forward` needs the per-clip conditioning vector `emb`."""
        return self.embedding_dim is not None

    def reset_parameters(self) -> None:
        """Identity at init: the last convolution is zero."""
        for m in (self.norm1, self.conv1, self.norm2, *([self.emb_proj] if self.uses_emb else []),
                  *([self.positions] if self.positions is not None else [])):
            m.reset_parameters()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def _conv(self, conv: nn.Conv3d, x: Tensor) -> Tensor:
        if conv.kernel_size[1:] == (1, 1):  # frames only: one matrix product, no layout change
            return conv_over_frames(x, conv.weight[:, :, :, 0, 0], conv.bias)
        return conv(x)

    def forward(self, x: Tensor, keep: Tensor | None = None, emb: Tensor | None = None) -> Tensor:
        """x: (B, C, F, H, W) -> (B, C, F, H, W); keep: optional (B,) bool, False = unchanged;
        emb: (B, embedding_dim), required when the block `uses_emb`."""
        # Contiguous for the norm: GroupNorm's channels-last-3D backward segfaults (torch 2.13 CPU) when
        # only its weights need gradients, and a channels-last frames view of the U-Net is that layout.
        # Any other frames view is copied inside group_norm anyway.
        h = self._conv(self.conv1, self.act(self.norm1(x.contiguous())))
        if self.positions is not None:  # (F, H, W, C) -> (1, C, F, H, W)
            h = h + self.positions(*h.shape[2:], h.dtype).permute(3, 0, 1, 2)[None]
        if self.uses_emb:
            if emb is None or emb.shape != (x.shape[0], self.embedding_dim):
                got = None if emb is None else tuple(emb.shape)
                raise ValueError(f"this temporal resblock is conditioned: pass emb (B={x.shape[0]}, {self.embedding_dim}); got {got}")
            e = self.emb_proj(emb.to(self.emb_proj.weight.dtype)).to(h.dtype)[:, :, None, None, None]
            if self.scale_shift:  # ADM's scale-shift norm: norm2(h) * (1 + scale) + shift
                scale, shift = e.chunk(2, dim=1)
                h = self.norm2(h) * (1 + scale) + shift
            else:
                h = self.norm2(h + e)
        else:
            h = self.norm2(h)
        y = x + self._conv(self.conv2, self.act(h))
        if keep is not None:
            y = torch.where(keep.view(-1, 1, 1, 1, 1), y, x)
        return y
