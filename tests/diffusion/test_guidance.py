"""Classifier-free guidance: the mix of Ho & Salimans 2022 and its one batched forward; skip guidance (STG)."""

from __future__ import annotations

import pytest
import torch
from analytic_denoiser import SCHEDULE, GaussianDenoiser, alphas_cumprod_reference

from t2v.diffusion.guidance import classifier_free_guidance, guided_prediction, skip_guidance, stack_conditions
from t2v.diffusion.sampling import sample
from t2v.diffusion.schedulers import make_scheduler
from t2v.errors import T2VError

SHAPE = (3, 4, 2, 8, 8)


@pytest.fixture
def setup():
    model = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), 0.0, 0.5, "epsilon")
    x = torch.randn(SHAPE)
    t = torch.tensor(500)
    cond = {"shift": torch.tensor([1.0, -2.0, 0.5])}  # a "prompt" per sample
    uncond = {"shift": torch.zeros(3)}
    return model, x, t, cond, uncond


def test_scale_one_is_conditional_and_zero_unconditional(setup):
    model, x, t, cond, uncond = setup
    pred_c = model(x, t.expand(3), **cond)
    pred_u = model(x, t.expand(3), **uncond)
    assert (pred_c - pred_u).abs().max() > 0.1
    torch.testing.assert_close(guided_prediction(model, x, t, cond, uncond, 1.0), pred_c, rtol=0, atol=0)
    torch.testing.assert_close(guided_prediction(model, x, t, cond, uncond, 0.0), pred_u)
    torch.testing.assert_close(classifier_free_guidance(pred_u, pred_c, 1.0), pred_c)
    torch.testing.assert_close(classifier_free_guidance(pred_u, pred_c, 0.0), pred_u)


def test_guided_mix_from_one_batched_forward(setup):
    model, x, t, cond, uncond = setup
    pred_c = model(x, t.expand(3), **cond)
    pred_u = model(x, t.expand(3), **uncond)
    model.calls = 0
    guided = guided_prediction(model, x, t, cond, uncond, 7.5)
    assert model.calls == 1  # both branches in one forward of 2B rows
    # Ho & Salimans eq. 6 with w = g - 1: (1 + w) eps_c - w eps_u.
    torch.testing.assert_close(guided, 7.5 * pred_c - 6.5 * pred_u)


def test_unconditional_only_runs_when_needed(setup):
    model, x, t, cond, uncond = setup
    model.calls = 0
    guided_prediction(model, x, t, cond, None, 7.5)
    guided_prediction(model, x, t, cond, uncond, 1.0)
    assert model.calls == 2  # one B-row forward each, no unconditional branch


def test_stack_conditions():
    both = stack_conditions(
        {"encoder_hidden_states": torch.zeros(2, 77, 8), "image_only": False},
        {"encoder_hidden_states": torch.ones(2, 77, 8), "image_only": False},
    )
    assert both["encoder_hidden_states"].shape == (4, 77, 8)
    assert both["encoder_hidden_states"][:2].sum() == 0 and both["encoder_hidden_states"][2:].min() == 1
    assert both["image_only"] is False
    with pytest.raises(ValueError, match="same keys"):
        stack_conditions({"a": torch.zeros(1)}, {"b": torch.zeros(1)})
    with pytest.raises(ValueError, match="differs"):
        stack_conditions({"fps": 8}, {"fps": 24})


def test_sampling_with_scale_one_ignores_uncond():
    model = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), 0.0, 0.5, "epsilon")
    sch = make_scheduler("ddim", SCHEDULE)
    cond, uncond = {"shift": torch.full((3,), 1.0)}, {"shift": torch.zeros(3)}

    def run(uncond_, scale):
        gen = torch.Generator().manual_seed(0)
        return sample(model, sch, shape=SHAPE, cond=cond, uncond=uncond_, guidance_scale=scale,
                      num_inference_steps=10, generator=gen, progress=False)

    assert torch.equal(run(uncond, 1.0), run(None, 1.0))
    # Larger guidance moves the samples further towards the condition's mean (shift 1 vs 0).
    means = [run(uncond, g).mean().item() for g in (0.0, 1.0, 3.0)]
    assert means[0] < means[1] < means[2]
    assert abs(means[0]) < 0.1 and abs(means[1] - 1.0) < 0.1


