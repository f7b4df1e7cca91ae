"""Pick a diffusers sampler by name for a model's noise schedule. No scheduler is written here.

A model's `scheduler/scheduler_config.json` fixes the noise schedule it was trained with (betas,
number of training steps, prediction type, timestep spacing); the sampler is a free choice on top:
  ddim   DDIMScheduler (Song et al. 2021), deterministic with eta = 0
  dpm++  DPMSolverMultistepScheduler, algorithm dpmsolver++ (Lu et al. 2022), 2nd order
  dpm++sde  the same solver on the reverse SDE (algorithm sde-dpmsolver++): fresh noise at every
         step, drawn from the run's generator, so a seed still fixes the video
  euler  EulerDiscreteScheduler (Karras et al. 2022's Euler step on the probability-flow ODE)
  ddpm   DDPMScheduler (Ho et al. 2020), ancestral sampling
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
)
from diffusers.configuration_utils import ConfigMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor

from t2v.errors import T2VError

# Stable Diffusion v1's training noise schedule (its scheduler_config.json, sampler-independent part).
SD_NOISE_SCHEDULE: Mapping[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}

SCHEDULERS: Mapping[str, tuple[type[SchedulerMixin], Mapping[str, Any]]] = {
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "dpm++sde": (DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++"}),
    "euler": (EulerDiscreteScheduler, {}),
    "ddpm": (DDPMScheduler, {}),
}
_ALIASES = {"dpm-solver++": "dpm++", "dpmsolver++": "dpm++", "dpm": "dpm++",
            "sde-dpmsolver++": "dpm++sde", "dpm++-sde": "dpm++sde"}

ConfigSource = SchedulerMixin | Mapping[str, Any] | str | Path | None


def scheduler_config(source: ConfigSource) -> dict[str, Any]:
    """The noise-schedule config of a scheduler, a config mapping, or a `scheduler/` folder.

    None gives Stable Diffusion v1's schedule (`SD_NOISE_SCHEDULE`).
    """
    if source is None:
        return dict(SD_NOISE_SCHEDULE)
    if isinstance(source, ConfigMixin):
        return dict(source.config)
    if isinstance(source, Mapping):
        return dict(source)
    folder = Path(source)
    if not (folder / "scheduler_config.json").is_file():
        raise T2VError(f"no scheduler_config.json in {folder}; point at the model's scheduler/ folder")
    return dict(DDIMScheduler.load_config(folder))


def make_scheduler(name: str, config_or_scheduler: ConfigSource = None, **overrides: Any) -> SchedulerMixin:
    """A fresh diffusers sampler `name` (ddim, dpm++, dpm++sde, euler, ddpm) on the given noise schedule.

    `overrides` replace config entries (e.g. prediction_type="v_prediction"). Unknown keys of the
    source config (another scheduler's settings) are ignored by diffusers' `from_config`.
    """
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in SCHEDULERS:
        raise T2VError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    cls, fixed = SCHEDULERS[key]
    config = scheduler_config(config_or_scheduler)
    return cls.from_config(config, **{**fixed, **overrides})


def shift_noise_level(u: Tensor, shift: float) -> Tensor:
    """Esser et al. 2024 (SD3), sec. 5.3.2: u' = s u / (1 + (s - 1) u) for u in [0, 1] (1 = pure noise).

    s > 1 moves every noise level toward more noise (u = 0 and 1 stay put); SD3 takes s = sqrt(m / n)
    when a sample has m values instead of n, because more correlated values show the signal through
    more noise. A 16-frame clip is 16 correlated images, so a video model built on an image schedule
    lays out its motion in the top few percent of the schedule's timesteps; the shift spends more of
    training and of sampling there, on the same discrete schedule (the network's t keeps its meaning).
    """
    if not shift > 0:
        raise T2VError(f"the timestep shift must be positive, got {shift}")
    return shift * u / (1 + (shift - 1) * u)


def shifted_timesteps(num_inference_steps: int, num_train_timesteps: int, shift: float) -> list[int]:
    """Sampling timesteps, descending from T - 1: the evenly spaced grid u = 1, 1 - 1/N, ..., 1/N,
    shifted by `shift_noise_level`, then rounded (duplicates dropped)."""
    u = 1 - torch.arange(num_inference_steps, dtype=torch.float64) / num_inference_steps
    t = (shift_noise_level(u, shift) * (num_train_timesteps - 1)).round().long().tolist()
    return sorted(set(t), reverse=True)


def set_timesteps(scheduler: SchedulerMixin, num_inference_steps: int, device: Any = None, shift: float = 1.0) -> None:
    """`scheduler.set_timesteps`, with the timesteps shifted toward noise when shift != 1.

    Takes the diffusers schedulers that accept explicit timesteps (dpm++, dpm++sde, euler, ddpm); DDIM does not.
    """
    if shift == 1.0:
        scheduler.set_timesteps(num_inference_steps, device=device)
        return
    if "timesteps" not in inspect.signature(scheduler.set_timesteps).parameters:
        raise T2VError(f"{type(scheduler).__name__} takes no explicit timesteps, so no timestep shift; "
                       "use --scheduler dpm++ (or dpm++sde, euler, ddpm), or a shift of 1")
    timesteps = shifted_timesteps(num_inference_steps, scheduler.config.num_train_timesteps, shift)
    scheduler.set_timesteps(device=device, timesteps=timesteps)
