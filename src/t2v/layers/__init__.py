"""Temporal building blocks that turn a 2D (per-frame) network into a video network.

Every layer takes and returns video tensors (B, C, F, H, W) and starts as the identity:
- `TemporalConv`: 1D conv over frames, Make-A-Video's pseudo-3D conv (dirac init);
- `TemporalAttention`: attention over frames at every pixel, VDM (relative positions, any length);
- `SpaceTimeAttention`: attention over all frames and pixels (3D relative bias, text-gated heads);
- `SparseCausalAttnProcessor`: Tune-A-Video's ST-Attn as a diffusers attention processor;
- `ClipTextAttnProcessor`: text cross-attention with keys/values once per clip, not per frame;
- `AlphaMerge`: Video LDM's `alpha * spatial + (1 - alpha) * temporal`;
- `TemporalResBlock`: Video LDM's 3D-conv residual block (last conv zero);
- `ClipCondition`: timestep embedding + attention-pooled text, the temporal resblocks' condition;
- `ClipPositions`: a learned embedding of each token's (frame, row, column), zero at init.
"""

from t2v.layers.clip_condition import ClipCondition
from t2v.layers.clip_text_attention import ClipTextAttnProcessor
from t2v.layers.merge import AlphaMerge
from t2v.layers.positions import ClipPositions
from t2v.layers.resblock3d import TemporalResBlock
from t2v.layers.space_time_attention import SpaceTimeAttention
from t2v.layers.sparse_causal import SparseCausalAttnProcessor, gather_sparse_causal
from t2v.layers.temporal_attention import RelativePositionBias, TemporalAttention, relative_position_buckets
from t2v.layers.temporal_conv import TemporalConv, conv_over_frames

__all__ = [
    "AlphaMerge",
    "ClipCondition",
    "ClipPositions",
    "ClipTextAttnProcessor",
    "RelativePositionBias",
    "SpaceTimeAttention",
    "SparseCausalAttnProcessor",
    "TemporalAttention",
    "TemporalConv",
    "TemporalResBlock",
    "conv_over_frames",
    "gather_sparse_causal",
    "relative_position_buckets",
]
