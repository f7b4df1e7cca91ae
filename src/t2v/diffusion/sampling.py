"""The sampling loop: noise -> data with any diffusers scheduler and classifier-free guidance.

One loop serves DDIM, DPM-Solver++, Euler and DDPM: the scheduler owns the update rule, the loop only
(1) scales the initial noise by `init_noise_sigma` (1 for variance-preserving samplers, sigma_max for
Euler's variance-exploding parameterisation), (2) lets the scheduler rescale the network input
(`scale_model_input`), (3) asks the network for a guided prediction and (4) takes the scheduler's step,
passing the generator so that stochastic samplers (DDPM, DDIM with eta > 0) are seeded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor
from tqdm.auto import tqdm

from t2v.diffusion.denoiser import ModelFn
from t2v.diffusion.guidance import guided_prediction
from t2v.diffusion.schedulers import set_timesteps
from t2v.errors import T2VError


@torch.no_grad()
def sample(
    model_fn: ModelFn,
    scheduler: SchedulerMixin,
    *,
    shape: Sequence[int],
    cond: Mapping[str, Any],
    uncond: Mapping[str, Any] | None = None,
    guidance_scale: float = 1.0,
    num_inference_steps: int = 50,
    generator: torch.Generator | None = None,
    latents: Tensor | None = None,
    progress: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    step_kwargs: Mapping[str, Any] | None = None,
    timestep_shift: float = 1.0,
    high_noise_guidance: tuple[float, float] | None = None,
    skip_fn: ModelFn | None = None,
    skip_guidance: tuple[float, float] | None = None,
) -> Tensor:
    """Draw samples of `shape` (B, C, F, H, W) -> Tensor (B, C, F, H, W).

    `latents` replaces the initial Gaussian noise (e.g. DDIM-inverted latents for editing); it is
    scaled by `init_noise_sigma` like fresh noise. The same generator state and inputs give
    bit-identical samples. `step_kwargs` go to `scheduler.step` (e.g. {"eta": 0.5} for DDIM).
    The scheduler's state is reset by `set_timesteps`, so one scheduler can be reused.
    `timestep_shift` > 1 moves the sampling timesteps toward noise (`t2v.diffusion.schedulers.set_timesteps`).
    `high_noise_guidance` (scale, t_min): steps at t >= t_min use that guidance scale instead of
    `guidance_scale`, i.e. more (or less) guidance where a video's layout and motion are decided (the
    converse of Kynkaenniemi et al. 2024, who limit guidance to the middle of the noise range).
    `skip_guidance` (scale, t_min) with `skip_fn`, a weaker copy of the network (for a video model, its
    temporal layers skipped): steps at t >= t_min also push away from that copy's conditional
    prediction by `scale` (`t2v.diffusion.guidance.skip_guidance`, STG's mix).
    """
    n_train = scheduler.config.num_train_timesteps
    if not 1 <= num_inference_steps <= n_train:
        raise T2VError(f"steps must be between 1 and the model's {n_train} training steps, got {num_inference_steps}")
    if high_noise_guidance is not None and (len(high_noise_guidance) != 2 or not 0 <= high_noise_guidance[1] < n_train):
        raise T2VError(f"high-noise guidance is (scale, t_min) with t_min in [0, {n_train}); got {high_noise_guidance}")
    if skip_guidance is not None and (len(skip_guidance) != 2 or not 0 <= skip_guidance[1] < n_train or skip_fn is None):
        raise T2VError(f"skip guidance is (scale, t_min) with t_min in [0, {n_train}) and needs the weak model; got {skip_guidance}")
    shape = tuple(shape)
    if latents is not None:
        if tuple(latents.shape) != shape:
            raise T2VError(f"initial latents have shape {tuple(latents.shape)} but the sample shape is {shape}")
        device = device or latents.device
        latents = latents.to(device=device, dtype=dtype)
    else:
        device = device or (generator.device if generator is not None else "cpu")
        latents = randn_tensor(shape, generator=generator, device=torch.device(device), dtype=dtype)

    # 1. The timesteps of this run (also resets multistep solvers' history).
    set_timesteps(scheduler, num_inference_steps, device=device, shift=timestep_shift)
    # 2. x_T: unit noise times the sampler's initial sigma.
    x = latents * scheduler.init_noise_sigma  # (B, C, F, H, W)
    for t in tqdm(scheduler.timesteps, desc="sampling", disable=not progress, leave=False):
        # 3. Network input in the sampler's parameterisation, guided prediction (one batched forward).
        x_in = scheduler.scale_model_input(x, t)
        g = guidance_scale
        if high_noise_guidance is not None and float(t) >= high_noise_guidance[1]:
            g = float(high_noise_guidance[0])
        s = float(skip_guidance[0]) if skip_guidance is not None and float(t) >= skip_guidance[1] else 0.0
        pred = guided_prediction(model_fn, x_in, t, cond, uncond, g, skip_fn=skip_fn, skip_scale=s)
        # 4. One reverse step x_t -> x_{t-1}.
        x = scheduler.step(pred, t, x, generator=generator, **(step_kwargs or {})).prev_sample
    return x
