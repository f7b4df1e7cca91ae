"""Sparse-causal spatio-temporal attention (ST-Attn) of Tune-A-Video, as a diffusers attention processor.

Wu et al. 2023, "Tune-A-Video", Sec. 4.1, Eq. (2): the spatial self-attention of a pretrained
text-to-image U-Net is replaced by attention where the query of frame i (its own tokens) attends
to the keys/values of the first frame and of the previous frame, concatenated along the token axis:
    Q = W^Q z_i,  K = W^K [z_1, z_{i-1}],  V = W^V [z_1, z_{i-1}]
with the pretrained W^Q, W^K, W^V (frame 1 has no previous frame and attends to itself twice,
as in the public implementation). On a clip whose frames are all equal the keys/values are one
frame's tokens twice, so the layer equals the image model's self-attention. Frames 0 and 1 both get
[z_1, z_1], i.e. frame 1's keys once: they run against N keys instead of 2N (1/F of the work saved).

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
    """Keys or values of frame 0 and frame i-1, concatenated along tokens (Eq. 2 as written; the
    processor computes the same attention without duplicating frame 0's keys).

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


def attention_output(attn: Attention, out: Tensor, residual: Tensor, spatial: Optional[tuple[int, int]]) -> Tensor:
    """The end of a diffusers attention processor: output projection and dropout, back to (B*F, C, H, W)
    when the input was a feature map (`spatial` = (H, W)), the residual when the block has one, and
    the output rescale, as diffusers' `AttnProcessor2_0` ends. out: (B*F, N, heads*d)."""
    out = attn.to_out[1](attn.to_out[0](out))  # projection, dropout
    if spatial is not None:
        out = rearrange(out, "bf (h w) c -> bf c h w", h=spatial[0], w=spatial[1])
    if attn.residual_connection:
        out = out + residual
    return out / attn.rescale_output_factor


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

    @staticmethod
    def _attend(attn: Attention, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Multi-head attention of queries (n, Lq, heads*d) over keys/values (n, Lk, heads*d) -> (n, Lq, heads*d)."""
        q, k, v = (rearrange(t, "n l (heads d) -> n heads l d", heads=attn.heads) for t in (q, k, v))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        out = scaled_dot_product_attention(q, k, v, scale=attn.scale)  # (n, heads, Lq, d)
        return rearrange(out, "n heads l d -> n l (heads d)")

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
        q, k, v = (rearrange(proj(hidden_states), "(b f) n c -> b f n c", f=frames)  # (B, F, N, heads*d)
                   for proj in (attn.to_q, attn.to_k, attn.to_v))

        # 2. softmax(Q K^T / sqrt(d)) V. Frames 0 and 1 both attend to [frame 0, frame 0], which is
        #    attention to frame 0's keys once (each weight halves, each value counts twice): their 2N
        #    queries run against N keys. Frames 2.. attend to the 2N keys of [frame 0, frame i-1].
        first = self._attend(attn, rearrange(q[:, :2], "b f n c -> b (f n) c"), k[:, 0], v[:, 0])  # (B, 2N, heads*d)
        out = [rearrange(first, "b (f n) c -> b f n c", f=2)]
        if frames > 2:
            k2, v2 = (torch.cat([t[:, :1].expand(-1, frames - 2, -1, -1), t[:, 1:-1]], dim=2) for t in (k, v))  # (B, F-2, 2N, heads*d)
            rest = self._attend(attn, *(rearrange(t, "b f n c -> (b f) n c") for t in (q[:, 2:], k2, v2)))
            out.append(rearrange(rest, "(b f) n c -> b f n c", f=frames - 2))
        out = torch.cat(out, dim=1)  # (B, F, N, heads*d)
        if keep is not None:  # image clips: every frame attends to itself (its own keys twice = once)
            own = rearrange(self._attend(attn, *(rearrange(t, "b f n c -> (b f) n c") for t in (q, k, v))),
                            "(b f) n c -> b f n c", f=frames)
            out = torch.where(keep.view(-1, 1, 1, 1), out, own)
        out = rearrange(out, "b f n c -> (b f) n c")
        return attention_output(attn, out, residual, (height, width) if input_ndim == 4 else None)
