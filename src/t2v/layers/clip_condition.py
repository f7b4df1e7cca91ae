"""One conditioning vector per clip for the temporal residual blocks: timestep + pooled text.

Video LDM's temporal residual blocks are the LDM code base's `ResBlock` with 3D convolutions, which
take the timestep embedding like every residual block of the U-Net (Blattmann et al. 2023, Sec. 3.1
and App. D); Stable Video Diffusion's do too. The text reaches them the way SDXL gives its residual
blocks the prompt (Podell et al. 2023, Sec. 2.1, "added conditions"): a pooled text embedding
projected and added to the timestep embedding. CLIP's own pooled output needs the EOS position, and
the video U-Net only sees the token states, so the pooling here is a learned attention pooling
over the tokens (one query, zero at init: the mean of the tokens before training). Written here
because diffusers' `TextTimeEmbedding` pools with a fixed attention layout of its own and takes no
timestep.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ClipCondition(nn.Module):
    """(timestep embedding (B, E), text tokens (B, L, D)) -> SiLU(temb + W pool(text)) (B, E)."""

    def __init__(self, text_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.pool_query = nn.Parameter(torch.zeros(text_dim))
        self.text_proj = nn.Linear(text_dim, embed_dim)
        self.act = nn.SiLU()

    def pool(self, text: Tensor) -> Tensor:
        """(B, L, D) -> (B, D): softmax(text . q / sqrt(D)) weighted sum of the tokens."""
        logits = text @ self.pool_query.to(text.dtype) / math.sqrt(text.shape[-1])  # (B, L)
        return (logits.softmax(dim=1)[..., None] * text).sum(dim=1)

    def forward(self, temb: Tensor, text: Tensor) -> Tensor:
        pooled = self.pool(text.to(self.text_proj.weight.dtype))
        return self.act(temb + self.text_proj(pooled).to(temb.dtype))
