"""The model parts a training stage needs, built from its config: U-Net, text encoder, tokenizer,
optional VAE, training noise schedule, and which parameters train.

Stages (DESIGN.md "One mechanism, four papers"):
  image  a 2D diffusers `UNet2DConditionModel` (loaded or built fresh), all of it trains;
  video  a 2D U-Net inflated with a recipe (or a VideoUNet continued); the recipe's parameters
         train (`model.train: all` trains everything); vdm without a pretrained U-Net is VDM from
         scratch (Ho et al. 2022);
  tune   a Stable Diffusion U-Net inflated with `tune-a-video`; what Tune-A-Video trains (Wu et al.
         2023), optionally peft LoRA on the spatial `to_q`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerBase

from t2v.diffusion.loss import PREDICTION_TYPES
from t2v.diffusion.schedulers import SD_NOISE_SCHEDULE
from t2v.errors import T2VError
from t2v.models import Recipe, VideoUNet, get_recipe, inflate, load_unet2d, load_video_unet
from t2v.models.tokenizer import clip_tokenizer, load_tokenizer
from t2v.training.config import RecipeOptions, TrainConfig

CLIP_VOCAB = 49408
CLIP_POSITIONS = 77
CLIP_BOS, CLIP_EOS = 49406, 49407


@dataclass
class Parts:
    """What the loop trains and conditions on.

    unet: `UNet2DConditionModel` (image stage) or `VideoUNet`; trainable: name -> parameter of
    everything the optimizer updates (names prefixed `unet.` / `text_encoder.`); schedule: the
    noise-schedule config (a dict) the DDPM training scheduler was made from.
    """

    unet: nn.Module
    text_encoder: CLIPTextModel
    tokenizer: PreTrainedTokenizerBase
    vae: Optional[AutoencoderKL]
    noise_scheduler: DDPMScheduler
    schedule: dict[str, Any]
    trainable: dict[str, nn.Parameter]
    index: dict[str, Any]  # model_index.json of the pretrained folder ({} if none)
    vae_folder: Optional[Path] = None  # a TemporalAutoencoder folder `vae` is the image VAE of (copied on export)

    @property
    def is_video(self) -> bool:
        return isinstance(self.unet, VideoUNet)


def config_class_name(config_file: Path) -> Optional[str]:
    try:
        return json.loads(config_file.read_text()).get("_class_name")
    except (OSError, json.JSONDecodeError, AttributeError):
        raise T2VError(f"{config_file} is not readable JSON; expected a diffusers config") from None


def _pretrained(config: TrainConfig) -> Optional[Path]:
    if config.model.pretrained is None:
        return None
    path = Path(config.model.pretrained)
    if not path.is_dir():
        raise T2VError(f"model.pretrained {path} is not a folder; give a model folder (unet/, text_encoder/, scheduler/, ...)")
    return path


# ------------------------------------------------------------------------------------------------
# each part
# ------------------------------------------------------------------------------------------------
def _text_encoder(config: TrainConfig, pre: Optional[Path]) -> CLIPTextModel:
    """The pretrained folder's CLIPTextModel, or a fresh one from `model.text_encoder`."""
    has = pre is not None and (pre / "text_encoder" / "config.json").is_file()
    if has and config.model.text_encoder is not None:
        raise T2VError(f"model.text_encoder is set but {pre}/text_encoder exists; remove one of them")
    if has:
        return CLIPTextModel.from_pretrained(pre / "text_encoder")
    t = config.model.text_encoder
    if t is None:
        where = f"{pre} has no text_encoder/" if pre is not None else "model.pretrained is null"
        raise T2VError(f"no text encoder: {where}; set model.text_encoder (hidden_size, ...) to build one")
    if not 2 <= t.max_length <= CLIP_POSITIONS:
        raise T2VError(f"model.text_encoder.max_length must be between 2 and {CLIP_POSITIONS}; got {t.max_length}")
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=CLIP_VOCAB, max_position_embeddings=t.max_length, hidden_size=t.hidden_size,
        intermediate_size=t.intermediate_size, num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads, projection_dim=t.hidden_size,
        bos_token_id=CLIP_BOS, eos_token_id=CLIP_EOS, pad_token_id=CLIP_EOS,  # CLIP's <|startoftext|>, <|endoftext|>
    ))