def test_high_noise_guidance_applies_at_the_high_timesteps_only():
    """(scale, t_min): the steps at t >= t_min mix with that scale, the rest with guidance_scale; with
    guidance_scale 1 the low-noise steps run the conditional branch alone (B rows, not 2B)."""
    model = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), 0.0, 0.5, "epsilon")
    sch = make_scheduler("ddim", SCHEDULE)
    cond, uncond = {"shift": torch.full((3,), 1.0)}, {"shift": torch.zeros(3)}
    calls = []

    def recording(x, t, **kw):
        calls.append((int(torch.as_tensor(t).flatten()[0]), x.shape[0]))
        return model(x, t, **kw)

    def run(scale, high, fn=model):
        return sample(fn, sch, shape=SHAPE, cond=cond, uncond=uncond, guidance_scale=scale, num_inference_steps=10,
                      generator=torch.Generator().manual_seed(0), progress=False, high_noise_guidance=high)

    mixed = run(1.0, (3.0, 500), recording)
    assert [rows for _, rows in calls] == [6 if t >= 500 else 3 for t, _ in calls]
    assert sum(t >= 500 for t, _ in calls) == 5  # DDIM's 10 leading steps: 900, 800, ..., 0
    assert torch.equal(run(1.0, (3.0, 0)), run(3.0, None))  # every step high: guidance 3 throughout
    assert torch.equal(run(3.0, (1.0, 999)), run(3.0, None))  # no step reaches t_min
    assert (mixed - run(1.0, None)).abs().max() > 1e-3 and (mixed - run(3.0, None)).abs().max() > 1e-3
    with pytest.raises(T2VError, match=r"t_min in \[0, 1000\)"):
        run(1.0, (3.0, 1000))


def test_skip_guidance_mix_against_its_formula(setup):
    """STG's mix u + g (c - u) + s (c - c_skip): the weak model runs once more on the B conditional rows;
    s = 0 (or no weak model) is plain CFG bit for bit; with g = 1 it is c + s (c - c_skip)."""
    model, x, t, cond, uncond = setup
    weak = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), 0.0, 0.8, "epsilon")  # another data std
    pred_c, pred_u = model(x, t.expand(3), **cond), model(x, t.expand(3), **uncond)
    pred_w = weak(x, t.expand(3), **cond)
    assert (pred_c - pred_w).abs().max() > 0.05
    model.calls = weak.calls = 0
    mixed = guided_prediction(model, x, t, cond, uncond, 4.0, skip_fn=weak, skip_scale=1.5)
    assert (model.calls, weak.calls) == (1, 1)
    torch.testing.assert_close(mixed, pred_u + 4.0 * (pred_c - pred_u) + 1.5 * (pred_c - pred_w))
    torch.testing.assert_close(skip_guidance(pred_u, pred_c, pred_w, 4.0, 1.5), mixed)
    plain = guided_prediction(model, x, t, cond, uncond, 4.0)
    assert torch.equal(guided_prediction(model, x, t, cond, uncond, 4.0, skip_fn=weak, skip_scale=0.0), plain)
    torch.testing.assert_close(guided_prediction(model, x, t, cond, None, 4.0, skip_fn=weak, skip_scale=2.0),
                               3.0 * pred_c - 2.0 * pred_w)


def test_skip_guidance_applies_at_the_high_timesteps_only():
    """(scale, t_min): the weak model runs at the steps with t >= t_min only, and a run whose t_min no
    step reaches equals plain CFG bit for bit."""
    model = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), 0.0, 0.5, "epsilon")
    weak = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), 0.0, 0.8, "epsilon")
    sch = make_scheduler("ddim", SCHEDULE)
    cond, uncond = {"shift": torch.full((3,), 1.0)}, {"shift": torch.zeros(3)}
    seen = []

    def recording(x, t, **kw):
        seen.append(int(torch.as_tensor(t).flatten()[0]))
        return weak(x, t, **kw)

    def run(skip, fn=weak):
        return sample(model, sch, shape=SHAPE, cond=cond, uncond=uncond, guidance_scale=3.0, num_inference_steps=10,
                      generator=torch.Generator().manual_seed(0), progress=False, skip_fn=fn, skip_guidance=skip)

    mixed = run((1.0, 500), recording)
    assert seen == [int(t) for t in sch.timesteps if t >= 500] and len(seen) == 5  # DDIM's 10 leading steps
    plain = run(None)
    assert torch.equal(run((1.0, 999)), plain)
    assert (mixed - plain).abs().max() > 1e-3
    with pytest.raises(T2VError, match="skip guidance"):
        run((1.0, 1000))
    with pytest.raises(T2VError, match="weak model"):
        run((1.0, 500), None)
