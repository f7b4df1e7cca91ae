"""FVD: preprocessing of the common implementations, streaming, and the distance on I3D features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t2v.metrics.frechet import frechet_distance
from t2v.metrics.fvd import FVDConfig, feature_statistics, frechet_video_distance, i3d_extractor, preprocess_clip
from t2v.models.i3d import I3D

CFG = FVDConfig(frames=8, size=32, batch_size=3)


@pytest.fixture
def i3d(random_i3d) -> I3D:
    return random_i3d


@pytest.fixture
def clips(square_video):
    return lambda seeds: [torch.from_numpy(square_video(s, 8, (24, 40))) for s in seeds]


def test_values_go_to_minus_one_one_and_squash_shape():
    clip = torch.zeros(4, 30, 50, 3, dtype=torch.uint8)
    clip[2:] = 255
    x = preprocess_clip(clip, size=32, resize="squash")
    assert x.shape == (3, 4, 32, 32)
    assert torch.equal(x[:, :2], torch.full((3, 2, 32, 32), -1.0)) and torch.equal(x[:, 2:], torch.ones(3, 2, 32, 32))


def test_center_crop_keeps_the_middle_and_squash_keeps_everything():
    # 32x64 frames: black left quarter, white right quarter, grey (128) middle half.
    clip = torch.full((2, 32, 64, 3), 128, dtype=torch.uint8)
    clip[:, :, :16] = 0
    clip[:, :, 48:] = 255
    crop = preprocess_clip(clip, size=16, resize="center_crop")  # short side 32 -> 16: 16x32, then columns 8:24
    assert crop.shape == (3, 2, 16, 16)
    torch.testing.assert_close(crop, torch.full_like(crop, 128 / 127.5 - 1))
    squash = preprocess_clip(clip, size=16, resize="squash")
    assert squash.min() == -1 and squash.max() == 1
    # portrait frames: the short side is the width
    assert preprocess_clip(torch.zeros(1, 50, 20, 3, dtype=torch.uint8), 16, "center_crop").shape == (3, 1, 16, 16)


def test_fvd_equals_frechet_of_per_clip_features(i3d, clips):
    real, fake = clips(range(7)), clips(range(100, 106))
    result = frechet_video_distance(iter(real), iter(fake), i3d_extractor(i3d), CFG)

    def naive(clips):  # one clip at a time, statistics by numpy
        with torch.no_grad():
            f = np.stack([i3d(preprocess_clip(c, 32)[None]).double().numpy()[0] for c in clips])
        return f.mean(0), np.cov(f, rowvar=False)

    (m1, s1), (m2, s2) = naive(real), naive(fake)
    ref = frechet_distance(m1, s1, m2, s2)
    assert (result.n_real, result.n_fake) == (7, 6)
    assert ref > 0 and abs(result.fvd - ref) / ref < 1e-4


def _projection(dim: int = 40):
    """A cheap stand-in extractor: a fixed random projection of 4x4-pooled frames."""
    w = torch.randn(3 * 8 * 4 * 4, dim, generator=torch.Generator().manual_seed(0))
    return lambda x: torch.nn.functional.adaptive_avg_pool3d(x, (8, 4, 4)).flatten(1) @ w


def test_fvd_zero_for_the_same_set_and_symmetric(clips):
    a, b = clips(range(12)), clips(range(50, 61))
    ext = _projection()
    same = frechet_video_distance(iter(a), iter(a), ext, CFG)
    stats = feature_statistics(iter(a), ext, CFG)
    assert abs(same.fvd) < 1e-8 * np.trace(stats.covariance())
    ab = frechet_video_distance(iter(a), iter(b), ext, CFG).fvd
    ba = frechet_video_distance(iter(b), iter(a), ext, CFG).fvd
    assert ab > 0 and abs(ab - ba) / ab < 1e-9


def test_clips_are_streamed_not_held(clips):
    # The extractor sees batches while the generator is still producing: at most one batch is alive.
    produced = []

    def gen():
        for i, c in enumerate(clips(range(11))):
            produced.append(i)
            yield c

    in_flight = []

    def extractor(x):
        in_flight.append(len(produced) - sum(b for b in batch_sizes))
        batch_sizes.append(x.shape[0])
        return project(x)

    batch_sizes: list[int] = []
    project = _projection()
    stats = feature_statistics(gen(), extractor, CFG)
    assert stats.n == 11 and batch_sizes == [3, 3, 3, 2]
    assert max(in_flight) <= CFG.batch_size + 1
