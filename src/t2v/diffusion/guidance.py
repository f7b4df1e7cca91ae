"""Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance").

The paper's eq. 6 mixes the conditional and unconditional predictions of one network,
    eps~ = (1 + w) eps(z, c) - w eps(z),
written here with diffusers' guidance scale g = 1 + w as
    eps~ = eps(z) + g (eps(z, c) - eps(z)):
g = 1 is the conditional model, g = 0 the unconditional one, g > 1 pushes towards the prompt.
The same linear mix is applied to whatever the network predicts (epsilon, v or x0), as diffusers does.

Skip guidance (Spatiotemporal Skip Guidance, Hyung et al. 2025, arXiv 2411.18664; the mix of diffusers'
`SkipLayerGuidance`) adds a third prediction, the conditional one of a weaker copy of the network that
skips some layers, and pushes away from it:
    eps~ = eps(z) + g (eps(z, c) - eps(z)) + s (eps(z, c) - eps_skip(z, c)).
For a video model whose weak copy skips every temporal layer (the image model frame by frame), the
s-term amplifies exactly what the temporal layers add: one coherent object and its motion.
Written here because diffusers' guider needs its modular pipelines and hooks on named transformer
blocks, while our weak copy is the inflated U-Net's own `image_only` switch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from t2v.diffusion.denoiser import ModelFn, predict


def classifier_free_guidance(pred_uncond: Tensor, pred_cond: Tensor, guidance_scale: float) -> Tensor:
    """eps(z) + g (eps(z, c) - eps(z)) (Ho & Salimans 2022 eq. 6 with g = 1 + w); shapes (B, ...)."""
    return pred_uncond + guidance_scale * (pred_cond - pred_uncond)


def skip_guidance(pred_uncond: Tensor, pred_cond: Tensor, pred_skip: Tensor, guidance_scale: float,
                  skip_scale: float) -> Tensor:
    """eps(z) + g (eps(z, c) - eps(z)) + s (eps(z, c) - eps_skip(z, c)) (STG's mix); shapes (B, ...)."""
    return classifier_free_guidance(pred_uncond, pred_cond, guidance_scale) + skip_scale * (pred_cond - pred_skip)


def stack_conditions(uncond: Mapping[str, Any], cond: Mapping[str, Any]) -> dict[str, Any]:
    """One conditioning for the batch [uncond rows; cond rows]: tensors are concatenated on dim 0
    ((B, ...) + (B, ...) -> (2B, ...)); other values (flags, None) must be equal and pass through."""
    if set(uncond) != set(cond):
        raise ValueError(f"cond and uncond need the same keys, got {sorted(cond)} and {sorted(uncond)}")
    both: dict[str, Any] = {}
    for key, c in cond.items():
        u = uncond[key]
        if isinstance(c, Tensor):
            both[key] = torch.cat([u, c], dim=0)  # (2B, ...)
        elif c == u:
            both[key] = c
        else:
            raise ValueError(f"non-tensor condition {key!r} differs between cond and uncond: {c!r} vs {u!r}")
    return both


def guided_prediction(
    model_fn: ModelFn,
    x: Tensor,
    t: Tensor | int | float,
    cond: Mapping[str, Any],
    uncond: Mapping[str, Any] | None,
    guidance_scale: float,
    skip_fn: ModelFn | None = None,
    skip_scale: float = 0.0,
) -> Tensor:
    """The guided prediction at x (B, ...), t: one batched forward of 2B rows for both branches.

    With no `uncond` or g = 1 only the conditional branch runs (the mix equals it exactly).
    With `skip_fn` (the weak copy of the network) and `skip_scale` s != 0, one more forward of B rows
    gives eps_skip(z, c) and the mix is `skip_guidance`'s.
    """
    skip = skip_fn is not None and skip_scale != 0.0
    if uncond is None or guidance_scale == 1.0:
        pred_cond = predict(model_fn, x, t, cond)
        if not skip:
            return pred_cond
        pred_uncond, guidance_scale = pred_cond, 1.0  # g = 1: u drops out of the mix exactly
    else:
        t = torch.as_tensor(t, device=x.device)
        t2 = torch.cat([t, t]) if t.ndim == 1 else t  # (2B,) or a scalar
        pred = predict(model_fn, torch.cat([x, x]), t2, stack_conditions(uncond, cond))  # (2B, ...)
        pred_uncond, pred_cond = pred.chunk(2)  # (B, ...) each
        if not skip:
            return classifier_free_guidance(pred_uncond, pred_cond, guidance_scale)
    return skip_guidance(pred_uncond, pred_cond, predict(skip_fn, x, t, cond), guidance_scale, skip_scale)
