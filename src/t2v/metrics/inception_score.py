"""Inception Score for videos (Salimans et al. 2016; for videos Saito et al., TGAN 2017 / TGANv2 2020).

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x),

computed on `splits` equal consecutive parts of the N class-probability rows (improved-gan, TGAN:
rows [i*N//splits, (i+1)*N//splits)), reported as the mean and (population) standard deviation of
the per-split scores. The classifier is C3D fine-tuned on UCF-101 (`t2v.models.c3d`), 16-frame
clips; any callable from (B, 3, F, H, W) in [-1, 1] to (B, K) logits will do.

Protocol notes (docs/metrics.md): TGANv2 draws 2,048 videos and scores them with splits=1, ten
times, reporting mean +- std of the ten; StyleGAN-V shuffles 2,048 (seed 42) into 10 splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from t2v.errors import T2VError
from t2v.metrics.video_folder import batched

Classifier = Callable[[Tensor], Tensor]  # (B, 3, F, H, W) in [-1, 1] -> (B, K) logits


@dataclass(frozen=True)
class ISConfig:
    frames: int = 16
    stride: int = 1
    splits: int = 10
    batch_size: int = 8
    shuffle_seed: int | None = None  # None: consecutive splits (TGAN); 42: StyleGAN-V's shuffle


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p_i || q) per row, 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=1)


def inception_score(probs: np.ndarray, splits: int = 10, shuffle_seed: int | None = None) -> tuple[float, float]:
    """(mean, std) of exp(mean KL(p(y|x) || p(y))) over `splits` parts of (N, K) probabilities."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise T2VError(f"class probabilities must be (N, K), got {p.shape}")
    n = p.shape[0]
    if splits < 1 or n < splits:
        raise T2VError(f"Inception Score with {splits} splits needs at least {splits} videos, got {n}")
    if shuffle_seed is not None:
        p = p[np.random.RandomState(shuffle_seed).permutation(n)]
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)  # p(y) over this split
        scores.append(np.exp(_kl_rows(part, marginal).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def softmax64(logits: Tensor) -> np.ndarray:
    """(B, K) logits -> float64 probabilities."""
    return torch.softmax(logits.detach().double().cpu(), dim=1).numpy()


def prepare_clip(clip: Tensor) -> Tensor:
    """uint8 (F, H, W, 3) -> float32 (3, F, H, W) in [-1, 1]; the classifier resizes."""
    return rearrange(clip, "f h w c -> c f h w").float() / 127.5 - 1.0


@torch.no_grad()
def class_probabilities(
    clips: Iterable[Tensor], classifier: Classifier, batch_size: int = 8, device: str | torch.device = "cpu"
) -> np.ndarray:
    """(N, K) float64 probabilities of uint8 (F, H, W, 3) clips (batched by equal shape)."""
    rows = [softmax64(classifier(batch.to(device))) for batch in batched(clips, batch_size, prepare_clip)]
    if not rows:
        raise T2VError("no clips to classify")
    return np.concatenate(rows)


def video_inception_score(
    clips: Iterable[Tensor], classifier: Classifier, config: ISConfig = ISConfig(), device: str | torch.device = "cpu"
) -> tuple[float, float, int]:
    """(IS mean, IS std, number of clips) of a stream of uint8 (F, H, W, 3) clips."""
    probs = class_probabilities(clips, classifier, config.batch_size, device)
    mean, std = inception_score(probs, config.splits, config.shuffle_seed)
    return mean, std, probs.shape[0]
