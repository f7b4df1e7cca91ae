"""The glue that puts temporal layers into a diffusers 2D U-Net without rewriting its forward.

The 2D U-Net runs on frames folded into the batch, (B*F, C, H, W). Each pretrained module that
gets a temporal partner is wrapped: the wrapper calls the 2D module (`spatial`, per frame), then
unfolds the frames and calls the temporal layer (`temporal`) on (B, C, F, H, W), optionally merged
by Video LDM's alpha (`merge`). The frame count, the image-only switch and fps of the current
forward pass live in a `FrameContext` that the video U-Net binds around its call of the 2D U-Net.

On CPU, the feed-forwards of a wrapped spatial transformer run a few frames at a time (diffusers'
own `set_chunk_feed_forward`, chosen per call by `feed_forward_chunk`): the same numbers, bit for
bit, with the GEGLU's wide intermediates small enough to stay in cache.

Gradient checkpointing happens here (diffusers' own is left off): a `VideoBlock` checkpoints its
2D module and temporal layer together, and hands the frame information to the recomputation as an
argument, so the backward pass never depends on what the context holds at that time.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from t2v.layers import AlphaMerge, TemporalConv


@dataclass(frozen=True)
class Frames:
    """What every temporal layer needs to know about the current forward pass.

    num_frames: F, frames per clip (the 2D U-Net sees B*F images).
    skip: True when every temporal layer is skipped (`image_only=True`).
    keep: optional (B,) bool: clips that run the temporal layers (False = image sample); None = all.
    fps: optional (B,) frame rates (Make-A-Video conditioning).
    text: optional (B, L, D) text tokens, one sequence per clip (temporal layers that attend to text).
    emb: optional (B, E) per-clip conditioning vector (conditioned temporal resblocks).
    """

    num_frames: int
    skip: bool = False
    keep: Optional[Tensor] = None
    fps: Optional[Tensor] = None
    text: Optional[Tensor] = None
    emb: Optional[Tensor] = None


class FrameContext:
    """The `Frames` of the forward pass in progress, shared by all wrappers of one video U-Net.

    One stack per thread, so that a backward pass recomputing checkpointed blocks on autograd's
    device thread, or two threads sharing a model, never see each other's frames.
    """

    def __init__(self) -> None:
        self._stacks: dict[int, list[Frames]] = {}

    @property
    def current(self) -> Frames:
        stack = self._stacks.get(threading.get_ident())
        if not stack:
            raise RuntimeError("a temporal layer ran outside VideoUNet.forward (no frame count is bound)")
        return stack[-1]

    @contextmanager
    def bind(self, frames: Frames) -> Iterator[Frames]:
        key = threading.get_ident()
        stack = self._stacks.setdefault(key, [])
        stack.append(frames)
        try:
            yield frames
        finally:
            stack.pop()
            if not stack:
                self._stacks.pop(key, None)

    def attention_frames(self) -> tuple[int, Optional[Tensor]]:
        """(frames per clip, keep) for sparse-causal attention; 1 frame per clip when image-only."""
        fr = self.current
        return (1, None) if fr.skip else (fr.num_frames, fr.keep)


def to_video(x: Tensor, num_frames: int) -> Tensor:
    """(B*F, C, H, W) -> (B, C, F, H, W), a view."""
    return rearrange(x, "(b f) c h w -> b c f h w", f=num_frames)


def to_frames(x: Tensor) -> Tensor:
    """(B, C, F, H, W) -> (B*F, C, H, W), contiguous."""
    return rearrange(x, "b c f h w -> (b f) c h w")


# Rows (tokens) per feed-forward chunk on CPU: about 2 MiB of GEGLU projection output per chunk
# (rows x 8C x 4 bytes), which stays in a core's cache. Measured on the 2-core CPU of BENCHMARKS.md:
# SD-layout GEGLU feed-forward of 16 frames, 64 channels at 32 x 32: 46-52 ms whole, 22-24 ms a frame
# at a time; 128 channels at 16 x 16: 22-23 ms whole, 20-21 ms by 1-2 frames; 256 channels at 8 x 8: no change.
FF_CHUNK_BYTES = 2**21


def feed_forward_chunk(batch: int, channels: int, tokens: int, device: torch.device) -> Optional[int]:
    """Images per feed-forward chunk for `batch` images of `tokens` tokens x `channels` (None: whole).

    CPU only: the GEGLU projection writes 8 x `channels` floats per token (its 2 x 4C output, then
    the gated half), a whole batch of them is far larger than cache, and the element-wise GELU and
    product then run at memory speed. Rows of a matrix product do not depend on each other, so the
    chunked feed-forward equals the whole one exactly. On GPUs the whole batch is faster (None).
    """
    if device.type != "cpu":
        return None
    rows = max(1, FF_CHUNK_BYTES // (32 * channels))  # rows x 8C floats x 4 bytes
    per_chunk = max(1, rows // tokens)
    if per_chunk >= batch:
        return None
    while batch % per_chunk:  # diffusers' chunking needs a divisor of the batch
        per_chunk -= 1
    return per_chunk


class PseudoConv3d(nn.Module):
    """Make-A-Video pseudo-3D conv: the pretrained 2D conv on every frame, then a 1D conv over frames."""

    def __init__(self, spatial: nn.Conv2d, context: FrameContext, kernel_size: int = 3) -> None:
        super().__init__()
        self.spatial = spatial
        self.temporal = TemporalConv(spatial.out_channels, kernel_size)
        self._context = context

    def forward(self, x: Tensor) -> Tensor:
        """x: (B*F, C_in, H, W) -> (B*F, C_out, H', W')."""
        h = self.spatial(x)
        fr = self._context.current
        if fr.skip:
            return h
        return to_frames(self.temporal(to_video(h, fr.num_frames), fr.keep))


class VideoBlock(nn.Module):
    """A pretrained 2D block (`ResnetBlock2D` or `Transformer2DModel`) on every frame, then a temporal layer.

    Called exactly like the 2D block it wraps. With `merge` (Video LDM) the result is
    `alpha * spatial + (1 - alpha) * temporal(spatial)`; without it, `temporal(spatial)`.
    """

    def __init__(self, spatial: nn.Module, temporal: nn.Module | None, merge: AlphaMerge | None,
                 context: FrameContext) -> None:
        super().__init__()
        self.spatial = spatial
        self.temporal = temporal
        self.merge = merge
        self._context = context
        self.gradient_checkpointing = False
        # The spatial transformer's blocks whose feed-forward is chunked on CPU (none for a resnet).
        self._feed_forwards = [m for m in spatial.modules() if isinstance(m, BasicTransformerBlock)]

    def forward(self, hidden_states: Tensor, *args: Any, **kwargs: Any) -> Any:
        frames = self._context.current
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(self._run, frames, hidden_states, *args, use_reentrant=False, **kwargs)
        return self._run(frames, hidden_states, *args, **kwargs)

    def _run(self, frames: Frames, hidden_states: Tensor, *args: Any, **kwargs: Any) -> Any:
        if self._feed_forwards and hidden_states.ndim == 4:  # (B*F, C, H, W)
            n, c, height, width = hidden_states.shape
            chunk = feed_forward_chunk(n, c, height * width, hidden_states.device)
            for block in self._feed_forwards:
                block.set_chunk_feed_forward(chunk, dim=0)  # exact: rows are independent
        # Rebind: under checkpointing this also runs during backward, with the forward's frames.
        with self._context.bind(frames):
            out = self.spatial(hidden_states, *args, **kwargs)
        h = out[0] if isinstance(out, tuple) else getattr(out, "sample", out)  # (B*F, C, H, W)
        if self.temporal is None or frames.skip:
            return out
        z = to_video(h, frames.num_frames)  # (B, C, F, H, W)
        extra = {"text": frames.text} if getattr(self.temporal, "uses_text", False) else {}
        if getattr(self.temporal, "uses_emb", False):
            extra["emb"] = frames.emb
        if self.merge is None:
            z = self.temporal(z, frames.keep, **extra)
        else:
            z = self.merge(z, self.temporal(z, **extra), frames.keep)
        h = to_frames(z)  # (B*F, C, H, W)
        if isinstance(out, tuple):
            return (h, *out[1:])
        if isinstance(out, Tensor):
            return h
        return type(out)(sample=h)


def scalar_embedding(spatial: TimestepEmbedding, flip_sin_to_cos: bool, freq_shift: float) -> tuple[Timesteps, TimestepEmbedding]:
    """(sinusoid, MLP) that embed a scalar input (fps, a noise level) like the timestep of `spatial`,
    the MLP's last layer zero: added to the timestep embedding, it changes nothing at init."""
    in_dim, out_dim = spatial.linear_1.in_features, spatial.linear_2.out_features
    mlp = TimestepEmbedding(in_dim, out_dim)
    nn.init.zeros_(mlp.linear_2.weight)
    nn.init.zeros_(mlp.linear_2.bias)
    return Timesteps(in_dim, flip_sin_to_cos, freq_shift), mlp


