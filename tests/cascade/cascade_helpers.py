"""Tiny random-weight cascade parts for the tests."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL

from t2v.models.cascade_unet import CascadeUNet
from t2v.models.temporal_vae import TemporalAutoencoder
from t2v.pipelines.cascade import save_stage
from t2v.training.cascade import PIXEL_SCHEDULE

TINY = dict(block_out_channels=(8, 16), norm_num_groups=4, sample_size=16)


def tiny_unet(task: str, seed: int = 0, randomize_zero_init: bool = True) -> CascadeUNet:
    """A CascadeUNet of ~20k parameters; zero-initialised layers get random values so that every input matters."""
    torch.manual_seed(seed)
    unet = CascadeUNet(task=task, level_embedding=task == "upscale", **TINY)
    if randomize_zero_init:
        with torch.no_grad():
            for p in unet.parameters():
                if p.abs().max() == 0:
                    p.normal_(0, 0.05)
    return unet.eval()


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                         layers_per_block=1, mid_block_add_attention=False).eval()


def make_stage_dirs(root: Path) -> Path:
    save_stage(root / "interpolate", tiny_unet("interpolate"), dict(PIXEL_SCHEDULE), {"steps": 2})
    save_stage(root / "upscale", tiny_unet("upscale", seed=1), dict(PIXEL_SCHEDULE), {"steps": 2})
    TemporalAutoencoder.from_vae(tiny_vae()).save_pretrained(root / "vae_temporal")
    return root
