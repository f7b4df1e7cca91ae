"""Self-attention over all frames and pixels of a clip, with a 3D relative position bias and text-gated heads.

VDM's factorized temporal attention (`TemporalAttention`) attends over frames at one pixel, so it
cannot follow an object that moves across pixels: following it takes a 3D conv stack or many layers.
Here every (frame, pixel) token attends to every other token of the clip, F*H*W tokens, with a
learned bias per head for each offset (df, dy, dx) between query and key (the 3D form of the
relative position bias of Swin, Liu et al. 2021, and of the space-time attention of video
transformers, e.g. Arnab et al. 2021, ViViT's unfactorized model). A head whose bias favours keys
at (df, dy, dx) = (k, 0, +v k) reads the clip along a rightward path; each head's output is then
scaled by a gate computed from the pooled prompt (1 + a zero-initialised projection), so the prompt
chooses among paths multiplicatively instead of only adding a bias. Not in the four papers: a
recipe option for small latent grids (the cost is quadratic in F*H*W); written here because
diffusers' attention blocks have no relative 3D bias or per-head gates.

It subclasses `TemporalAttention` for everything else (norms, projections, optional text
cross-attention and frame positions, zero-initialised output: identity at init).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn.functional import scaled_dot_product_attention

from t2v.errors import T2VError
from t2v.layers.temporal_attention import TemporalAttention

MAX_TOKENS = 8192  # F*H*W above this is refused: the (tokens x tokens) attention would not fit a laptop


class SpaceTimePositionBias(nn.Module):
    """A learned scalar per head and per offset (df, dy, dx) between key and query, clamped to the table."""

    def __init__(self, num_heads: int, max_frame_offset: int = 16, max_offset: int = 8) -> None:
        super().__init__()
        self.max_frame_offset = max_frame_offset
        self.max_offset = max_offset
        self.table = nn.Parameter(torch.empty(num_heads, 2 * max_frame_offset + 1, 2 * max_offset + 1, 2 * max_offset + 1))
        self._index: dict[tuple[int, int, int, torch.device], Tensor] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.table, std=0.02)

    def offset_index(self, f: int, h: int, w: int, device: torch.device) -> Tensor:
        """(N, N) flat index into the table for every (query, key) pair, N = F*H*W (cached)."""
        key = (f, h, w, device)
        if key not in self._index:
            ff, yy, xx = torch.meshgrid(torch.arange(f, device=device), torch.arange(h, device=device),
                                        torch.arange(w, device=device), indexing="ij")
            parts = []
            for coord, limit in ((ff, self.max_frame_offset), (yy, self.max_offset), (xx, self.max_offset)):
                c = coord.reshape(-1)
                parts.append((c[None, :] - c[:, None]).clamp(-limit, limit) + limit)  # key - query
            side = 2 * self.max_offset + 1
            self._index[key] = (parts[0] * side + parts[1]) * side + parts[2]
        return self._index[key]

    def forward(self, num_frames: int, h: int, w: int) -> Tensor:
        """-> (heads, N, N) bias for query token i and key token j, tokens ordered (frame, y, x)."""
        index = self.offset_index(num_frames, h, w, self.table.device)
        return self.table.reshape(self.table.shape[0], -1)[:, index]


class SpaceTimeAttention(TemporalAttention):
    """Residual self-attention over the F*H*W tokens of each clip: (B, C, F, H, W) -> same shape.

    max_frame_offset / max_offset: offsets beyond these share the last bias entry (clamped), so the
    layer runs for any clip length and grid. gate: per-head gates from the pooled text (needs
    `cross_attention_dim`).
    """

    def __init__(self, channels: int, head_dim: int = 64, causal: bool = False, cross_attention_dim: int | None = None,
                 frame_positions: bool = False, max_frame_offset: int = 16, max_offset: int = 8,
                 pixel_positions: bool = False) -> None:
        self.max_frame_offset = max_frame_offset  # read by _position_bias during the parent's __init__
        self.max_offset = max_offset
        super().__init__(channels, head_dim, causal, cross_attention_dim=cross_attention_dim, frame_positions=frame_positions,
                         pixel_positions=pixel_positions)
        if cross_attention_dim is not None:
            self.gate_query = nn.Parameter(torch.empty(cross_attention_dim))
            self.gate = nn.Linear(cross_attention_dim, self.heads)
            self.reset_gates()

    def _position_bias(self, heads: int, num_buckets: int, max_distance: int) -> nn.Module:
        return SpaceTimePositionBias(heads, self.max_frame_offset, self.max_offset)

    def reset_parameters(self) -> None:
        """Identity at init (zero output projections), gates 1."""
        super().reset_parameters()
        if hasattr(self, "gate"):  # the parent's __init__ resets before the gates exist
            self.reset_gates()

    def reset_gates(self) -> None:
        nn.init.zeros_(self.gate_query)  # mean of the tokens at init
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)  # gates 1 at init

    def attention_bias(self, num_frames: int, dtype: torch.dtype, h: int = 1, w: int = 1) -> Tensor:
        """(1, heads, N, N) additive logits: the 3D relative bias, and -inf on later frames if causal."""
        bias = self.rel_pos(num_frames, h, w).to(dtype)  # (heads, N, N)
        if self.causal:
            frame = torch.arange(num_frames, device=bias.device).repeat_interleave(h * w)
            bias = bias.masked_fill(frame[None, :] > frame[:, None], float("-inf"))
        return bias[None]

    def head_gates(self, text: Tensor) -> Tensor:
        """(B, L, D) text -> (B, heads) gates, 1 + W pool(text), pool = softmax(text . q / sqrt(D)) weights."""
        text = text.to(self.gate.weight.dtype)
        weights = (text @ self.gate_query / math.sqrt(text.shape[-1])).softmax(dim=1)  # (B, L)
        return 1.0 + self.gate((weights[..., None] * text).sum(dim=1))

    def forward(self, x: Tensor, keep: Tensor | None = None, text: Tensor | None = None) -> Tensor:
        """x: (B, C, F, H, W) -> (B, C, F, H, W); keep and text as for `TemporalAttention`."""
        _, _, f, h, w = x.shape
        if f * h * w > MAX_TOKENS:
            raise T2VError(
                f"space-time attention over {f}x{h}x{w} = {f * h * w} tokens exceeds {MAX_TOKENS}; "
                "use fewer frames or a smaller grid, or turn off the recipe option temporal_space_time_attention"
            )
        return super().forward(x, keep, text)

    def _self_attention(self, normed: Tensor, h: int, w: int, text: Tensor | None) -> Tensor:
        """(B, F, HW, C) -> (B, F, HW, C): every token attends to all F*H*W tokens of its clip, heads gated by text."""
        f = normed.shape[1]
        q, k, v = rearrange(self.to_qkv(normed), "b f n (three heads d) -> three b heads (f n) d", three=3, heads=self.heads)
        out = scaled_dot_product_attention(q, k, v, attn_mask=self.attention_bias(f, q.dtype, h, w))  # (B, heads, N, d)
        if self.uses_text:
            out = out * self.head_gates(text).to(out.dtype)[:, :, None, None]
        return rearrange(out, "b heads (f n) d -> b f n (heads d)", f=f)
