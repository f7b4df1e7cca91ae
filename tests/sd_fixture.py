"""A tiny Stable-Diffusion-shaped folder with random weights, for tests (nothing is downloaded).

`make_tiny_sd(path)` writes what `diffusers` writes for Stable Diffusion, at toy sizes:
unet/ (UNet2DConditionModel, safetensors), text_encoder/ (transformers CLIPTextModel, vocab 49408,
hidden 32), tokenizer/ (CLIP's, from the offline vocabulary), scheduler/ (DDIMScheduler),
vae/ (AutoencoderKL, when `latent`), model_index.json.
Weights come from torch's global RNG after `torch.manual_seed(seed)`, so the folder is reproducible.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_UNET = dict(
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=8,
    norm_num_groups=8,
)


def make_tiny_sd(path: Path, *, latent: bool = True, seed: int = 0, prediction_type: str = "epsilon") -> Path:
    """Write a tiny SD-shaped folder at `path` and return it.

    latent=True: 4-channel 8x8 latents and a VAE that downsamples by 2 (16x16 pixels), its
    scaling_factor chosen for unit-variance latents; latent=False:
    the U-Net works on 3-channel 32x32 pixels and there is no vae/. `prediction_type` goes into the
    scheduler config (epsilon or v_prediction).
    """
    import diffusers
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from t2v.models.tokenizer import clip_tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    channels, size = (4, 8) if latent else (3, 32)
    UNet2DConditionModel(in_channels=channels, out_channels=channels, sample_size=size, **TINY_UNET).save_pretrained(
        path / "unet", safe_serialization=True
    )
    CLIPTextModel(
        CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                       num_attention_heads=4, max_position_embeddings=77, projection_dim=32)
    ).save_pretrained(path / "text_encoder", safe_serialization=True)
    DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                  set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type).save_pretrained(path / "scheduler")
    clip_tokenizer().save_pretrained(path / "tokenizer")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
    }
    if latent:
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            norm_num_groups=8, sample_size=64,
        )
        # Like SD's 0.18215 (Rombach et al. 2022): scale latents to unit variance, here measured on
        # smooth test patterns, so that the noise schedule means what it means for SD.
        y, x = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
        patterns = torch.stack([torch.stack([torch.sin(3 * k * x), torch.cos(2 * k * y), x * y]) for k in (1, 2, 3, 4)])
        with torch.no_grad():
            std = vae.encode(patterns).latent_dist.mean.std().item()  # patterns: (4, 3, 16, 16)
        vae.register_to_config(scaling_factor=round(1.0 / std, 4))
        vae.save_pretrained(path / "vae", safe_serialization=True)
        index["vae"] = ["diffusers", "AutoencoderKL"]
    (path / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return path
