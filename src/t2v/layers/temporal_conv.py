"""Temporal 1D convolution over frames: the second half of Make-A-Video's pseudo-3D convolution.

Singer et al. 2022, "Make-A-Video", Sec. 3.2, Eq. (1): Conv_P3D(h) = Conv1D(Conv2D(h) o T) o T,
i.e. a pretrained 2D convolution on every frame followed by a 1D convolution over the frame axis at
every pixel. The 1D convolution starts as the identity (dirac kernel, zero bias), so the inflated
network equals the image network at initialisation.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn.functional import conv3d


def is_frames_major(x: Tensor) -> bool:
    """True when (B, C, F, H, W) `x` is laid out frame after frame, i.e. a view of (B*F, C, H, W) frames."""
    return x.permute(0, 2, 1, 3, 4).is_contiguous()


def conv_over_frames(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """1D convolution along F with zero padding ("same"): (B, C_in, F, H, W) -> (B, C_out, F, H, W).

    weight: (C_out, C_in, k) with k odd; out[:, :, f] = bias + sum_j weight[:, :, j] @ x[:, :, f + j - k//2].
    Without autograd, computed as one matrix product of all k taps, z = W_taps @ x, then a sum of
    the taps shifted along F. This equals `nn.Conv3d` with kernel (k, 1, 1) but works in x's own
    memory order: on frames-major input (what the 2D U-Net produces) it needs no transpose to
    (B, C, F, H, W) and back, which cost more than the convolution itself on CPU (1.1-1.5x faster,
    benchmarks/unet_speed.py). Hand-written because no library op convolves over a non-innermost
    axis without that transpose. Under autograd it calls `conv3d`, whose backward is the faster one.
    """
    b, _, f, h, w = x.shape
    k = weight.shape[-1]
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        # Training: autograd through the shifted sums costs more than torch's Conv3d backward.
        return conv3d(x.contiguous(), weight[:, :, :, None, None], bias, padding=(k // 2, 0, 0))
    taps = rearrange(weight, "o i k -> (k o) i")  # (k*C_out, C_in)
    if is_frames_major(x):
        z = torch.matmul(taps, rearrange(x, "b c f h w -> b f c (h w)"))  # (B, F, k*C_out, HW)
        z = rearrange(z, "b f (k o) n -> k b o f n", k=k)  # a view
    else:
        z = torch.matmul(taps, rearrange(x, "b c f h w -> b c (f h w)"))  # (B, k*C_out, F*HW)
        z = rearrange(z, "b (k o) (f n) -> k b o f n", k=k, f=f)  # a view
    # 1. The centre tap (no shift) plus the bias: a new tensor in z's memory order.
    y = z[k // 2].clone() if bias is None else z[k // 2] + bias.view(1, -1, 1, 1)
    # 2. Tap j reads frame f + j - k//2: add it shifted along F where that frame exists.
    for j in range(k):
        s = j - k // 2
        if s == 0 or abs(s) >= f:
            continue
        if s < 0:
            y[:, :, -s:] += z[j][:, :, : f + s]
        else:
            y[:, :, : f - s] += z[j][:, :, s:]
    return rearrange(y, "b o f (h w) -> b o f h w", h=h, w=w)


class TemporalConv(nn.Module):
    """1D convolution over frames at every pixel (Make-A-Video), identity at init.

    The weights are a `Conv3d` with kernel (k, 1, 1) (state-dict compatible with a 3D conv);
    `conv_over_frames` runs it on the (B, C, F, H, W) tensor in its own memory order.
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
        y = conv_over_frames(x, self.conv.weight[:, :, :, 0, 0], self.conv.bias)
        if keep is not None:
            y = torch.where(keep.view(-1, 1, 1, 1, 1), y, x)
        return y
