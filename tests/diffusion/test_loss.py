"""The training loss against closed forms: irreducible error of the exact predictor, min-SNR weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from analytic_denoiser import SCHEDULE, GaussianDenoiser, alphas_cumprod_reference
from diffusers import DDPMScheduler

from t2v.diffusion.loss import diffusion_loss, min_snr_weights, sample_timesteps, signal_to_noise
from t2v.errors import T2VError

MU, S = 0.5, 0.7
TIMESTEPS = [0, 10, 200, 500, 900, 999]
PER_T = 96  # samples per timestep; 96 * 256 values per group: relative standard error 0.9%


def irreducible(a: np.ndarray, prediction_type: str) -> np.ndarray:
    """E||target - E[target | x_t]||^2 per element for x_0 ~ N(MU, S^2), derived independently here.

    (eps, x_0) and x_t are jointly Gaussian: Cov(eps, x_0) = diag(1, S^2), Cov((eps, x_0), x_t) =
    k = (sqrt(1-a), sqrt(a) S^2), Var x_t = D = a S^2 + 1 - a. The posterior covariance is
    Sigma = diag(1, S^2) - k k^T / D, and a target c . (eps, x_0) has error variance c^T Sigma c.
    """
    D = a * S**2 + 1 - a
    k = np.stack([np.sqrt(1 - a), np.sqrt(a) * S**2], -1)  # (T, 2)
    coef = {
        "epsilon": np.stack([np.ones_like(a), np.zeros_like(a)], -1),
        "sample": np.stack([np.zeros_like(a), np.ones_like(a)], -1),
        "v_prediction": np.stack([np.sqrt(a), -np.sqrt(1 - a)], -1),
    }[prediction_type]
    prior = coef[:, 0] ** 2 + S**2 * coef[:, 1] ** 2
    return prior - (coef * k).sum(-1) ** 2 / D


def _ddpm(prediction_type="epsilon", **kw):
    return DDPMScheduler.from_config(dict(SCHEDULE, prediction_type=prediction_type, **kw))


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_exact_predictor_reaches_the_irreducible_loss(prediction_type):
    abar = alphas_cumprod_reference(SCHEDULE)
    model = GaussianDenoiser(abar, MU, S, prediction_type)
    t = torch.tensor(TIMESTEPS).repeat_interleave(PER_T)  # (B,)
    gen = torch.Generator().manual_seed(0)
    x0 = MU + S * torch.randn((len(t), 1, 4, 8, 8), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    out = diffusion_loss(model, _ddpm(prediction_type), x0, {}, timesteps=t, noise=noise)
    assert out.per_sample.shape == (len(t),) and out.loss.ndim == 0
    measured = out.per_sample.view(len(TIMESTEPS), PER_T).mean(1).numpy()
    expected = irreducible(abar[TIMESTEPS], prediction_type)
    print(prediction_type, "measured", np.round(measured, 5), "closed form", np.round(expected, 5))
    np.testing.assert_allclose(measured, expected, rtol=0.05)  # 5 standard errors
    # A worse predictor (the exact one for the wrong mean) has a higher loss.
    wrong = diffusion_loss(GaussianDenoiser(abar, MU + 1, S, prediction_type), _ddpm(prediction_type), x0, {},
                           timesteps=t, noise=noise)
    assert wrong.loss > out.loss * 1.05


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_targets_match_their_definitions(prediction_type):
    # An oracle that sees x_0 returns the target computed here from its definition: the loss is 0.
    abar = torch.from_numpy(alphas_cumprod_reference(SCHEDULE))

    def oracle(x_t, t, x0):
        a = abar[t].view(-1, 1, 1, 1, 1)
        eps = (x_t.double() - a.sqrt() * x0) / (1 - a).sqrt()  # Ho et al. eq. 4 solved for eps
        target = {"epsilon": eps, "sample": x0, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0}
        return target[prediction_type].float()

    x0 = torch.randn(16, 2, 3, 4, 4).double()
    out = diffusion_loss(oracle, _ddpm(prediction_type), x0.float(), {"x0": x0},
                         generator=torch.Generator().manual_seed(1))
    assert out.loss.item() < 1e-8
    assert len(set(out.timesteps.tolist())) > 8  # t was drawn, not constant


def test_min_snr_weights_closed_form():
    abar = alphas_cumprod_reference(SCHEDULE)
    t = torch.tensor([0, 10, 100, 300, 500, 999])
    snr_ref = abar[t.numpy()] / (1 - abar[t.numpy()])
    snr = signal_to_noise(_ddpm(), t)
    np.testing.assert_allclose(snr.numpy(), snr_ref, rtol=1e-4)
    gamma = 5.0
    clipped = np.minimum(snr_ref, gamma)
    np.testing.assert_allclose(min_snr_weights(snr, gamma, "epsilon").numpy(), clipped / snr_ref, rtol=1e-4)
    np.testing.assert_allclose(min_snr_weights(snr, gamma, "v_prediction").numpy(), clipped / (snr_ref + 1),
                               rtol=1e-4)
    np.testing.assert_allclose(min_snr_weights(snr, gamma, "sample").numpy(), clipped, rtol=1e-4)
    # Low-noise steps are down-weighted for eps (SNR > gamma), high-noise ones keep weight 1.
    assert snr_ref[0] > gamma > snr_ref[-1]


def test_min_snr_weights_zero_terminal_snr():
    sch = _ddpm(rescale_betas_zero_snr=True)
    snr = signal_to_noise(sch, torch.tensor([999]))
    assert snr.item() == 0.0
    assert min_snr_weights(snr, 5.0, "epsilon").item() == 1.0  # the limit, not 0/0
    assert min_snr_weights(snr, 5.0, "v_prediction").item() == 0.0


def test_weighted_loss_is_the_weighted_mean():
    abar = alphas_cumprod_reference(SCHEDULE)
    model = GaussianDenoiser(abar, MU, S, "v_prediction")
    x0 = MU + S * torch.randn(32, 1, 2, 4, 4)
    plain = diffusion_loss(model, _ddpm("v_prediction"), x0, generator=torch.Generator().manual_seed(2))
    weighted = diffusion_loss(model, _ddpm("v_prediction"), x0, generator=torch.Generator().manual_seed(2),
                              snr_gamma=5.0)
    assert torch.equal(plain.timesteps, weighted.timesteps) and torch.equal(plain.per_sample, weighted.per_sample)
    t = plain.timesteps.numpy()
    snr = abar[t] / (1 - abar[t])
    w = np.minimum(snr, 5.0) / (snr + 1)
    np.testing.assert_allclose(weighted.loss.item(), (w * plain.per_sample.numpy()).mean(), rtol=1e-5)
    np.testing.assert_allclose(plain.loss.item(), plain.per_sample.mean().item(), rtol=1e-6)


def test_seeded_and_bad_inputs():
    model = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), MU, S, "epsilon")
    x0 = torch.randn(8, 1, 2, 4, 4)
    a = diffusion_loss(model, _ddpm(), x0, generator=torch.Generator().manual_seed(5))
    b = diffusion_loss(model, _ddpm(), x0, generator=torch.Generator().manual_seed(5))
    c = diffusion_loss(model, _ddpm(), x0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.loss, b.loss) and not torch.equal(a.timesteps, c.timesteps)
    with pytest.raises(T2VError, match="unknown prediction type 'x0'"):
        diffusion_loss(model, _ddpm(), x0, prediction_type="x0")
    with pytest.raises(T2VError, match="snr_gamma must be positive"):
        diffusion_loss(model, _ddpm(), x0, snr_gamma=0)
    with pytest.raises(T2VError, match="out_channels"):
        diffusion_loss(lambda x, t: x[:, :1].repeat(1, 2, 1, 1, 1), _ddpm(), x0)


def test_logit_normal_timesteps_follow_their_cdf():
    """P(t < k) = Phi((logit(k / T) - mean) / std) for t = floor(T sigmoid(u)), u ~ N(mean, std^2)."""
    from scipy.special import logit, ndtr

    T, n = 1000, 200_000
    for mean, std in [(0.0, 1.0), (1.0, 0.8)]:
        t = sample_timesteps(T, n, distribution="logit_normal", logit_mean=mean, logit_std=std,
                             generator=torch.Generator().manual_seed(0)).numpy()
        assert t.min() >= 0 and t.max() <= T - 1
        ks = np.array([50, 200, 500, 800, 950])
        empirical = np.array([(t < k).mean() for k in ks])
        expected = ndtr((logit(ks / T) - mean) / std)
        np.testing.assert_allclose(empirical, expected, atol=0.005)  # 5 sigma of a 200k-sample proportion
    # A positive mean moves the draws to high noise: median T sigmoid(1) = 731.
    assert abs(np.median(t) - T / (1 + np.exp(-1.0))) < 3


def test_uniform_timesteps_are_ddpm_draws_and_bad_distributions_are_named():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(sample_timesteps(1000, 64, generator=g1), torch.randint(0, 1000, (64,), generator=g2))
    model = GaussianDenoiser(alphas_cumprod_reference(SCHEDULE), MU, S, "epsilon")
    x0 = torch.randn(64, 1, 1, 2, 2)
    drawn = diffusion_loss(model, _ddpm(), x0, generator=torch.Generator().manual_seed(1),
                           timestep_distribution="logit_normal", logit_mean=2.0).timesteps
    assert drawn.float().median() > 800  # T sigmoid(2) = 881
    with pytest.raises(T2VError, match="unknown timestep distribution 'lognormal'"):
        sample_timesteps(1000, 4, distribution="lognormal")
    with pytest.raises(T2VError, match="logit_std must be positive"):
        sample_timesteps(1000, 4, distribution="logit_normal", logit_std=0.0)


def test_shifted_timesteps_follow_the_shifted_cdf():
    """With SD3's shift s, u' = s u / (1 + (s - 1) u) for u ~ U(0, 1), so P(t < k) = P(u < k' / (s - (s - 1) k'))
    with k' = k / T: the inverse of the shift; for logit-normal draws, Phi of the logit of that inverse."""
    from scipy.special import logit, ndtr

    T, n = 1000, 200_000
    ks = np.array([100, 400, 800, 950, 990])
    for s in (4.0, 0.5):
        inverse = (ks / T) / (s - (s - 1) * ks / T)
        t = sample_timesteps(T, n, shift=s, generator=torch.Generator().manual_seed(0)).numpy()
        np.testing.assert_allclose([(t < k).mean() for k in ks], inverse, atol=0.005)
        t = sample_timesteps(T, n, distribution="logit_normal", logit_mean=0.5, shift=s,
                             generator=torch.Generator().manual_seed(1)).numpy()
        np.testing.assert_allclose([(t < k).mean() for k in ks], ndtr(logit(inverse) - 0.5), atol=0.005)
    # Shift 4 puts about 17% of the draws above t = 950 (5% without), where 16 frames still hide their object.
    assert abs((sample_timesteps(T, n, shift=4.0, generator=torch.Generator().manual_seed(2)) >= 950).float().mean() - 0.174) < 0.005
    with pytest.raises(T2VError, match="shift must be positive"):
        sample_timesteps(T, 4, shift=0.0)
