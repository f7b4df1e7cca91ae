"""Learned merge of a spatial and a temporal path (Video LDM).

Blattmann et al. 2023, "Align your Latents" (Video LDM), Sec. 3.1, Eq. (2):
    z' = alpha * z_spatial + (1 - alpha) * z_temporal,   alpha = sigmoid(phi),
with one learned scalar phi per temporal block. Image-only inputs force alpha = 1, so the image
model is recovered exactly (Video LDM / SVD skip the temporal layers this way for image batches).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class AlphaMerge(nn.Module):
    """`alpha * spatial + (1 - alpha) * temporal` with `alpha = sigmoid(logit)`, one scalar per block."""

    def __init__(self, init_alpha: float = 0.5) -> None:
        super().__init__()
        if not 0.0 < init_alpha < 1.0:
            raise ValueError(f"init_alpha must be in (0, 1), got {init_alpha}")
        self.init_alpha = init_alpha
        self.logit = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.logit.fill_(math.log(self.init_alpha / (1.0 - self.init_alpha)))

    @property
    def alpha(self) -> Tensor:
        return torch.sigmoid(self.logit)

    def forward(self, spatial: Tensor, temporal: Tensor, keep: Tensor | None = None) -> Tensor:
        """spatial, temporal: (B, ...) -> (B, ...).

        keep: optional (B,) bool; where it is False (image-only samples) alpha = 1, i.e. `spatial` exactly.
        """
        alpha = self.alpha.to(spatial.dtype)
        out = alpha * spatial + (1 - alpha) * temporal
        if keep is not None:
            out = torch.where(keep.view(-1, *([1] * (spatial.ndim - 1))), out, spatial)
        return out
