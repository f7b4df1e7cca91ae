"""Pick a diffusers sampler by name for a model's noise schedule. No scheduler is written here.

A model's `scheduler/scheduler_config.json` fixes the noise schedule it was trained with (betas,
number of training steps, prediction type, timestep spacing); the sampler is a free choice on top:
  ddim   DDIMScheduler (Song et al. 2021), deterministic with eta = 0
  dpm++  DPMSolverMultistepScheduler, algorithm dpmsolver++ (Lu et al. 2022), 2nd order
  euler  EulerDiscreteScheduler (Karras et al. 2022's Euler step on the probability-flow ODE)
  ddpm   DDPMScheduler (Ho et al. 2020), ancestral sampling
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
)
from diffusers.configuration_utils import ConfigMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin

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
    "euler": (EulerDiscreteScheduler, {}),
    "ddpm": (DDPMScheduler, {}),
}
_ALIASES = {"dpm-solver++": "dpm++", "dpmsolver++": "dpm++", "dpm": "dpm++"}

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
    """A fresh diffusers sampler `name` (ddim, dpm++, euler, ddpm) on the given noise schedule.

    `overrides` replace config entries (e.g. prediction_type="v_prediction"). Unknown keys of the
    source config (another scheduler's settings) are ignored by diffusers' `from_config`.
    """
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in SCHEDULERS:
        raise T2VError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    cls, fixed = SCHEDULERS[key]
    config = scheduler_config(config_or_scheduler)
    return cls.from_config(config, **{**fixed, **overrides})
