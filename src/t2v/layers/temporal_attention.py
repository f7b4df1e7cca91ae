"""Temporal self-attention over frames at every spatial position (VDM's factorized space-time attention).

Ho et al. 2022, "Video Diffusion Models", Sec. 3: each spatial attention block is followed by an
attention over the frame axis, at each pixel independently, with relative position information so
that the network knows frame order. Relative positions here are a learned bias per head and per
bucket of the signed frame offset (the bucketing of Raffel et al. 2020, T5, Sec. 2.1): small offsets
get their own bucket, larger ones share log-spaced buckets and every offset beyond `max_distance`
falls into the last bucket, so the layer runs for any number of frames (no position table that
caps the clip length). An optional causal mask lets frame i see frames <= i only.

Optionally (`cross_attention_dim`), every pixel of every frame then attends to the clip's text
tokens, with its own zero-initialised output (a temporal block that also sees the prompt, as
LVDM/VideoCrafter's temporal transformers may). Video LDM's temporal layers otherwise see only the
frozen image model's features, and those carry no motion words: a single frame cannot show a
direction, so a text-to-image prior has no reason to keep "left" apart from "right".

The output projections are zero at init, so the residual layer is the identity and an inflated model
equals its 2D parent before training (Make-A-Video, Tune-A-Video, Video LDM initialise this way).
Attention runs through `scaled_dot_product_attention` with few wide heads (default width 64).
The layer works on the memory order it is given (frames of the 2D U-Net, see `forward`).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn.functional import scaled_dot_product_attention

from t2v.layers.positions import ClipPositions

FRAME_POS_FREQS = 4  # sinusoid frequencies of the optional absolute frame position (2 features each)


def relative_position_buckets(num_frames: int, num_buckets: int = 32, max_distance: int = 128,
                              device: torch.device | None = None) -> Tensor:
    """Bucket index of the signed offset (key frame - query frame) for every pair: (F, F) long.

    Half of the buckets are for keys after the query, half for keys before (bidirectional).
    Within a half, offsets 0 .. n/2-1 are exact and the rest are log-spaced up to `max_distance`.
    """
    frames = torch.arange(num_frames, device=device)
    offset = frames[None, :] - frames[:, None]  # (F_query, F_key)
    half = num_buckets // 2
    bucket = (offset > 0).long() * half
    distance = offset.abs()
    exact = half // 2
    # log(d / exact) / log(max_distance / exact) in [0, 1) for exact <= d < max_distance.
    far = exact + (
        torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact) * (half - exact)
    ).long()
    far = far.clamp(max=half - 1)
    return bucket + torch.where(distance < exact, distance, far)


class RelativePositionBias(nn.Module):
    """A learned scalar per head and per relative-offset bucket, added to attention logits."""

    def __init__(self, num_heads: int, num_buckets: int = 32, max_distance: int = 128) -> None:
        super().__init__()
        if num_buckets < 8 or num_buckets % 4:
            raise ValueError(f"num_buckets must be a multiple of 4 and >= 8, got {num_buckets}")
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bias = nn.Embedding(num_buckets, num_heads)
        self._buckets: dict[tuple[int, torch.device], Tensor] = {}  # (F, device) -> (F, F) indices
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.bias.weight, std=0.02)

    def forward(self, num_frames: int) -> Tensor:
        """-> (heads, F, F) bias for query frame i and key frame j."""
        device = self.bias.weight.device
        buckets = self._buckets.get((num_frames, device))
        if buckets is None:
            buckets = relative_position_buckets(num_frames, self.num_buckets, self.max_distance, device)
            self._buckets[(num_frames, device)] = buckets
        return rearrange(self.bias(buckets), "fq fk heads -> heads fq fk")


class TemporalAttention(nn.Module):
    """Residual self-attention over the frame axis at every pixel: (B, C, F, H, W) -> same shape."""

    def __init__(self, channels: int, head_dim: int = 64, causal: bool = False, num_buckets: int = 32,
                 max_distance: int = 128, cross_attention_dim: int | None = None, frame_positions: bool = False,
                 pixel_positions: bool = False) -> None:
        super().__init__()
        heads = max(1, channels // head_dim)
        while channels % heads:
            heads -= 1
        self.heads = heads
        self.causal = causal
        self.norm = nn.LayerNorm(channels)
        self.to_qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.to_out = nn.Linear(channels, channels)
        self.rel_pos = self._position_bias(heads, num_buckets, max_distance)
        self.cross_attention_dim = cross_attention_dim
        if cross_attention_dim is not None:
            self.norm_text = nn.LayerNorm(channels)
            self.to_q_text = nn.Linear(channels, channels, bias=False)
            self.to_kv_text = nn.Linear(cross_attention_dim, 2 * channels, bias=False)
            self.to_out_text = nn.Linear(channels, channels)
        # Optional absolute time: a learned projection of sinusoids of the frame's place in the clip,
        # t = f / (F - 1) in [0, 1], added to the normed tokens before q/k/v (and the text query).
        # Relative-position bias alone tells a frame little about being early or late in the clip.
        self.frame_positions = frame_positions
        if frame_positions:
            self.frame_pos = nn.Linear(2 * FRAME_POS_FREQS, channels)
        # Optional place in the clip, (frame, row, column) (`t2v.layers.positions`), added likewise: a
        # layer at one pixel otherwise does not know where in the frame that pixel is.
        self.pixel_positions = pixel_positions
        if pixel_positions:
            self.clip_pos = ClipPositions(channels)
        self.reset_parameters()

    def _position_bias(self, heads: int, num_buckets: int, max_distance: int) -> nn.Module:
        """The learned bias on the attention logits: per head and frame offset (SpaceTimeAttention: 3D offsets)."""
        return RelativePositionBias(heads, num_buckets, max_distance)

    @property
    def uses_text(self) -> bool:
        """True when the layer also attends to the prompt (`forward` then needs `text`)."""
        return self.cross_attention_dim is not None

    def reset_parameters(self) -> None:
        """Identity at init: the output projection is zero."""
        self.norm.reset_parameters()
        self.to_qkv.reset_parameters()
        self.rel_pos.reset_parameters()
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)
        if self.frame_positions:
            self.frame_pos.reset_parameters()
        if self.pixel_positions:
            self.clip_pos.reset_parameters()
        if self.uses_text:
            self.norm_text.reset_parameters()
            self.to_q_text.reset_parameters()
            self.to_kv_text.reset_parameters()
            nn.init.zeros_(self.to_out_text.weight)
            nn.init.zeros_(self.to_out_text.bias)

    def attention_bias(self, num_frames: int, dtype: torch.dtype) -> Tensor:
        """(1, heads, F, F) additive logits: relative-position bias, and -inf above the diagonal if causal.

        Four dimensions on purpose: torch's CPU SDPA takes its fused (flash) kernel for a 4D mask
        and falls back to the slower unfused math for a 3D one.
        """
        bias = self.rel_pos(num_frames).to(dtype)
        if self.causal:
            future = torch.ones(num_frames, num_frames, dtype=torch.bool, device=bias.device).triu(1)
            bias = bias.masked_fill(future, float("-inf"))
        return bias[None]

    def forward(self, x: Tensor, keep: Tensor | None = None, text: Tensor | None = None) -> Tensor:
        """x: (B, C, F, H, W) -> (B, C, F, H, W).

        keep: optional (B,) bool; samples where it is False are returned unchanged (image samples,
        VDM's joint image-video training).
        text: (B, L, D) text tokens, one sequence per clip; required when the layer `uses_text`.
        """
        b, _, f, h, w = x.shape
        if self.uses_text and (text is None or text.ndim != 3 or text.shape[0] != b or text.shape[2] != self.cross_attention_dim):
            got = None if text is None else tuple(text.shape)
            raise ValueError(f"this temporal attention attends to text: pass text (B={b}, L, {self.cross_attention_dim}); got {got}")
        # 1. Norm and q/k/v projection act on channels, so they run frame by frame, in the order
        #    the 2D U-Net's frames are stored: a view for channels-last frames, one transpose otherwise.
        tokens = rearrange(x, "b c f h w -> b f (h w) c")
        normed = self.norm(tokens)
        pos = None  # once per call: the text sub-layer's query adds the same embedding
        if self.frame_positions:  # (1, F, 1, C)
            pos = self.position_embedding(f, normed.dtype, normed.device)[None, :, None]
        if self.pixel_positions:  # (1, F, HW, C)
            place = self.clip_pos(f, h, w, normed.dtype).reshape(1, f, h * w, -1)
            pos = place if pos is None else pos + place
        if pos is not None:
            normed = normed + pos
        out = self.to_out(self._self_attention(normed, h, w, text))  # (B, F, HW, C)
        # 3. Residual: the sum takes x's memory order, so a frames-major x stays frames-major.
        y = x + rearrange(out, "b f (h w) c -> b c f h w", h=h, w=w)
        if self.uses_text:
            y = y + self._attend_text(y, text, pos)
        if keep is not None:
            y = torch.where(keep.view(-1, 1, 1, 1, 1), y, x)
        return y

    def _self_attention(self, normed: Tensor, h: int, w: int, text: Tensor | None) -> Tensor:
        """(B, F, HW, C) normed tokens -> (B, F, HW, C) attention output, before the output projection."""
        b, f = normed.shape[:2]
        qkv = self.to_qkv(normed)  # (B, F, HW, 3C)
        # 2. Attention over F at each pixel: sequences are strided views into qkv (no copy for B = 1).
        q, k, v = rearrange(qkv, "b f n (three heads d) -> three (b n) heads f d", three=3, heads=self.heads)
        out = scaled_dot_product_attention(q, k, v, attn_mask=self.attention_bias(f, q.dtype))  # (B*HW, heads, F, d)
        return rearrange(out, "(b n) heads f d -> b f n (heads d)", b=b)

    def position_embedding(self, num_frames: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """(F, C): the learned projection of sin/cos(2^k pi t), k < FRAME_POS_FREQS, t = f / (F - 1)."""
        t = torch.arange(num_frames, device=device, dtype=torch.float32) / max(num_frames - 1, 1)  # (F,)
        angles = t[:, None] * (math.pi * 2.0 ** torch.arange(FRAME_POS_FREQS, device=device, dtype=torch.float32))
        feats = torch.cat([angles.sin(), angles.cos()], dim=-1)  # (F, 2K)
        return self.frame_pos(feats.to(self.frame_pos.weight.dtype)).to(dtype)

    def _attend_text(self, y: Tensor, text: Tensor | None, pos: Tensor | None = None) -> Tensor:
        """Cross-attention of every (frame, pixel) of y (B, C, F, H, W) to text (B, L, D) -> (B, C, F, H, W);
        pos: the position embedding (1, F, 1 or HW, C) added to the query's normed tokens, if any."""
        b, c, f, h, w = y.shape
        normed = self.norm_text(rearrange(y, "b c f h w -> b f (h w) c"))  # (B, F, HW, C)
        if pos is not None:
            normed = normed + pos
        q = self.to_q_text(rearrange(normed, "b f n c -> b (f n) c"))  # (B, FHW, C)
        k, v = self.to_kv_text(text.to(q.dtype)).chunk(2, dim=-1)  # (B, L, C) each
        q, k, v = (rearrange(t, "b n (heads d) -> b heads n d", heads=self.heads) for t in (q, k, v))
        out = scaled_dot_product_attention(q, k, v)  # (B, heads, FHW, d)
        out = self.to_out_text(rearrange(out, "b heads n d -> b n (heads d)"))  # (B, FHW, C)
        return rearrange(out, "b (f h w) c -> b c f h w", f=f, h=h, w=w)
