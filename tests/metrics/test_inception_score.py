"""Inception Score: exp(mean KL) on fixed probability tables, the split protocol, the video pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from t2v.errors import T2VError
from t2v.metrics.inception_score import ISConfig, inception_score, video_inception_score


def _is_reference(p: np.ndarray) -> float:
    """exp of the mean over rows of KL(p(y|x) || p(y)), with scipy's entropy (an independent KL)."""
    marginal = p.mean(axis=0)
    return float(np.exp(np.mean([scipy.stats.entropy(row, marginal) for row in p])))


def test_equals_exp_mean_kl_on_a_fixed_table():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.0, 0.5]])
    mean, std = inception_score(p, splits=1)
    assert abs(mean - _is_reference(p)) < 1e-12 and std == 0.0
    # hand value: marginal (0.375, 0.3, 0.325)
    q = np.array([0.375, 0.3, 0.325])
    kl = [sum(a * np.log(a / b) for a, b in zip(row, q) if a > 0) for row in p]
    assert abs(mean - np.exp(np.mean(kl))) < 1e-12


def test_uniform_predictions_give_one_and_confident_distinct_give_k():
    assert inception_score(np.full((20, 101), 1 / 101), splits=10) == (1.0, 0.0)
    mean, _ = inception_score(np.eye(7), splits=1)
    assert abs(mean - 7) < 1e-12


def test_ten_split_protocol():
    rng = np.random.RandomState(0)
    logits = rng.randn(53, 11) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    mean, std = inception_score(p, splits=10)
    parts = [p[i * 53 // 10 : (i + 1) * 53 // 10] for i in range(10)]  # 5 or 6 rows each, in order
    per_split = [_is_reference(part) for part in parts]
    assert abs(mean - np.mean(per_split)) < 1e-12 and abs(std - np.std(per_split)) < 1e-12
    # StyleGAN-V's variant: shuffle with RandomState(42) before splitting
    shuffled = p[np.random.RandomState(42).permutation(53)]
    assert inception_score(p, 10, shuffle_seed=42) == inception_score(shuffled, 10)


def test_splits_change_the_marginal():
    p = np.repeat(np.eye(2), 10, axis=0)  # 10 confident class-0 rows, then 10 class-1 rows
    assert abs(inception_score(p, splits=1)[0] - 2) < 1e-12
    assert abs(inception_score(p, splits=2)[0] - 1) < 1e-12


def test_too_few_videos_for_the_splits():
    with pytest.raises(T2VError, match="at least 10"):
        inception_score(np.full((5, 3), 1 / 3), splits=10)


def test_video_pipeline_with_any_classifier_callable():
    torch.manual_seed(0)
    clips = [torch.randint(0, 256, (16, 8, 10, 3), dtype=torch.uint8) for _ in range(12)]
    w = torch.randn(3, 5)

    def classifier(x):  # (B, 3, 16, H, W) in [-1, 1] -> (B, 5) logits
        assert x.shape[1:3] == (3, 16) and x.min() >= -1 and x.max() <= 1
        return x.mean(dim=(2, 3, 4)) @ w * 10

    mean, std, n = video_inception_score(iter(clips), classifier, ISConfig(splits=3, batch_size=5))
    logits = torch.stack([(c.float() / 127.5 - 1).mean(dim=(0, 1, 2)) for c in clips]) @ w * 10
    p = torch.softmax(logits.double(), dim=1).numpy()
    ref = [_is_reference(p[i * 4 : (i + 1) * 4]) for i in range(3)]
    assert n == 12 and abs(mean - np.mean(ref)) < 1e-6 and abs(std - np.std(ref)) < 1e-6
