"""Streaming mean and covariance in float64, so that thousands of feature vectors never sit in memory.

Chunks are merged with the pairwise update of Chan, Golub & LeVeque (1979): for two sets A, B with
counts n_a, n_b, means m_a, m_b and scatter matrices M_a, M_b (sums of outer products of deviations),

    n = n_a + n_b,   delta = m_b - m_a,
    m = m_a + delta * n_b / n,
    M = M_a + M_b + outer(delta, delta) * n_a * n_b / n.

Unlike accumulating sum(x) and sum(x x^T) (StyleGAN-V's `FeatureStats`), this never subtracts two
large numbers, so the covariance keeps its digits when features have a large mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from t2v.errors import T2VError


@dataclass
class RunningGaussian:
    """Count, mean (D,) and scatter (D, D) of the vectors seen so far; `update` with (N, D) chunks."""

    n: int = 0
    mean: np.ndarray | None = None
    scatter: np.ndarray | None = field(default=None, repr=False)

    @property
    def dim(self) -> int | None:
        return None if self.mean is None else self.mean.shape[0]

    def update(self, x: np.ndarray) -> "RunningGaussian":
        """Add a chunk of vectors, (N, D) (any float dtype; the maths is float64)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise T2VError(f"feature chunk must be (N, D), got shape {x.shape}")
        if x.shape[0] == 0:
            return self
        if self.mean is not None and x.shape[1] != self.dim:
            raise T2VError(f"feature dimension changed from {self.dim} to {x.shape[1]}")
        m_b = x.mean(axis=0)
        dev = x - m_b
        chunk = RunningGaussian(x.shape[0], m_b, dev.T @ dev)
        return self.merge(chunk)

    def merge(self, other: "RunningGaussian") -> "RunningGaussian":
        """Fold another set's statistics into this one (Chan et al.'s update); returns self."""
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mean, self.scatter = other.n, other.mean.copy(), other.scatter.copy()
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.n / n)
        self.scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n)
        self.n = n
        return self

    def covariance(self, ddof: int = 1) -> np.ndarray:
        """(D, D) covariance; ddof=1 is numpy's `np.cov` (unbiased), ddof=0 divides by N."""
        if self.n - ddof <= 0:
            raise T2VError(f"a covariance needs more than {ddof} vectors, got {self.n}")
        return self.scatter / (self.n - ddof)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to save (np.savez) and reload with `from_state`: reuse the real set's statistics."""
        return {"n": np.array(self.n), "mean": self.mean, "scatter": self.scatter}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "RunningGaussian":
        return cls(int(state["n"]), np.asarray(state["mean"], np.float64), np.asarray(state["scatter"], np.float64))
