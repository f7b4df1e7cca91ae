"""Test helper (imported by the tests beside it): an analytic denoiser, the exact (Bayes-optimal)
predictor for Gaussian (mixture) data in closed form.

Data x_0 ~ N(mu, s^2 I). Under q(x_t | x_0) = N(sqrt(a) x_0, (1 - a) I), a = abar_t, the pair
(x_0, eps) and x_t are jointly Gaussian, so with D = a s^2 + 1 - a and r = x_t - sqrt(a) mu:
  E[eps | x_t] = sqrt(1 - a) r / D,   E[x_0 | x_t] = mu + sqrt(a) s^2 r / D,
  E[v | x_t]   = sqrt(a) E[eps | x_t] - sqrt(1 - a) E[x_0 | x_t].
Timesteps that are not integers (Euler's "linspace" spacing) get the noise level diffusers' Euler
scheduler gives them: sigma = sqrt((1 - abar) / abar) linearly interpolated in t, abar = 1 / (1 + sigma^2).
"""

from __future__ import annotations

import numpy as np
import torch

# A small noise schedule for fast tests: Stable Diffusion's betas and conventions.
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
}


def alphas_cumprod_reference(config: dict) -> np.ndarray:
    """abar_t for t = 0..T-1 from the config, written here (scaled_linear and linear betas)."""
    T, b0, b1 = config["num_train_timesteps"], config["beta_start"], config["beta_end"]
    if config["beta_schedule"] == "scaled_linear":
        betas = np.linspace(b0**0.5, b1**0.5, T, dtype=np.float64) ** 2
    elif config["beta_schedule"] == "linear":
        betas = np.linspace(b0, b1, T, dtype=np.float64)
    else:
        raise ValueError(config["beta_schedule"])
    return np.cumprod(1.0 - betas)


class GaussianDenoiser:
    """model_fn(x, t, shift=None) for x_0 ~ sum_k pi_k N(mu_k + shift, s_k^2), elementwise.

    One component is the Gaussian case of the module docstring; with several, the exact predictor
    is the responsibility-weighted sum of the components' (a nonlinear denoiser). `shift` (B,) in the
    conditioning moves the data distribution per sample (a stand-in for a prompt).
    """

    def __init__(self, alphas_cumprod, mus, stds, prediction_type: str, weights=None):
        self.abar = np.asarray(alphas_cumprod, dtype=np.float64)
        self.sigmas = np.sqrt((1 - self.abar) / self.abar)
        self.mus = torch.tensor(np.atleast_1d(mus), dtype=torch.float64)
        self.stds = torch.tensor(np.atleast_1d(stds), dtype=torch.float64)
        k = len(self.mus)
        self.log_pi = torch.tensor(np.log(np.full(k, 1.0 / k) if weights is None else np.asarray(weights)))
        self.prediction_type = prediction_type
        self.calls = 0

    def abar_at(self, t: torch.Tensor) -> torch.Tensor:
        sigma = np.interp(t.detach().cpu().double().numpy(), np.arange(len(self.abar)), self.sigmas)
        return torch.from_numpy(1.0 / (1.0 + sigma**2))  # (B,) float64

    def __call__(self, x: torch.Tensor, t: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        shape = (-1,) + (1,) * (x.ndim - 1)
        a = self.abar_at(t).view(shape).unsqueeze(-1)  # (B, 1, ..., 1, 1): last axis = components
        m = self.mus + (0.0 if shift is None else shift.double().view(shape).unsqueeze(-1))
        s2 = self.stds**2
        xd = x.double().unsqueeze(-1)  # (B, ..., 1)
        d = a * s2 + 1 - a  # Var(x_t | component k)
        r = xd - a.sqrt() * m
        resp = torch.softmax(self.log_pi - 0.5 * torch.log(d) - 0.5 * r**2 / d, dim=-1)
        eps = (resp * (1 - a).sqrt() * r / d).sum(-1)
        x0 = (resp * (m + a.sqrt() * s2 * r / d)).sum(-1)
        a = a.squeeze(-1)
        out = {"epsilon": eps, "sample": x0, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0}
        return out[self.prediction_type].to(x.dtype)


# Ho et al. 2020's linear schedule: abar_T = 4e-5, so N(0, I) is (nearly) the true x_T and sampling
# accuracy is not masked by Stable Diffusion's non-zero terminal SNR (abar_T = 0.0047).
LINEAR = dict(
    SCHEDULE, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", steps_offset=0, timestep_spacing="trailing"
)
