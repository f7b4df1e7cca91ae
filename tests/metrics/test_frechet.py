"""Frechet distance: against scipy's sqrtm reference and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from t2v.metrics.frechet import frechet_distance


def _gaussian(rng: np.random.RandomState, d: int, n: int = 0):
    a = rng.randn(d, n or 2 * d)
    return rng.randn(d), a @ a.T / a.shape[1] + 0.1 * np.eye(d)


def _scipy_reference(mu1, s1, mu2, s2) -> float:
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.real(np.trace(root)))


@pytest.mark.parametrize("d", [2, 16, 128])
def test_matches_scipy_sqrtm(d):
    rng = np.random.RandomState(d)
    mu1, s1 = _gaussian(rng, d)
    mu2, s2 = _gaussian(rng, d)
    ref = _scipy_reference(mu1, s1, mu2, s2)
    for method in ("eigh", "scipy"):
        got = frechet_distance(mu1, s1, mu2, s2, method=method)
        assert abs(got - ref) / abs(ref) < 1e-6, (method, got, ref)


def test_diagonal_closed_form():
    rng = np.random.RandomState(1)
    a, b = rng.rand(50) + 0.1, rng.rand(50) + 0.1
    mu1, mu2 = rng.randn(50), rng.randn(50)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert abs(got - closed) / closed < 1e-10


def test_zero_for_identical_and_symmetric():
    rng = np.random.RandomState(2)
    mu1, s1 = _gaussian(rng, 64)
    mu2, s2 = _gaussian(rng, 64)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-8 * np.trace(s1)
    d12, d21 = frechet_distance(mu1, s1, mu2, s2), frechet_distance(mu2, s2, mu1, s1)
    assert abs(d12 - d21) / d12 < 1e-9


def test_grows_with_a_shift():
    rng = np.random.RandomState(3)
    mu, s = _gaussian(rng, 32)
    direction = rng.randn(32)
    ds = [frechet_distance(mu, s, mu + t * direction, s) for t in (0.0, 0.5, 1.0, 2.0)]
    assert all(x < y for x, y in zip(ds, ds[1:]))
    # equal covariances: the distance is exactly the squared shift
    np.testing.assert_allclose(ds[1:], [t * t * direction @ direction for t in (0.5, 1.0, 2.0)], rtol=1e-9)


def test_singular_covariances_fewer_samples_than_dimensions():
    # 20 samples in 64 dimensions (as with few clips and 400 logits): eigh stays real and agrees
    # with scipy where scipy is accurate.
    rng = np.random.RandomState(4)
    x, y = rng.randn(20, 64), rng.randn(20, 64) + 0.3
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    got = frechet_distance(x.mean(0), s1, y.mean(0), s2)
    ref = _scipy_reference(x.mean(0), s1, y.mean(0), s2)
    assert np.isfinite(got) and abs(got - ref) / ref < 1e-6
