"""The one contract between diffusion code and networks: a denoiser callable.

`model_fn(noisy, t, **cond) -> prediction`: noisy (B, C, F, H, W) (or any (B, ...) shape), t (B,) the
scheduler's timesteps (int64 for DDPM/DDIM, float for Euler), cond the keyword conditioning the network
takes (e.g. `encoder_hidden_states` (B, L, D)). The prediction has the shape of `noisy` and means
whatever the noise schedule's `prediction_type` says (epsilon, v_prediction or sample). The diffusion
code knows nothing about layers; a diffusers U-Net is wrapped as
`lambda x, t, **c: unet(x, t, **c).sample` (or passed as is: `.sample` is unwrapped here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import Tensor

from t2v.errors import T2VError


class ModelFn(Protocol):
    def __call__(self, noisy: Tensor, t: Tensor, **cond: Any) -> Any: ...


def predict(model_fn: ModelFn, x: Tensor, t: Tensor | int | float, cond: Mapping[str, Any] | None) -> Tensor:
    """Run `model_fn` on x (B, ...) at timestep t (scalar or (B,)) -> prediction with x's shape."""
    t = torch.as_tensor(t, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])  # (B,)
    out = model_fn(x, t, **(cond or {}))
    if not isinstance(out, Tensor):  # diffusers model outputs (`.sample`) or return_dict=False tuples
        out = out.sample if hasattr(out, "sample") else out[0]
    if out.shape != x.shape:
        raise T2VError(
            f"the model predicted shape {tuple(out.shape)} for input {tuple(x.shape)}; "
            "use a model whose out_channels equal its in_channels"
        )
    return out
