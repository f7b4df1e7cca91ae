"""DDIM inversion (Song et al. 2021 sec. 4.3; used for editing by Tune-A-Video, Wu et al. 2023).

DDIM with eta = 0 is a discretised ODE, so it can be run backwards: clean latents x_0 -> x_T. Editing
samples a new prompt from the inverted x_T, which keeps the source video's layout and motion.
Tune-A-Video inverts with the empty prompt and no guidance; the caller passes that conditioning.

The inverse step is diffusers' `DDIMInverseScheduler`: at timestep t it moves x from the noise level
of t - T//n (the level the forward DDIM step at t lands on) up to that of t, with the network evaluated
at (x, t), exactly mirroring the DDIM sampling step at t. Its own `set_timesteps` supports only
"leading"/"trailing" spacing, so the timesteps are taken from the DDIM sampler built from the same
config and reversed: for every spacing the i-th inverse step is then the mirror of the (n-1-i)-th
sampling step (same pair of noise levels), which is what makes invert-then-sample round-trip.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, overload

import torch
from diffusers import DDIMInverseScheduler
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from t2v.diffusion.denoiser import ModelFn, predict
from t2v.diffusion.schedulers import ConfigSource, make_scheduler
from t2v.errors import T2VError

_META_KEY = "t2v_inversion"
_TENSOR_KEY = "latents"


def inverse_scheduler(
    config_or_scheduler: ConfigSource, num_inference_steps: int, device: torch.device | str | None = None
) -> DDIMInverseScheduler:
    """A `DDIMInverseScheduler` whose steps mirror those of DDIM sampling with the same config."""
    ddim = make_scheduler("ddim", config_or_scheduler)
    n_train = ddim.config.num_train_timesteps
    if not 1 <= num_inference_steps <= n_train:
        raise T2VError(
            f"inversion steps must be between 1 and the model's {n_train} training steps, got {num_inference_steps}"
        )
    ddim.set_timesteps(num_inference_steps, device=device)
    spacing = ddim.config.timestep_spacing
    accepted = inspect.signature(DDIMInverseScheduler.__init__).parameters  # drop other samplers' keys
    config = {k: v for k, v in ddim.config.items() if k in accepted}
    config["timestep_spacing"] = spacing if spacing in ("leading", "trailing") else "leading"
    inverse = DDIMInverseScheduler.from_config(config)
    inverse.set_timesteps(num_inference_steps, device=device)
    inverse.timesteps = ddim.timesteps.flip(0)  # ascending: the sampler's steps, last one first
    # The first inverse step starts where DDIM sampling ends: both use set_alpha_to_one of one config.
    if not torch.equal(inverse.initial_alpha_cumprod, ddim.final_alpha_cumprod):
        raise RuntimeError("DDIMInverseScheduler and DDIMScheduler disagree on the clean noise level")
    return inverse


@overload
def ddim_invert(
    model_fn: ModelFn, scheduler: ConfigSource, latents: Tensor, *, cond: Mapping[str, Any],
    num_inference_steps: int, return_intermediates: Literal[False] = ..., progress: bool = ...,
) -> Tensor: ...
@overload
def ddim_invert(
    model_fn: ModelFn, scheduler: ConfigSource, latents: Tensor, *, cond: Mapping[str, Any],
    num_inference_steps: int, return_intermediates: Literal[True], progress: bool = ...,
) -> tuple[Tensor, list[Tensor]]: ...


@torch.no_grad()
def ddim_invert(
    model_fn: ModelFn,
    scheduler: ConfigSource,
    latents: Tensor,
    *,
    cond: Mapping[str, Any],
    num_inference_steps: int,
    return_intermediates: bool = False,
    progress: bool = True,
) -> Tensor | tuple[Tensor, list[Tensor]]:
    """Invert clean latents (B, C, F, H, W) to DDIM noise x_T (B, C, F, H, W); no guidance.

    `scheduler` is the model's noise schedule (a scheduler or config; DDIM is built from it), `cond`
    the conditioning (Tune-A-Video: the empty prompt's embedding). With `return_intermediates`, also
    the trajectory [x_0, x_t1, ..., x_T] (n + 1 tensors). Sample back with
    `sample(..., scheduler=make_scheduler("ddim", same config), latents=x_T)` and the same steps.
    """
    inverse = inverse_scheduler(scheduler, num_inference_steps, device=latents.device)
    x = latents
    trajectory = [x]
    for t in tqdm(inverse.timesteps, desc="DDIM inversion", disable=not progress, leave=False):
        # 1. The network at the current (less noisy) latent, labelled with the target timestep t.
        pred = predict(model_fn, x, t, cond)
        # 2. Song et al. 2021 eq. 12 with eta = 0, from abar_{t - T/n} up to abar_t.
        x = inverse.step(pred, int(t), x).prev_sample
        if return_intermediates:
            trajectory.append(x)
    return (x, trajectory) if return_intermediates else x


def save_inversion(path: str | Path, latents: Tensor, meta: Mapping[str, Any]) -> Path:
    """Cache inverted latents (B, C, F, H, W) with what they depend on (steps, clip, prompt, model...)
    as safetensors at `path`; written to a temporary file and renamed, so a crash leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(
        {_TENSOR_KEY: latents.detach().contiguous().cpu()},
        str(tmp),
        metadata={_META_KEY: json.dumps(dict(meta), sort_keys=True)},
    )
    os.replace(tmp, path)
    return path


def load_inversion(path: str | Path, expected_meta: Mapping[str, Any]) -> Tensor:
    """Read latents cached by `save_inversion`; refuse a cache made with other settings.

    Raises T2VError when the file is missing or unreadable, or its meta differs from `expected_meta`
    (naming the keys that differ).
    """
    path = Path(path)
    if not path.is_file():
        raise T2VError(f"no inversion cache at {path}; run the inversion first")
    try:
        with safe_open(str(path), framework="pt") as f:
            stored = json.loads((f.metadata() or {})[_META_KEY])
            latents = f.get_tensor(_TENSOR_KEY)
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as exc:
        raise T2VError(f"the inversion cache {path} is unreadable ({exc}); delete it to recompute") from exc
    expected = json.loads(json.dumps(dict(expected_meta), sort_keys=True))  # same JSON normalisation
    differ = sorted(k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k))
    if differ:
        detail = ", ".join(f"{k}: cached {stored.get(k)!r} vs now {expected.get(k)!r}" for k in differ)
        raise T2VError(f"the inversion cache {path} was made with other settings ({detail}); delete it to recompute")
    return latents
