"""PSNR, SSIM, flicker and the centroid track error against naive implementations and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from t2v.data.shapes import render_clip
from t2v.metrics.reconstruction import flicker, gaussian_window, psnr, ssim, track_error


def test_psnr_closed_form():
    a = torch.zeros(3, 2, 4, 4)
    b = a + 0.2  # 0.1 on the [0, 1] scale everywhere: MSE 0.01 -> 20 dB
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-5)  # float32 inputs
    assert psnr(a, a) == math.inf


def naive_ssim(x: np.ndarray, y: np.ndarray, k: int = 11, sigma: float = 1.5) -> float:
    """Wang et al. 2004 at every valid window position, with explicit loops (one 2D image in [0, 1])."""
    g = np.exp(-((np.arange(k) - (k - 1) / 2) ** 2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for i in range(x.shape[0] - k + 1):
        for j in range(x.shape[1] - k + 1):
            px, py = x[i : i + k, j : j + k], y[i : i + k, j : j + k]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * px * px).sum() - mx**2, (w * py * py).sum() - my**2
            cxy = (w * px * py).sum() - mx * my
            vals.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_a_naive_loop():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 2, 14, 15, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(a.shape, generator=g)).clamp(-1, 1)
    ref = np.mean([naive_ssim(((a[c, f] + 1) / 2).double().numpy(), ((b[c, f] + 1) / 2).double().numpy())
                   for c in range(3) for f in range(2)])
    assert ssim(a, b) == pytest.approx(ref, abs=1e-10)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert float(gaussian_window().sum()) == pytest.approx(1.0)


def test_flicker_naive_and_constant_error():
    g = torch.Generator().manual_seed(2)
    true = torch.rand(3, 5, 4, 4, generator=g) * 2 - 1
    recon = (true + 0.2 * torch.randn(true.shape, generator=g)).clamp(-1, 1)
    e = ((recon + 1) / 2 - (true + 1) / 2).numpy()
    ref = np.mean([np.abs(e[:, t + 1] - e[:, t]).mean() for t in range(4)])
    assert flicker(recon, true) == pytest.approx(ref, rel=1e-6)
    base = torch.full((3, 4, 4, 4), -0.5)
    assert flicker(base + 0.1, base) == pytest.approx(0.0, abs=1e-7)  # an error that stays put does not flicker


def test_track_error_of_a_shifted_clip():
    a = render_clip("red", "square", "right", size=64, num_frames=4, object_size=16, displacement=12, start=(10, 20))
    b = render_clip("red", "square", "right", size=64, num_frames=4, object_size=16, displacement=12, start=(13, 24))
    va, vb = (torch.from_numpy(x).float().div(127.5).sub(1).permute(3, 0, 1, 2) for x in (a, b))
    assert track_error(vb, va) == pytest.approx(5.0, abs=1e-9)  # (3, 4) px shift in every frame
    assert track_error(va, va) == 0.0
    empty = torch.full_like(va, -1.0)
    assert track_error(empty, va, [0, 1]) == 64.0  # no object where there should be one: the canvas size
