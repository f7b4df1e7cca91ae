"""The sampling loop with every scheduler, against the known data distribution of an exact denoiser.

Data x_0 ~ N(MU, S^2) per element; the denoiser is the exact posterior mean (analytic_denoiser.py), so a
correct loop + scheduler returns samples with mean MU and std S up to the sampler's discretisation
error (first order in the step size for DDIM, Euler and DDPM; second order for DPM-Solver++) and the
Monte Carlo error of 65,536 values (standard error of the mean S/256 = 0.002, of the std 0.3%).
"""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch
from analytic_denoiser import LINEAR, SCHEDULE, GaussianDenoiser, alphas_cumprod_reference

from t2v.diffusion.sampling import sample
from t2v.diffusion.schedulers import make_scheduler
from t2v.errors import T2VError

MU, S = 1.0, 0.5
SHAPE = (16, 4, 4, 16, 16)  # (B, C, F, H, W)
# sampler: (steps, tolerance on |std / S - 1|); measured errors at these steps: ddim -2.9%, euler
# -3.0%, dpm++ -2.3%, dpm++sde +0.4%, ddpm -3.6% (printed by test_moments_match_the_data; pytest -s shows them).
TOLERANCE = {"ddim": (100, 0.05), "euler": (100, 0.05), "dpm++": (25, 0.04), "dpm++sde": (25, 0.04), "ddpm": (200, 0.05)}
MEAN_TOL = 0.02  # 10 standard errors; also covers abar_T > 0 (the start is N(0, I), not N(0.006 MU, I))


def _run(name, steps, prediction_type="epsilon", seed=0, config=LINEAR, **kw):
    model = GaussianDenoiser(alphas_cumprod_reference(config), MU, S, prediction_type)
    sch = make_scheduler(name, config, prediction_type=prediction_type)
    gen = torch.Generator().manual_seed(seed)
    return sample(model, sch, shape=SHAPE, cond={}, num_inference_steps=steps, generator=gen, progress=False, **kw)


@lru_cache(maxsize=None)
def _default_run(name: str, steps: int) -> torch.Tensor:
    return _run(name, steps)


@pytest.mark.parametrize("name", list(TOLERANCE))
def test_moments_match_the_data(name):
    steps, tol = TOLERANCE[name]
    x = _default_run(name, steps)
    mean_err, std_err = x.mean().item() - MU, x.std().item() / S - 1
    print(f"{name} {steps} steps: mean {x.mean().item():.4f} (MU {MU}), std {x.std().item():.4f} (S {S})")
    assert x.shape == SHAPE
    assert abs(mean_err) < MEAN_TOL
    assert abs(std_err) < tol


@pytest.mark.parametrize("name", ["ddim", "euler", "ddpm"])
def test_error_shrinks_with_steps(name):
    # First-order samplers: doubling the steps about halves the std error (0.7 allows noise).
    errs = [abs(_default_run(name, n).std().item() / S - 1) for n in (50, 100)]
    print(f"{name}: |std error| at 50 / 100 steps: {errs[0]:.4f} / {errs[1]:.4f}")
    assert errs[1] < 0.7 * errs[0]


@pytest.mark.parametrize("name", ["ddim", "dpm++", "dpm++sde", "euler", "ddpm"])
def test_eps_and_v_give_the_same_samples(name):
    # The exact eps- and v-predictors describe one denoiser: same seed -> same samples.
    eps = _run(name, 20, "epsilon", config=SCHEDULE)
    v = _run(name, 20, "v_prediction", config=SCHEDULE)
    assert (eps - v).abs().max().item() < 1e-4


@pytest.mark.parametrize("name", ["ddim", "dpm++", "dpm++sde", "euler", "ddpm"])
def test_same_seed_bit_identical_other_seed_differs(name):
    kw = {"step_kwargs": {"eta": 0.5}} if name == "ddim" else {}  # stochastic DDIM draws noise too
    a, b = _run(name, 10, seed=3, config=SCHEDULE, **kw), _run(name, 10, seed=3, config=SCHEDULE, **kw)
    c = _run(name, 10, seed=4, config=SCHEDULE, **kw)
    assert torch.equal(a, b)
    assert (a - c).abs().max().item() > 0.1


def test_sde_solver_draws_fresh_noise_from_the_run_generator():
    # dpm++sde is dpm++ on the reverse SDE: from the same initial noise it ends elsewhere, and its
    # per-step noise comes from the run's generator (another stream, same start -> another sample).
    ode, sde = _run("dpm++", 10, seed=3, config=SCHEDULE), _run("dpm++sde", 10, seed=3, config=SCHEDULE)
    assert (ode - sde).abs().mean().item() > 0.05
    model = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), MU, S, "epsilon")
    start = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    other_stream = sample(model, make_scheduler("dpm++sde", SCHEDULE), shape=SHAPE, cond={}, num_inference_steps=10,
                          latents=start, generator=torch.Generator().manual_seed(99), progress=False)
    assert (other_stream - sde).abs().mean().item() > 0.05


def test_one_scheduler_reused_gives_the_same_sample():
    # set_timesteps resets multistep history: a second run with the same scheduler object is identical.
    model = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), MU, S, "epsilon")
    sch = make_scheduler("dpm++", SCHEDULE)
    runs = [
        sample(model, sch, shape=SHAPE, cond={}, num_inference_steps=8, generator=torch.Generator().manual_seed(0),
               progress=False)
        for _ in range(2)
    ]
    assert torch.equal(*runs)


def test_given_latents_replace_the_noise():
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(7))
    model = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), MU, S, "epsilon")
    sch = make_scheduler("ddim", SCHEDULE)
    from_latents = sample(model, sch, shape=SHAPE, cond={}, num_inference_steps=5, latents=noise, progress=False)
    from_seed = sample(model, sch, shape=SHAPE, cond={}, num_inference_steps=5,
                       generator=torch.Generator().manual_seed(7), progress=False)
    assert torch.equal(from_latents, from_seed)  # randn with that generator is exactly `noise`


def test_bad_arguments():
    model = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), MU, S, "epsilon")
    sch = make_scheduler("ddim", SCHEDULE)
    for steps in (0, 1001):
        with pytest.raises(T2VError, match="steps must be between 1 and the model's 1000 training steps"):
            sample(model, sch, shape=SHAPE, cond={}, num_inference_steps=steps, progress=False)
    with pytest.raises(T2VError, match="initial latents have shape"):
        sample(model, sch, shape=SHAPE, cond={}, num_inference_steps=2, latents=torch.zeros(1, 4, 4, 16, 16),
               progress=False)
