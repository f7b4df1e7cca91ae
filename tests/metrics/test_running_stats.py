"""Streaming mean/covariance (Chan et al. merging) equals the batch statistics."""

from __future__ import annotations

import numpy as np

from t2v.metrics.running_stats import RunningGaussian


def test_uneven_chunks_equal_batch_statistics():
    rng = np.random.RandomState(0)
    x = (rng.randn(300, 24) * rng.rand(24) * 3 + rng.randn(24)).astype(np.float32).astype(np.float64)
    stats = RunningGaussian()
    start = 0
    for size in (1, 7, 0, 50, 3, 100, 2, 137):  # uneven, one empty
        stats.update(x[start : start + size].astype(np.float32) if size == 3 else x[start : start + size])
        start += size
    assert start == 300 and stats.n == 300
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.covariance(), np.cov(x, rowvar=False), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(stats.covariance(ddof=0), np.cov(x, rowvar=False, bias=True), rtol=1e-11, atol=1e-12)


def test_large_mean_keeps_its_digits():
    # Features with a mean of 1e6 and unit spread: sum(x x^T) - n mu mu^T would lose ~12 digits.
    rng = np.random.RandomState(1)
    x = rng.randn(1000, 8) + 1e6
    stats = RunningGaussian()
    for chunk in np.array_split(x, 13):
        stats.update(chunk)
    centred = x - x.mean(axis=0)
    ref = centred.T @ centred / 999
    assert np.abs(stats.covariance() - ref).max() < 1e-8
    # what accumulating sum(x) and sum(x x^T) (StyleGAN-V's FeatureStats) gives: digits lost
    naive = (x.T @ x - 1000 * np.outer(x.mean(0), x.mean(0))) / 999
    assert np.abs(naive - ref).max() > 1e-6


def test_merge_of_two_streams_and_state_round_trip():
    rng = np.random.RandomState(2)
    a, b = rng.randn(40, 5), rng.randn(17, 5) + 2
    merged = RunningGaussian().update(a).merge(RunningGaussian().update(b))
    both = np.concatenate([a, b])
    np.testing.assert_allclose(merged.mean, both.mean(0), rtol=1e-12)
    np.testing.assert_allclose(merged.covariance(), np.cov(both, rowvar=False), rtol=1e-12)
    again = RunningGaussian.from_state(merged.state())
    assert again.n == 57 and np.array_equal(again.scatter, merged.scatter)
