"""The denoising training loss for any network, with optional min-SNR-gamma weighting.

Ho et al. 2020 ("Denoising Diffusion Probabilistic Models"), Algorithm 1 / eq. 14: sample t and noise,
form x_t from the closed-form forward process q(x_t | x_0) (eq. 4), regress the network output on the
target. Targets by prediction type:
  epsilon       eps                                           (Ho et al. 2020 eq. 14)
  v_prediction  v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0    (Salimans & Ho 2022, "Progressive
                                                               Distillation", sec. 4 and appendix D)
  sample        x_0
Min-SNR-gamma (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy")
weights each timestep so that its loss, expressed as an x_0 error, has weight min(SNR_t, gamma), with
SNR_t = abar_t / (1 - abar_t). Since ||eps err||^2 = SNR ||x0 err||^2 and ||v err||^2 =
(SNR + 1) ||x0 err||^2, the weight on the native loss is
  epsilon: min(SNR, gamma) / SNR,   v_prediction: min(SNR, gamma) / (SNR + 1),   sample: min(SNR, gamma).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import torch
from diffusers import DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor
from einops import reduce
from torch import Tensor

from t2v.diffusion.denoiser import ModelFn, predict
from t2v.diffusion.schedulers import shift_noise_level
from t2v.errors import T2VError

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
TIMESTEP_DISTRIBUTIONS = ("uniform", "logit_normal")


def sample_timesteps(
    num_train_timesteps: int,
    batch: int,
    *,
    distribution: str = "uniform",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    shift: float = 1.0,
) -> Tensor:
    """Training timesteps (batch,) int64 in {0, ..., T-1}.

    uniform: Ho et al. 2020, Algorithm 1. logit_normal: t = floor(T * sigmoid(u)), u ~ N(mean, std)
    (Esser et al. 2024, "Scaling Rectified Flow Transformers", sec. 3.1, on a discrete schedule); a
    positive mean moves the draws toward high noise, where a video model lays out its motion (as
    Stable Video Diffusion shifts its noise distribution up, Blattmann et al. 2023b, sec. 4).
    shift != 1: the drawn noise level u = t / T in [0, 1] becomes SD3's s u / (1 + (s - 1) u)
    (`t2v.diffusion.schedulers.shift_noise_level`), the same shift a sampler can take; uniform
    draws then come from a continuous u (shift 1 keeps the integer draws bit for bit).
    """
    if distribution == "uniform":
        if shift == 1.0:
            return torch.randint(0, num_train_timesteps, (batch,), generator=generator, device=device)
        u = torch.rand(batch, generator=generator, device=device)
    elif distribution == "logit_normal":
        if not logit_std > 0:
            raise T2VError(f"diffusion.logit_std must be positive, got {logit_std}")
        u = torch.sigmoid(torch.randn(batch, generator=generator, device=device) * logit_std + logit_mean)
    else:
        raise T2VError(f"unknown timestep distribution {distribution!r}; choose one of: {', '.join(TIMESTEP_DISTRIBUTIONS)}")
    if shift != 1.0:
        u = shift_noise_level(u, shift)
    return (u * num_train_timesteps).long().clamp_(0, num_train_timesteps - 1)


@dataclass(frozen=True)
class DiffusionLoss:
    """loss: () the weighted mean to backpropagate; per_sample: (B,) unweighted MSE of each sample;
    weights: (B,) the min-SNR weights (ones without them); timesteps: (B,) the t drawn;
    prediction: the model's output (for losses on it beside the MSE)."""

    loss: Tensor
    per_sample: Tensor
    weights: Tensor
    timesteps: Tensor
    prediction: Optional[Tensor] = None


def signal_to_noise(scheduler: DDPMScheduler, timesteps: Tensor) -> Tensor:
    """SNR_t = abar_t / (1 - abar_t) at integer timesteps (B,) -> (B,) float32 (inf where abar = 1)."""
    abar = scheduler.alphas_cumprod.to(torch.float64)[timesteps.cpu().long()]
    return (abar / (1 - abar)).float().to(timesteps.device)


def min_snr_weights(snr: Tensor, gamma: float, prediction_type: str) -> Tensor:
    """Hang et al. 2023 weights on the native loss of `prediction_type` (see the module docstring)."""
    clipped = torch.clamp(snr, max=gamma)
    if prediction_type == "epsilon":
        # min(SNR, gamma) / SNR -> 1 as SNR -> 0 (a zero-terminal-SNR schedule's last step).
        return torch.where(snr > 0, clipped / snr.clamp(min=torch.finfo(snr.dtype).tiny), torch.ones_like(snr))
    if prediction_type == "v_prediction":
        return clipped / (snr + 1)
    if prediction_type == "sample":
        return clipped
    raise T2VError(f"unknown prediction type {prediction_type!r}; choose one of: {', '.join(PREDICTION_TYPES)}")


def diffusion_loss(
    model_fn: ModelFn,
    scheduler: DDPMScheduler,
    x0: Tensor,
    cond: Mapping[str, Any] | None = None,
    *,
    prediction_type: str | None = None,
    snr_gamma: float | None = None,
    generator: torch.Generator | None = None,
    timesteps: Tensor | None = None,
    noise: Tensor | None = None,
    timestep_distribution: str = "uniform",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    timestep_shift: float = 1.0,
) -> DiffusionLoss:
    """The training loss of `model_fn` on clean data x0 (B, C, F, H, W) (or any (B, ...)).

    `scheduler` gives q(x_t | x_0) (`alphas_cumprod`, `add_noise`); `prediction_type` defaults to its
    config's. `timesteps` (B,) and `noise` (x0's shape) override the random draws (for tests);
    otherwise they come from `generator`. `snr_gamma` (e.g. 5) turns on min-SNR-gamma weighting.
    `timestep_distribution` / `logit_mean` / `logit_std` / `timestep_shift`: how t is drawn (`sample_timesteps`).
    """
    prediction_type = prediction_type or scheduler.config.prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise T2VError(f"unknown prediction type {prediction_type!r}; choose one of: {', '.join(PREDICTION_TYPES)}")
    if snr_gamma is not None and not snr_gamma > 0:
        raise T2VError(f"snr_gamma must be positive (5 is the paper's choice), got {snr_gamma}")
    batch = x0.shape[0]
    gen_device = generator.device if generator is not None else x0.device

    # 1. t ~ Uniform{0, ..., T-1} (Ho et al. 2020, Algorithm 1 line 3; 0-based), or logit-normal.
    if timesteps is None:
        timesteps = sample_timesteps(scheduler.config.num_train_timesteps, batch, distribution=timestep_distribution,
                                     logit_mean=logit_mean, logit_std=logit_std, generator=generator, device=gen_device,
                                     shift=timestep_shift)
    timesteps = timesteps.to(x0.device).long()  # (B,)
    # 2. eps ~ N(0, I) (Algorithm 1 line 4).
    if noise is None:
        noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    # 3. x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (eq. 4).
    x_t = scheduler.add_noise(x0, noise, timesteps)
    # 4. The regression target of the chosen parameterisation.
    if prediction_type == "epsilon":
        target = noise  # eq. 14
    elif prediction_type == "v_prediction":
        target = scheduler.get_velocity(x0, noise, timesteps)  # Salimans & Ho 2022, appendix D
    else:
        target = x0
    # 5. Per-sample mean squared error, in float32 whatever the model's precision.
    pred = predict(model_fn, x_t, timesteps, cond)
    per_sample = reduce((pred.float() - target.float()) ** 2, "b ... -> b", "mean")  # (B,)
    # 6. Optional min-SNR-gamma weights (Hang et al. 2023), in the form for this parameterisation.
    if snr_gamma is None:
        weights = torch.ones_like(per_sample)
    else:
        weights = min_snr_weights(signal_to_noise(scheduler, timesteps), snr_gamma, prediction_type)
    return DiffusionLoss(
        loss=(weights * per_sample).mean(), per_sample=per_sample, weights=weights, timesteps=timesteps, prediction=pred
    )
