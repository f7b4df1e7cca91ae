"""Temporal 1D convolution over frames: the second half of Make-A-Video's pseudo-3D convolution.

Singer et al. 2022, "Make-A-Video", Sec. 3.2, Eq. (1): Conv_P3D(h) = Conv1D(Conv2D(h) o T) o T,
i.e. a pretrained 2D convolution on every frame followed by a 1D convolution over the frame axis at
every pixel. The 1D convolution starts as the identity (dirac kernel, zero bias), so the inflated
network equals the image network at initialisation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TemporalConv(nn.Module):
    """1D convolution over frames at every pixel (Make-A-Video), identity at init.

    Stored as a `Conv3d` with kernel (k, 1, 1): a 1D kernel over F that runs on the (B, C, F, H, W)
    layout directly, with no reshape to (B*H*W, C, F).
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"temporal kernel_size must be odd to keep the frame count, got {kernel_size}")
        self.conv = nn.Conv3d(channels, channels, (kernel_size, 1, 1), padding=(kernel_size // 2, 0, 0))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Identity: a dirac kernel (1 at the centre tap, channel i -> channel i) and zero bias."""
        nn.init.dirac_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        """x: (B, C, F, H, W) -> (B, C, F, H, W).

        keep: optional (B,) bool; samples where it is False are returned unchanged (image samples).
        """
        y = self.conv(x)
        if keep is not None:
            y = torch.where(keep.view(-1, 1, 1, 1, 1), y, x)
        return y
