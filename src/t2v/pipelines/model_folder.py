"""Read a t2v model folder, the diffusers layout, part by part, with one clear error per bad part.

```
MODEL/
  model_index.json      (optional; written by diffusers / `t2v inflate`)
  unet/                 VideoUNet (config.json + safetensors); a 2D UNet2DConditionModel only
                        when the caller names a recipe to inflate it with (Tune-A-Video bases)
  text_encoder/         transformers CLIPTextModel
  tokenizer/            CLIPTokenizer files; absent or empty = the built-in offline CLIP tokenizer
  scheduler/            scheduler_config.json: the noise schedule (and prediction_type)
  vae/                  AutoencoderKL for latent models, or a TemporalAutoencoder (the same AutoencoderKL with
                        Video LDM's temporal decoder layers); absent = the U-Net works on pixels (3 channels)
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Union

import torch

from t2v.errors import T2VError

# Where the embedded default model lives (package data, shipped by a later issue).
DEFAULT_MODEL = "default_model"

_UNET_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                 "diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.bin.index.json")
_TEXT_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                 "pytorch_model.bin.index.json")
# Scheduler class in scheduler_config.json -> the sampler name `make_scheduler` knows.
_SAMPLER_OF_CLASS = {
    "DDIMScheduler": "ddim",
    "DPMSolverMultistepScheduler": "dpm++",
    "EulerDiscreteScheduler": "euler",
    "DDPMScheduler": "ddpm",
}


@dataclass
class ModelParts:
    """The loaded parts of a model folder (see the module docstring)."""

    path: Path
    unet: Any  # t2v.models.VideoUNet
    text_encoder: Any  # transformers CLIPTextModel
    tokenizer: Any  # transformers CLIPTokenizer
    scheduler_config: dict[str, Any]
    default_sampler: str  # the sampler named by scheduler_config.json's class (ddim if unknown)
    vae: Optional[Any] = None  # diffusers AutoencoderKL or t2v TemporalAutoencoder, None for pixel-space models


def default_model_dir() -> Path:
    """The embedded default model folder (`t2v/assets/default_model`), or a T2VError if none is installed."""
    path = Path(str(resources.files("t2v.assets").joinpath(DEFAULT_MODEL)))
    if not (path / "unet").is_dir():
        raise T2VError(
            "no default model is installed in this version of t2v; pass --model DIR "
            "(a model folder with unet/, text_encoder/, scheduler/ and, for latent models, vae/)"
        )
    return path


def _read_config(cfg: Path, part: str, expected: str) -> dict[str, Any]:
    try:
        data = json.loads(cfg.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise T2VError(f"{part}: {cfg} is not readable JSON ({type(exc).__name__}); expected {expected}") from None
    if not isinstance(data, dict):
        raise T2VError(f"{part}: {cfg} is not a JSON object; expected {expected}")
    return data


def _part_dir(folder: Path, part: str, config_name: str, expected: str) -> tuple[Path, dict[str, Any]]:
    """`folder/part` and its parsed config file; a missing folder or config is a one-line error."""
    d = folder / part
    if not d.is_dir():
        raise T2VError(f"model folder {folder} has no {part}/ part; expected {expected}")
    cfg = d / config_name
    if not cfg.is_file():
        raise T2VError(f"{part}: {d} has no {config_name}; expected {expected}")
    return d, _read_config(cfg, part, expected)


def _has_weights(d: Path, names: tuple[str, ...]) -> bool:
    return any((d / n).is_file() for n in names)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_unet(folder: Path, inflate_recipe: Optional[str]) -> Any:
    from t2v.models import inflate, load_unet2d, load_video_unet

    expected = "a VideoUNet (config.json + diffusion_pytorch_model.safetensors, e.g. from `t2v inflate`)"
    d, cfg = _part_dir(folder, "unet", "config.json", expected)
    cls = cfg.get("_class_name")
    if not _has_weights(d, _UNET_WEIGHTS):
        raise T2VError(f"unet: {d} has no weights; expected {expected}")
    if cls == "VideoUNet":
        unet = load_video_unet(folder)
    elif cls == "UNet2DConditionModel" and inflate_recipe is not None:
        unet = inflate(load_unet2d(folder), inflate_recipe)
    elif cls == "UNet2DConditionModel":
        raise T2VError(
            f"unet: {d} holds a 2D UNet2DConditionModel; expected a VideoUNet: run "
            f"`t2v inflate --from {folder} --recipe RECIPE --out DIR` and pass DIR"
        )
    else:
        raise T2VError(f"unet: {d}/config.json names {cls or 'no _class_name'}; expected {expected}")
    if unet.config.in_channels != unet.config.out_channels:
        raise T2VError(
            f"unet: {d} maps {unet.config.in_channels} to {unet.config.out_channels} channels; "
            "expected a denoiser with as many output channels as input channels"
        )
    return unet.eval()


def _load_text_encoder(folder: Path) -> Any:
    from transformers import CLIPTextModel
    from transformers.utils import logging as hf_logging

    expected = "a transformers CLIPTextModel (config.json with model_type clip_text_model + model.safetensors)"
    d, cfg = _part_dir(folder, "text_encoder", "config.json", expected)
    if cfg.get("model_type") not in ("clip_text_model", "clip"):
        raise T2VError(f"text_encoder: {d}/config.json has model_type {cfg.get('model_type')!r}; expected {expected}")
    if not _has_weights(d, _TEXT_WEIGHTS):
        raise T2VError(f"text_encoder: {d} has no weights; expected {expected}")
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar is noise before a one-line error
    try:
        return CLIPTextModel.from_pretrained(d).eval()
    except Exception as exc:  # transformers raises OSError/ValueError/RuntimeError on broken files
        raise T2VError(f"text_encoder: cannot load {d} ({_first_line(exc)}); expected {expected}") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _load_scheduler_config(folder: Path) -> tuple[dict[str, Any], str]:
    from t2v.diffusion.schedulers import scheduler_config

    expected = "a diffusers scheduler_config.json (the model's noise schedule)"
    d, cfg = _part_dir(folder, "scheduler", "scheduler_config.json", expected)
    config = scheduler_config(d)
    pred = config.get("prediction_type", "epsilon")
    if pred not in ("epsilon", "v_prediction", "sample"):
        raise T2VError(
            f"scheduler: {d}/scheduler_config.json has prediction_type {pred!r}; expected epsilon, v_prediction or sample"
        )
    return config, _SAMPLER_OF_CLASS.get(cfg.get("_class_name", ""), "ddim")


def _image_part(cfg: dict[str, Any]) -> dict[str, Any]:
    """The image autoencoder's part of a vae/config.json: a TemporalAutoencoder's `vae_config`, else itself."""
    inner = cfg.get("vae_config") if cfg.get("_class_name") == "TemporalAutoencoder" else cfg
    return inner if isinstance(inner, dict) else {}


def read_image_vae_config(folder: Path) -> dict[str, Any]:
    """The image autoencoder's config in `folder`/vae/config.json, read without loading weights (a
    TemporalAutoencoder's `vae_config`); {} when there is none (pixel-space models). For a loaded
    module, `t2v.models.temporal_vae.image_vae_config`."""
    path = folder / "vae" / "config.json"
    if not path.is_file():
        return {}
    return _image_part(_read_config(path, "vae", "an AutoencoderKL or a TemporalAutoencoder config"))


def folder_vae_factor(folder: Path) -> int:
    """Pixels per latent pixel along each side of `folder`'s VAE (1 without one), from its config alone."""
    return 2 ** (len(read_image_vae_config(folder).get("block_out_channels", [0])) - 1)