VAE_CLASSES = ("AutoencoderKL", "TemporalAutoencoder")


def find_vae(folder: Path) -> Optional[tuple[Path, str]]:
    """`folder`/vae or else `folder` itself, whichever config.json names an AutoencoderKL or a
    TemporalAutoencoder first: (that folder, the class name); None when neither does."""
    for cand in (folder / "vae", folder):
        cfg = cand / "config.json"
        name = config_class_name(cfg) if cfg.is_file() else None
        if name in VAE_CLASSES:
            return cand, name
    return None


def _image_vae(folder: Path, name: str) -> tuple[AutoencoderKL, Optional[Path]]:
    """(the AutoencoderKL in `folder`, None), or for a TemporalAutoencoder folder (its image VAE, `folder`):
    the same encoder and its 2D decoder weights (a U-Net trains on the encoder's latents; the folder is
    copied into the trained model as it is)."""
    if name == "AutoencoderKL":
        return AutoencoderKL.from_pretrained(folder), None
    from t2v.models.temporal_vae import TemporalAutoencoder

    return TemporalAutoencoder.from_pretrained(folder).to_vae(), folder


def _vae(config: TrainConfig, pre: Optional[Path]) -> tuple[Optional[AutoencoderKL], Optional[Path]]:
    if config.model.vae is not None:
        found = find_vae(Path(config.model.vae))
        if found is None:
            raise T2VError(f"model.vae {config.model.vae} holds no AutoencoderKL or TemporalAutoencoder (config.json + "
                           "weights, or vae/ inside); fix the path or set it to null")
    else:
        found = find_vae(pre / "vae") if pre is not None else None  # a pretrained folder's own vae/ only
    return _image_vae(*found) if found is not None else (None, None)


def _unet(config: TrainConfig, pre: Optional[Path], in_channels: int, text_width: int) -> nn.Module:
    cfg = pre / "unet" / "config.json" if pre is not None else None
    has = cfg is not None and cfg.is_file()
    if has and config.model.unet is not None:
        raise T2VError(f"model.unet is set but {pre}/unet exists; remove one of them")
    if has:
        name = config_class_name(cfg)
        unet = load_video_unet(pre) if name == "VideoUNet" else load_unet2d(pre)
    else:
        u = config.model.unet
        if u is None:
            where = f"{pre} has no unet/" if pre is not None else "model.pretrained is null"
            raise T2VError(f"no U-Net: {where}; set model.unet (sample_size, block_out_channels, ...) to build one")
        unet = UNet2DConditionModel(
            in_channels=in_channels, out_channels=in_channels, sample_size=u.sample_size,
            block_out_channels=u.block_out_channels, layers_per_block=u.layers_per_block,
            down_block_types=u.down_block_types, up_block_types=u.up_block_types,
            attention_head_dim=u.attention_head_dim, norm_num_groups=u.norm_num_groups,
            cross_attention_dim=text_width,
        )
    if unet.config.in_channels != in_channels:
        space = "the VAE's latents" if in_channels != 3 else "pixels (no VAE)"
        raise T2VError(f"the U-Net takes {unet.config.in_channels} channels but trains on {space} with {in_channels}; set model.vae to match")
    if unet.config.cross_attention_dim != text_width:
        raise T2VError(f"the U-Net attends to {unet.config.cross_attention_dim}-wide text but the text encoder is {text_width} wide")

    recipe = config.model.recipe
    if config.stage == "image":
        if isinstance(unet, VideoUNet):
            raise T2VError(f"the image stage trains a 2D U-Net but {pre}/unet holds a VideoUNet; use the video stage")
        return unet
    if isinstance(unet, VideoUNet):
        if unet.recipe.name != get_recipe(recipe).name:
            raise T2VError(f"{pre}/unet was inflated with {unet.recipe.name!r}, not model.recipe {recipe!r}; start from its 2D folder or set model.recipe {unet.recipe.name}")
        return with_recipe_options(unet, config.model.recipe_options, pre)
    return inflate(unet, recipe_with_options(recipe, config.model.recipe_options))


def with_recipe_options(unet: VideoUNet, options: Optional[RecipeOptions], where: Optional[Path]) -> VideoUNet:
    """A trained video U-Net with `model.recipe_options` applied on top of its own recipe: unchanged when
    they change nothing; otherwise the same U-Net rebuilt with the new recipe and every trained weight
    copied, so options that only add layers (new ones start as built, e.g. as the identity) continue a
    trained model. Options that would drop or reshape trained weights are refused."""
    new = recipe_with_options(unet.recipe, options)
    if new == unet.recipe:
        return unet
    rebuilt = VideoUNet.from_config({**unet.config, "recipe_spec": new.to_dict()})
    if rebuilt.dtype != unet.dtype:
        rebuilt = rebuilt.to(unet.dtype)
    old_state, new_state = unet.state_dict(), rebuilt.state_dict()
    dropped = sorted(k for k in old_state if k not in new_state or new_state[k].shape != old_state[k].shape)
    if dropped:
        raise T2VError(
            f"model.recipe_options would drop or reshape {len(dropped)} trained weights of {where}/unet (e.g. {dropped[0]}); "
            "options may only add layers to a trained video U-Net: start from its 2D folder to change the others"
        )
    rebuilt.load_state_dict(old_state, strict=False)
    return rebuilt


def recipe_with_options(name: "str | Recipe", options: Optional[RecipeOptions]) -> Recipe:
    """The named recipe (or `name` itself, a Recipe) with the set fields of `model.recipe_options` replaced."""
    rec = get_recipe(name)
    if options is None:
        return rec
    changes = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if getattr(options, f.name) is not None}
    kernel = changes.get("resblock_kernel")
    if kernel is not None and (len(kernel) != 3 or any(k < 1 or k % 2 == 0 for k in kernel)):
        raise T2VError(f"model.recipe_options.resblock_kernel must be three odd sizes (frames, height, width), e.g. [3, 3, 3]; got {list(kernel)}")
    return dataclasses.replace(rec, **changes)


def noise_schedule(config: TrainConfig, pre: Optional[Path]) -> dict[str, Any]:
    """The pretrained folder's scheduler config (or SD v1's schedule), with the set `diffusion` fields."""
    if pre is not None and (pre / "scheduler" / "scheduler_config.json").is_file():
        base = dict(DDPMScheduler.load_config(pre / "scheduler"))
    else:
        base = dict(SD_NOISE_SCHEDULE)
    d = config.diffusion
    for key in ("prediction_type", "num_train_timesteps", "beta_schedule", "beta_start", "beta_end"):
        if getattr(d, key) is not None:
            base[key] = getattr(d, key)
    if base.get("prediction_type", "epsilon") not in PREDICTION_TYPES:
        raise T2VError(f"diffusion.prediction_type must be one of {', '.join(PREDICTION_TYPES)}; got {base['prediction_type']!r}")
    if d.snr_gamma is not None and d.snr_gamma <= 0:
        raise T2VError(f"diffusion.snr_gamma must be positive (5 is the paper's choice); got {d.snr_gamma}")
    return {k: v for k, v in base.items() if not k.startswith("_")}


# ------------------------------------------------------------------------------------------------
def build_parts(config: TrainConfig) -> Parts:
    """Load or build every part, inflate for the video/tune stages and mark what trains.

    Fresh modules draw their weights from torch's global RNG: seed it first for reproducible runs.
    """
    pre = _pretrained(config)
    text_encoder = _text_encoder(config, pre)
    tokenizer = load_tokenizer(pre) if pre is not None else clip_tokenizer()
    if config.model.text_encoder is not None and tokenizer.model_max_length != config.model.text_encoder.max_length:
        tokenizer = copy.deepcopy(tokenizer)  # the built-in one is cached: never modify it in place
        tokenizer.model_max_length = config.model.text_encoder.max_length
    vae, vae_folder = _vae(config, pre)
    channels = vae.config.latent_channels if vae is not None else 3
    unet = _unet(config, pre, channels, text_encoder.config.hidden_size)
    if config.stage == "tune" and config.model.lora_rank is not None:
        from t2v.pipelines.tune_a_video import add_lora

        add_lora(unet, config.model.lora_rank)

    # What trains.
    unet.requires_grad_(False)
    if config.stage == "image" or config.model.train == "all":
        if config.stage == "tune":
            raise T2VError("the tune stage trains what Tune-A-Video trains; set model.train: recipe")
        unet.requires_grad_(True)
        chosen = dict(unet.named_parameters())
    elif config.stage == "tune":
        from t2v.pipelines.tune_a_video import tuned_parameters

        chosen = tuned_parameters(unet)
    else:
        chosen = unet.trainable_parameters()
    for p in chosen.values():
        p.requires_grad_(True)
    trainable = {f"unet.{n}": p for n, p in chosen.items()}
    text_encoder.requires_grad_(config.model.train_text_encoder)
    if config.model.train_text_encoder:
        trainable.update({f"text_encoder.{n}": p for n, p in text_encoder.named_parameters()})
    if vae is not None:
        vae.requires_grad_(False).eval()
    if not trainable:
        raise T2VError("nothing to train: the recipe selects no parameter of this U-Net")

    if config.model.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if config.model.train_text_encoder:
            text_encoder.gradient_checkpointing_enable()

    schedule = noise_schedule(config, pre)
    index = {}
    if pre is not None and (pre / "model_index.json").is_file():
        try:
            index = json.loads((pre / "model_index.json").read_text())
        except json.JSONDecodeError:
            index = {}
    return Parts(unet, text_encoder, tokenizer, vae, DDPMScheduler.from_config(schedule), schedule, trainable, index,
                 vae_folder)


def vae_factor(vae: Optional[AutoencoderKL]) -> int:
    """Pixels per latent pixel along each side (1 without a VAE)."""
    return 1 if vae is None else 2 ** (len(vae.config.block_out_channels) - 1)


def latent_scale(vae: AutoencoderKL) -> tuple[float, float]:
    """(scaling_factor, shift_factor) of a VAE's latents (Rombach et al. 2022's 0.18215 for SD)."""
    return float(vae.config.scaling_factor), float(vae.config.get("shift_factor") or 0.0)


@torch.no_grad()
def encode_pixels(vae: Optional[AutoencoderKL], video: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Pixels (B, 3, F, H, W) in [-1, 1] -> what the U-Net denoises (B, C, F, h, w).

    Latent models: a sample of the VAE posterior (drawn with `generator`), shifted and scaled.
    """
    if vae is None:
        return video
    from einops import rearrange

    b = video.shape[0]
    frames = rearrange(video, "b c f h w -> (b f) c h w").to(dtype=vae.dtype)
    z = vae.encode(frames).latent_dist.sample(generator=generator)  # (B*F, C, h, w)
    scale, shift = latent_scale(vae)
    z = (z.float() - shift) * scale
    # Contiguous: the VAE returns channels-last-strided latents, and a video-ldm VideoUNet's backward on
    # such an input segfaults in torch 2.13 on CPU (reported; the loop never feeds it one).
    return rearrange(z, "(b f) c h w -> b c f h w", b=b).contiguous()
