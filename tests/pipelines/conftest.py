"""Fixtures for the pipeline tests: tiny SD folders (latent and pixel), an inflated video model,
a small generated clip, and a Tune-A-Video tuned folder with perturbed (\"tuned\") parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_helpers import make_record, moving_blob, perturb_
from sd_fixture import make_tiny_sd


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine spinning
    OpenMP threads made these tests ~6x slower (measured 275 s vs 42 s under load); restored after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    """Latent tiny SD folder: 4-channel 8x8 latents, VAE factor 2 (16x16 pixels), 2D U-Net."""
    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="session")
def video_model(tiny_sd, tmp_path_factory) -> Path:
    """The tiny SD folder inflated with Make-A-Video (temporal convs + attention + fps)."""
    from t2v.models import inflate_folder

    return inflate_folder(tiny_sd, "make-a-video", tmp_path_factory.mktemp("vm") / "video")


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory) -> Path:
    from t2v.data.video_io import write_video

    # PNG frames, not H.264: libx264's output varies from run to run (threads), PNG is exact.
    return write_video(tmp_path_factory.mktemp("clip") / "blob_frames", moving_blob(), 8)


@pytest.fixture(scope="session")
def sampling():
    from t2v.data.sampling import FrameSampling

    return FrameSampling(num_frames=4, height=16, width=16, sample_stride=2, start=0)


@pytest.fixture(scope="session")
def tuned_dir(tiny_sd, clip_path, sampling, tmp_path_factory) -> Path:
    """A tuned folder: the tiny SD inflated with tune-a-video, its trainable parameters perturbed."""
    from t2v.models import inflate, load_unet2d
    from t2v.pipelines.tune_a_video import save_tuned

    unet = inflate(load_unet2d(tiny_sd), "tune-a-video")
    perturb_(unet.trainable_parameters())
    return save_tuned(tmp_path_factory.mktemp("tuned") / "tuned", unet, record=make_record(tiny_sd, clip_path, sampling))
