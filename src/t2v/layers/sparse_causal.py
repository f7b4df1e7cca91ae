"""Sparse-causal spatio-temporal attention (ST-Attn) of Tune-A-Video, as a diffusers attention processor.

Wu et al. 2023, "Tune-A-Video", Sec. 4.1, Eq. (2): the spatial self-attention of a pretrained
text-to-image U-Net is replaced by attention where the query of frame i (its own tokens) attends
to the keys/values of the first frame and of the previous frame, concatenated along the token axis:
    Q = W^Q z_i,  K = W^K [z_1, z_{i-1}],  V = W^V [z_1, z_{i-1}]
with the pretrained W^Q, W^K, W^V (frame 1 has no previous frame and attends to itself twice,
as in the public implementation). On a clip whose frames are all equal the keys/values are one
frame's tokens twice, so the layer equals the image model's self-attention.

The processor owns only the algorithm; the diffusers `Attention` module keeps the weights
(set it with `attn.set_processor(SparseCausalAttnProcessor(num_frames))`).
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from einops import rearrange
from torch import Tensor
from torch.nn.functional import scaled_dot_product_attention

# Returns (frames per clip, keep) at call time: keep is an optional (B,) bool of the clips that
# use ST-Attn; clips where it is False attend within their own frame (image samples).
FrameSource = Callable[[], tuple[int, Optional[Tensor]]]


def gather_sparse_causal(x: Tensor, num_frames: int, keep: Tensor | None = None) -> Tensor:
    """Keys or values of frame 0 and frame i-1, concatenated along tokens.

    x: (B*F, N, D) per-frame tokens -> (B*F, 2N, D); frame 0 gets [x_0, x_0].
    keep: optional (B,) bool; clips where it is False get [x_i, x_i] (plain self-attention).
    """
    x = rearrange(x, "(b f) n d -> b f n d", f=num_frames)
    first = x[:, :1].expand(-1, num_frames, -1, -1)
    previous = torch.cat([x[:, :1], x[:, :-1]], dim=1)
    kv = torch.cat([first, previous], dim=2)  # (B, F, 2N, D)
    if keep is not None:
        kv = torch.where(keep.view(-1, 1, 1, 1), kv, torch.cat([x, x], dim=2))
    return rearrange(kv, "b f n d -> (b f) n d")


class SparseCausalAttnProcessor:
    """Tune-A-Video ST-Attn for a diffusers self-attention module (`attn1` of a transformer block).

    `frames` is the clip length, or a callable returning (clip length, keep) at call time (the
    video U-Net passes its per-forward frame context). With one frame per clip (or `image_only`)
    it delegates to diffusers' `AttnProcessor2_0`, i.e. exactly the image model.
    """

    def __init__(self, frames: Union[int, FrameSource]) -> None:
        self.frames = frames
        self._plain = AttnProcessor2_0()

    def _frame_info(self, num_frames: int | None) -> tuple[int, Optional[Tensor]]:
        if num_frames is not None:
            return num_frames, None
        return self.frames() if callable(self.frames) else (self.frames, None)

    def __call__(self, attn: Attention, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None,
                 num_frames: int | None = None) -> Tensor:
        """hidden_states: (B*F, N, C) or (B*F, C, H, W) -> same shape."""
        frames, keep = self._frame_info(num_frames)
        if frames == 1:
            return self._plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("sparse-causal attention replaces self-attention only (no encoder states, no mask)")

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            _, channel, height, width = hidden_states.shape
            hidden_states = rearrange(hidden_states, "bf c h w -> bf (h w) c")
        if hidden_states.shape[0] % frames:
            raise ValueError(f"batch {hidden_states.shape[0]} is not a multiple of {frames} frames")
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        # 1. Eq. (2): Q from frame i, K/V from [frame 0, frame i-1] with the pretrained projections.
        query = attn.to_q(hidden_states)  # (BF, N, heads*d)
        key = gather_sparse_causal(attn.to_k(hidden_states), frames, keep)  # (BF, 2N, heads*d)
        value = gather_sparse_causal(attn.to_v(hidden_states), frames, keep)
        query, key, value = (rearrange(t, "bf n (heads d) -> bf heads n d", heads=attn.heads) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        # 2. softmax(Q K^T / sqrt(d)) V over the 2N gathered tokens.
        out = scaled_dot_product_attention(query, key, value, scale=attn.scale)  # (BF, heads, N, d)
        out = rearrange(out, "bf heads n d -> bf n (heads d)").to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))  # projection, dropout
        if input_ndim == 4:
            out = rearrange(out, "bf (h w) c -> bf c h w", h=height, w=width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor
