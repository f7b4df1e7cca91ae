"""Frechet distance between two Gaussians, in float64: the maths of FID and FVD.

    d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2))

(Dowson & Landau 1982; Heusel et al. 2017 for FID, Unterthiner et al. 2018 for FVD).

Two ways to get tr((S_1 S_2)^(1/2)):
- "eigh" (default): with R_i = S_i^(1/2) (symmetric, from eigendecompositions), S_1 S_2 is similar
  to R_1 S_2 R_1 = (R_1 R_2)(R_1 R_2)^T, so tr((S_1 S_2)^(1/2)) is the sum of the singular values of
  R_1 R_2 (its nuclear norm). Real, and accurate for singular covariances (fewer clips than feature
  dimensions): squaring then taking roots of eigenvalues (R_1 S_2 R_1) would turn round-off of
  size eps * |S|^2 into errors of sqrt(eps) * |S| per dimension.
- "scipy": `scipy.linalg.sqrtm(S_1 @ S_2)` as StyleGAN-V and pytorch-fid do (the reference).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.linalg

from t2v.errors import T2VError

Method = Literal["eigh", "scipy"]


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: Method = "eigh") -> float:
    """tr((sigma1 @ sigma2)^(1/2)) for two covariance matrices, in float64."""
    s1 = np.asarray(sigma1, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    if method == "eigh":
        r1, r2 = _sqrt_psd((s1 + s1.T) / 2), _sqrt_psd((s2 + s2.T) / 2)
        return float(np.linalg.svd(r1 @ r2, compute_uv=False).sum())
    if method == "scipy":
        root = scipy.linalg.sqrtm(s1 @ s2)
        return float(np.real(np.trace(root)))
    raise T2VError(f"unknown Frechet method {method!r}: use 'eigh' or 'scipy'")


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, method: Method = "eigh"
) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2). Shapes (D,), (D, D)."""
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise T2VError(f"Frechet distance of mismatched statistics: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    tr = np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2, method)
    return float(diff @ diff + tr)
