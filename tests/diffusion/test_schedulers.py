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
    with pytest.raises(T2VError, match=r"unknown scheduler 'pndm'.*ddim, dpm\+\+, euler, ddpm"):
        make_scheduler("pndm")


def test_missing_scheduler_folder(tmp_path):
    with pytest.raises(T2VError, match="scheduler_config.json"):
        make_scheduler("ddim", tmp_path)
