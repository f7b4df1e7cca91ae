"""Text cross-attention of a video's frames, with keys and values computed once per clip.

An inflated U-Net runs its 2D cross-attention on frames folded into the batch, so every frame gets
a copy of its clip's text embedding (B*F, L, D) and a diffusers processor projects that same text to
keys and values F times. All frames of a clip attend to one text, so this processor projects the
text of each clip once (B, L, D) and shares the keys/values across the clip's frames: the same
numbers, F times fewer text projections (16x for a 16-frame clip). The processor owns only the
algorithm; the diffusers `Attention` keeps the weights (`attn2.set_processor(ClipTextAttnProcessor(...))`).
"""

from __future__ import annotations

from typing import Callable, Optional

from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from einops import rearrange, repeat
from torch import Tensor
from torch.nn.functional import scaled_dot_product_attention

from t2v.layers.sparse_causal import attention_output

# Returns (frames per clip, keep) at call time, as for SparseCausalAttnProcessor; keep is unused here.
FrameSource = Callable[[], tuple[int, Optional[Tensor]]]


class ClipTextAttnProcessor:
    """Cross-attention (`attn2` of a transformer block) for B clips of F frames sharing a text each.

    `frames()` returns the clip length at call time. `encoder_hidden_states` is (B*F, L, D) with
    each clip's text repeated over its F frames (what the video U-Net passes), so rows 0, F, 2F, ...
    hold the B texts. With one frame per clip (or `image_only`), a mask, or no text, it delegates
    to diffusers' `AttnProcessor2_0`, i.e. exactly the image model.
    """

    def __init__(self, frames: FrameSource) -> None:
        self.frames = frames
        self._plain = AttnProcessor2_0()

    def __call__(self, attn: Attention, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None) -> Tensor:
        """hidden_states: (B*F, N, C) or (B*F, C, H, W) -> same shape."""
        frames, _ = self.frames()
        plain = (
            frames == 1 or encoder_hidden_states is None or attention_mask is not None
            or attn.spatial_norm is not None or attn.group_norm is not None
            or hidden_states.shape[0] % frames or encoder_hidden_states.shape[0] != hidden_states.shape[0]
        )
        if plain:
            return self._plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)

        residual = hidden_states
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            _, _, height, width = hidden_states.shape
            hidden_states = rearrange(hidden_states, "bf c h w -> bf (h w) c")
        # 1. One text per clip: rows 0, F, 2F, ... of the per-frame copies.
        text = encoder_hidden_states[::frames]  # (B, L, D)
        if attn.norm_cross:
            text = attn.norm_encoder_hidden_states(text)

        # 2. Q per frame; K, V once per clip, then shared by the clip's F frames.
        query = rearrange(attn.to_q(hidden_states), "bf n (heads d) -> bf heads n d", heads=attn.heads)
        key, value = (
            repeat(proj(text), "b l (heads d) -> (b f) heads l d", f=frames, heads=attn.heads)  # (B*F, heads, L, d)
            for proj in (attn.to_k, attn.to_v)
        )
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        # 3. softmax(Q K^T / sqrt(d)) V, scaled as diffusers' AttnProcessor2_0 does (SDPA's default).
        out = scaled_dot_product_attention(query, key, value)  # (B*F, heads, N, d)
        out = rearrange(out, "bf heads n d -> bf n (heads d)").to(query.dtype)
        return attention_output(attn, out, residual, (height, width) if input_ndim == 4 else None)
