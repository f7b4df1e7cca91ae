"""make_scheduler: the right diffusers class per name, on the model's noise schedule."""

from __future__ import annotations

import numpy as np
import pytest
from analytic_denoiser import SCHEDULE, alphas_cumprod_reference
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
)

from t2v.diffusion.schedulers import SD_NOISE_SCHEDULE, make_scheduler
from t2v.errors import T2VError

CLASSES = {
    "ddim": DDIMScheduler,
    "dpm++": DPMSolverMultistepScheduler,
    "dpm++sde": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "ddpm": DDPMScheduler,
}


@pytest.mark.parametrize("name", list(CLASSES))
def test_class_and_noise_schedule(name):
    sch = make_scheduler(name, SCHEDULE)
    assert type(sch) is CLASSES[name]
    # The training noise schedule survives the switch of sampler (against abar written in conftest).
    np.testing.assert_allclose(sch.alphas_cumprod.numpy(), alphas_cumprod_reference(SCHEDULE), rtol=1e-5)
    assert sch.config.timestep_spacing == "leading" and sch.config.steps_offset == 1


def test_dpm_is_dpmsolver_plus_plus_and_aliases():
    assert make_scheduler("dpm++").config.algorithm_type == "dpmsolver++"
    assert type(make_scheduler("DPM-Solver++")) is DPMSolverMultistepScheduler
    # Even from a config that asked for the first-order-noise variant, "dpm++" means dpmsolver++.
    cfg = dict(SCHEDULE, algorithm_type="dpmsolver")
    assert make_scheduler("dpm++", cfg).config.algorithm_type == "dpmsolver++"
    assert make_scheduler("dpm++sde", cfg).config.algorithm_type == "sde-dpmsolver++"
    assert make_scheduler("sde-dpmsolver++").config.algorithm_type == "sde-dpmsolver++"


def test_sources_and_overrides(tmp_path):
    # From another scheduler (Stable Diffusion ships PNDM), a saved folder, or nothing (SD v1).
    pndm = PNDMScheduler.from_config(SCHEDULE)
    from_pndm = make_scheduler("euler", pndm)
    np.testing.assert_allclose(from_pndm.alphas_cumprod.numpy(), alphas_cumprod_reference(SCHEDULE), rtol=1e-5)
    pndm.save_pretrained(tmp_path / "scheduler")
    from_folder = make_scheduler("ddim", tmp_path / "scheduler", prediction_type="v_prediction")
    assert from_folder.config.prediction_type == "v_prediction"
    assert from_folder.config.beta_schedule == "scaled_linear"
    default = make_scheduler("ddpm")
    assert {k: default.config[k] for k in SD_NOISE_SCHEDULE if k in default.config} == {
        k: v for k, v in SD_NOISE_SCHEDULE.items() if k in default.config
    }
    assert default.config.beta_start == 0.00085 and default.config.clip_sample is False


def test_unknown_name_lists_the_choices():
    with pytest.raises(T2VError, match=r"unknown scheduler 'pndm'.*ddim, dpm\+\+, dpm\+\+sde, euler, ddpm"):
        make_scheduler("pndm")


def test_missing_scheduler_folder(tmp_path):
    with pytest.raises(T2VError, match="scheduler_config.json"):
        make_scheduler("ddim", tmp_path)


def test_shift_multiplies_the_noise_odds_and_keeps_the_ends():
    """SD3's shift is the map with u' / (1 - u') = s u / (1 - u): the noise-to-signal odds times s."""
    import torch

    from t2v.diffusion.schedulers import shift_noise_level

    u = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    for s in (0.5, 3.0, 4.0):
        shifted = shift_noise_level(u, s)
        torch.testing.assert_close(shifted / (1 - shifted), s * u / (1 - u))
        assert float(shift_noise_level(torch.tensor(0.0), s)) == 0.0 and float(shift_noise_level(torch.tensor(1.0), s)) == 1.0
    with pytest.raises(T2VError, match="shift must be positive"):
        shift_noise_level(u, -1.0)


@pytest.mark.parametrize("name", ["dpm++", "dpm++sde", "euler", "ddpm"])
def test_shifted_sampling_steps(name):
    """Shift 1 leaves the scheduler's own spacing; shift 4 starts at the last training step and puts
    5 of 15 steps above t = 900 (2 on the unshifted grid 999, 932, ...)."""
    from t2v.diffusion.schedulers import set_timesteps, shifted_timesteps

    plain = shifted_timesteps(15, 1000, 1.0)
    assert plain == [round(999 * (1 - i / 15)) for i in range(15)]
    steps = shifted_timesteps(15, 1000, 4.0)
    assert steps[0] == 999 and steps == sorted(steps, reverse=True) and len(steps) == 15
    assert sum(t > 900 for t in steps) == 5 and sum(t > 900 for t in plain) == 2
    sch = make_scheduler(name, SCHEDULE)
    set_timesteps(sch, 15, shift=4.0)
    assert [int(t) for t in sch.timesteps] == steps
    ref = make_scheduler(name, SCHEDULE)
    ref.set_timesteps(15)
    set_timesteps(sch, 15)  # shift 1: exactly the scheduler's own timesteps
    assert [int(t) for t in sch.timesteps] == [int(t) for t in ref.timesteps]


def test_ddim_takes_no_shift():
    from t2v.diffusion.schedulers import set_timesteps

    with pytest.raises(T2VError, match="DDIMScheduler takes no explicit timesteps.*dpm\\+\\+"):
        set_timesteps(make_scheduler("ddim", SCHEDULE), 10, shift=4.0)