def _load_vae(folder: Path, latent_channels: int) -> Optional[Any]:
    from diffusers import AutoencoderKL

    from t2v.models.temporal_vae import TemporalAutoencoder

    expected = "an AutoencoderKL or a TemporalAutoencoder (config.json + diffusion_pytorch_model.safetensors)"
    if not (folder / "vae").exists():
        if latent_channels != 3:
            raise T2VError(
                f"model folder {folder} has no vae/ part but its U-Net works on {latent_channels}-channel latents; "
                f"expected vae/ with {expected}"
            )
        return None  # a pixel-space model
    d, cfg = _part_dir(folder, "vae", "config.json", expected)
    cls = {"AutoencoderKL": AutoencoderKL, "TemporalAutoencoder": TemporalAutoencoder}.get(cfg.get("_class_name"))
    if cls is None:
        raise T2VError(f"vae: {d}/config.json names {cfg.get('_class_name') or 'no _class_name'}; expected {expected}")
    if not _has_weights(d, _UNET_WEIGHTS):
        raise T2VError(f"vae: {d} has no weights; expected {expected}")
    channels = _image_part(cfg).get("latent_channels")
    if channels != latent_channels:
        raise T2VError(
            f"vae: {d} has {channels} latent channels but the U-Net takes {latent_channels}; "
            "expected the VAE the U-Net was trained with"
        )
    try:
        return cls.from_pretrained(d).eval()
    except Exception as exc:  # diffusers raises OSError/ValueError/RuntimeError on broken files
        raise T2VError(f"vae: cannot load {d} ({_first_line(exc)}); expected {expected}") from None


def load_model_folder(
    folder: Union[str, Path, None] = None,
    *,
    inflate_recipe: Optional[str] = None,
    device: Union[str, torch.device, None] = None,
    dtype: Optional[torch.dtype] = None,
) -> ModelParts:
    """Load every part of a model folder (None: the embedded default model).

    `inflate_recipe`: when `unet/` holds a 2D `UNet2DConditionModel` (a Stable Diffusion folder),
    inflate it with this recipe instead of refusing it. Each missing or wrong part raises a
    one-line T2VError naming the part and what was expected.
    """
    from t2v.models.tokenizer import load_tokenizer

    folder = default_model_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        raise T2VError(f"model folder {folder} does not exist; pass a folder with unet/, text_encoder/ and scheduler/")
    unet = _load_unet(folder, inflate_recipe)
    text_encoder = _load_text_encoder(folder)
    width = text_encoder.config.hidden_size
    if unet.config.cross_attention_dim != width:
        raise T2VError(
            f"text_encoder: {folder}/text_encoder is {width} wide but the U-Net attends to "
            f"{unet.config.cross_attention_dim}-wide text; expected the text encoder the U-Net was trained with"
        )
    tokenizer = load_tokenizer(folder)
    config, sampler = _load_scheduler_config(folder)
    vae = _load_vae(folder, unet.config.in_channels)
    kwargs = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
    for m in (unet, text_encoder, vae):
        if m is not None:
            m.requires_grad_(False)
            if kwargs:
                m.to(**kwargs)
    return ModelParts(folder, unet, text_encoder, tokenizer, config, sampler, vae)