class FpsTimeEmbedding(nn.Module):
    """Make-A-Video frame-rate conditioning: timestep embedding + MLP(sinusoid(fps)).

    Singer et al. 2022, Sec. 3.3: the frame rate is an extra conditioning input of the video
    decoder. Here it is embedded like the timestep (diffusers `Timesteps` + `TimestepEmbedding`)
    and added to the timestep embedding; the MLP's last layer is zero at init (identity).
    """

    def __init__(self, spatial: TimestepEmbedding, flip_sin_to_cos: bool, freq_shift: float,
                 context: FrameContext) -> None:
        super().__init__()
        self.spatial = spatial
        self.fps_proj, self.fps = scalar_embedding(spatial, flip_sin_to_cos, freq_shift)
        self._context = context

    def forward(self, sample: Tensor, condition: Tensor | None = None) -> Tensor:
        """sample: (B*F, D_in) sinusoidal timestep features -> (B*F, D) embedding."""
        emb = self.spatial(sample, condition)
        fr = self._context.current
        if fr.skip or fr.fps is None:
            return emb
        fps = fr.fps.repeat_interleave(fr.num_frames)  # (B*F,)
        out = emb + self.fps(self.fps_proj(fps).to(emb.dtype))
        if fr.keep is not None:
            out = torch.where(fr.keep.repeat_interleave(fr.num_frames)[:, None], out, emb)
        return out
