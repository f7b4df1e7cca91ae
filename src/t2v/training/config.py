"""Training configuration: frozen typed dataclasses that YAML presets (`configs/*.yaml`) map onto
field for field.

A preset is plain values only (no class paths): sections `model`, `data`, `diffusion`, `optim`,
`ema`, `checkpoint`, `logging` and the top-level `stage`, `seed`, `max_steps`, `output_dir`,
`mixed_precision`, `gradient_accumulation`. `--set key.sub=value` overrides are YAML values applied
to the same tree before it is checked. An unknown key is a one-line `T2VError` naming the nearest
valid key (difflib).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from t2v.errors import T2VError

STAGES = ("image", "video", "tune", "interpolate", "upscale", "vae-decoder")
CASCADE_STAGES = ("interpolate", "upscale", "vae-decoder")  # trained by t2v.training.cascade
DECODER_TRAIN_SETS = ("temporal", "decoder")
MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULES = ("constant", "linear", "cosine")  # diffusers.optimization.get_scheduler names (with warmup)
TRAIN_SETS = ("recipe", "all")


@dataclass(frozen=True)
class UNetConfig:
    """A fresh diffusers `UNet2DConditionModel` (used when `model.pretrained` has no unet/).

    Channels in/out come from the data (3 for pixels, the VAE's latent channels otherwise) and the
    cross-attention width from the text encoder.
    """

    sample_size: int = 32
    block_out_channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D", "DownBlock2D")
    up_block_types: tuple[str, ...] = ("UpBlock2D", "CrossAttnUpBlock2D")
    attention_head_dim: int = 8
    norm_num_groups: int = 8


@dataclass(frozen=True)
class TextEncoderConfig:
    """A fresh transformers `CLIPTextModel` (CLIP's 49,408-token vocabulary).

    max_length: tokens per prompt (CLIP's 77; ShapesWorld captions fit in 16, which makes
    cross-attention and the encoder ~5x cheaper); saved as the tokenizer's `model_max_length`.
    """

    hidden_size: int = 32
    intermediate_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_length: int = 77


@dataclass(frozen=True)
class RecipeOptions:
    """Changes to the named recipe's layers (t2v.models.Recipe fields); null keeps the recipe's value.

    temporal_cross_attention: temporal attention also attends to the text.
    temporal_frame_positions: temporal attention also sees each frame's place in the clip.
    temporal_resblock_condition: temporal resblocks take the timestep embedding + pooled text.
    temporal_resblock_scale_shift: ... as a scale and shift of their normed activations.
    temporal_space_time_attention: temporal attention over all frames and pixels (3D relative bias, text-gated heads).
    temporal_positions: temporal resblocks and attentions also see each token's (frame, row, column).
    resblock_kernel: the temporal residual blocks' 3D kernel (frames, height, width), e.g. [3, 3, 3].
    temporal_conv_kernel, attention_head_dim, merge_init_alpha, causal_attention: as in `Recipe`.
    """

    temporal_cross_attention: Optional[bool] = None
    temporal_frame_positions: Optional[bool] = None
    temporal_resblock_condition: Optional[bool] = None
    temporal_resblock_scale_shift: Optional[bool] = None
    temporal_space_time_attention: Optional[bool] = None
    temporal_positions: Optional[bool] = None
    resblock_kernel: Optional[tuple[int, ...]] = None
    temporal_conv_kernel: Optional[int] = None
    attention_head_dim: Optional[int] = None
    merge_init_alpha: Optional[float] = None
    causal_attention: Optional[bool] = None


@dataclass(frozen=True)
class ModelConfig:
    """Where each part comes from and what trains.

    pretrained: a model folder (diffusers layout) whose unet/, text_encoder/, tokenizer/, scheduler/
      and vae/ are used where present; `unet` / `text_encoder` build the parts it lacks.
    recipe: video and tune stages: vdm, make-a-video, tune-a-video or video-ldm (a 2D U-Net is
      inflated with it; vdm without `pretrained` is VDM from scratch).
    train: `recipe` (the recipe's parameters; the image stage trains the whole 2D U-Net) or `all`.
    vae: an AutoencoderKL folder (or a model folder with vae/) for latent space; null = the
      pretrained folder's vae/ if any, else pixel space.
    lora_rank: tune stage: peft LoRA of this rank on spatial `to_q` instead of training it fully.
    recipe_options: changes to the recipe's layers when a 2D U-Net is inflated (`RecipeOptions`).
    """

    pretrained: Optional[str] = None
    recipe: Optional[str] = None
    train: str = "recipe"
    unet: Optional[UNetConfig] = None
    text_encoder: Optional[TextEncoderConfig] = None
    train_text_encoder: bool = False
    vae: Optional[str] = None
    gradient_checkpointing: bool = False
    lora_rank: Optional[int] = None
    recipe_options: Optional[RecipeOptions] = None


@dataclass(frozen=True)
class DataConfig:
    """The data set and how clips become samples (t2v.data.FrameSampling).

    dataset: `shapes`, a folder of captioned videos, a manifest .csv/.jsonl, a WebVid .csv, or for
      the tune stage one video file (with `prompt`). The image stage takes one frame per clip.
    image_fraction: video stage: share of samples trained as independent frames with temporal
      layers masked (VDM's joint image-video training).
    caption_dropout: share of captions replaced by "" (classifier-free guidance, Ho & Salimans 2022).
    random_crop: [lo, hi]: each clip is a random window of side lo..hi of the frame, resized (one
      window per clip, so motion is kept; for small data sets). hflip: mirror half the clips (not for
      captions that name left and right). camera_pan: p (with random_crop): the window pans up to p
      times its side across the clip in a random direction (synthetic camera motion).
    """

    dataset: str = "shapes"
    video_root: Optional[str] = None
    shapes_length: int = 10000
    seed: int = 0
    num_frames: int = 8
    height: int = 32
    width: int = 32
    sample_stride: int = 1
    target_fps: Optional[float] = None
    start: Union[str, int] = "random"
    random_crop: Optional[tuple[float, float]] = None
    hflip: bool = False
    camera_pan: Optional[float] = None
    batch_size: int = 8
    num_workers: int = 0
    caption_dropout: float = 0.1
    image_fraction: float = 0.0
    prompt: Optional[str] = None


@dataclass(frozen=True)
class DiffusionConfig:
    """The training noise schedule. null fields keep the pretrained scheduler's value (or Stable
    Diffusion v1's schedule for a fresh model); set fields replace it."""

    prediction_type: Optional[str] = None
    num_train_timesteps: Optional[int] = None
    beta_schedule: Optional[str] = None
    beta_start: Optional[float] = None
    beta_end: Optional[float] = None
    snr_gamma: Optional[float] = None
    # How training timesteps are drawn: uniform (DDPM) or logit_normal (t = T sigmoid(N(mean, std)));
    # logit_mean > 0 trains more at high noise, where a video model decides its motion.
    timestep_distribution: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    # SD3's shift of the drawn noise level toward noise (1 = none); sample with the same shift
    # (model_index.json "t2v_generation": {"timestep_shift": ...}, or --timestep-shift).
    timestep_shift: float = 1.0


@dataclass(frozen=True)
class OptimConfig:
    """AdamW (Loshchilov & Hutter 2019) with linear warmup, then a constant/linear/cosine schedule."""

    lr: float = 1e-4
    weight_decay: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    warmup_steps: int = 0
    schedule: str = "constant"
    max_grad_norm: Optional[float] = 1.0


@dataclass(frozen=True)
class EMAConfig:
    """Exponential moving average of the trained weights (diffusers `EMAModel`): what samples and the
    final model use."""

    enabled: bool = True
    decay: float = 0.999
    update_after_step: int = 0


@dataclass(frozen=True)
class CheckpointConfig:
    """every: steps between checkpoints (0 = none); keep: how many of the last ones stay."""

    every: int = 500
    keep: int = 3


@dataclass(frozen=True)
class LoggingConfig:
    """every: steps between TensorBoard scalars; sample_every: steps between sample videos (0 = none)."""

    every: int = 10
    tensorboard: bool = True
    progress: bool = True
    sample_every: int = 0
    sample_prompts: tuple[str, ...] = ()
    sample_steps: int = 25
    sample_guidance: float = 5.0
    sample_seed: int = 0


@dataclass(frozen=True)
class CascadeConfig:
    """The cascade's stages (docs/cascade.md): `interpolate` and `upscale` train a CascadeUNet from
    scratch on ShapesWorld windows, `vae-decoder` fine-tunes a temporal decoder.

    block_out_channels, layers_per_block, norm_num_groups, resblock_kernel: the CascadeUNet.
    clip_frames: [min, max] frames a ShapesWorld clip is rendered with before a window of
      `data.num_frames` frames is cut (sets the range of motion per frame).
    factors: interpolation factors; each batch draws one (its known frames are 0, k, 2k, ...).
    scale: super-resolution factor; `data.height` is the low resolution. crop: side of the random
      high-resolution crop each sample is cut to (null: whole frames).
    max_noise_level: upscale: augmentation levels are drawn uniformly in [0, this].
    residual: interpolate / upscale: diffuse the clip minus a reference made from the condition (the
      blend of the neighbouring keyframes; the upsampled clip), as SRDiff (Li et al. 2022) does;
      residual_scale: times this factor (the residuals' std is 0.05-0.09 on ShapesWorld; 8 brings
      them near the spread the noise schedule assumes). high_noise_fraction: share of training samples
      at the last timestep (pure noise: the regression of the conditional mean), the rest uniform.
    decoder_kernel: vae-decoder: the temporal residual blocks' 3D kernel. decoder_train: `temporal`
      (temporal layers + merges only) or `decoder` (the whole decoder + temporal layers); the encoder
      is always frozen. adversarial_weight / adversarial_start: weight of the video discriminator's
      hinge loss for the decoder and the step it starts at; disc_channels, disc_lr: the discriminator.
    temporal_weight: weight of an L1 loss on frame differences (recon[t+1] - recon[t] vs the clip's).
    latent_noise: vae-decoder: each clip's latents get Gaussian noise of a std drawn uniformly in
      [0, this] (the diffusion model's scaled latent units) before decoding, so that the decoder also
      learns to decode imperfect latents, as a diffusion model's are (0: clean latents only).
    ssim_weight: interpolate / upscale: weight of 1 - SSIM (`metrics.reconstruction.ssim_loss`) between
      the clip the network's x0 prediction stands for (reference + prediction / residual_scale) and the
      true clip, added to the diffusion MSE; needs diffusion.prediction_type sample. MSE alone trains
      for PSNR, and SSIM weighs errors on dark flat regions far more (Zhao et al. 2017 train image
      restoration with such a term).
    """

    block_out_channels: tuple[int, ...] = (16, 32, 64)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    resblock_kernel: tuple[int, int, int] = (3, 1, 1)
    clip_frames: tuple[int, int] = (15, 57)
    factors: tuple[int, ...] = (2, 4)
    scale: int = 2
    crop: Optional[int] = None
    max_noise_level: float = 0.3
    residual: bool = True
    residual_scale: float = 8.0
    high_noise_fraction: float = 0.0
    decoder_kernel: tuple[int, int, int] = (3, 3, 3)
    decoder_train: str = "decoder"
    adversarial_weight: float = 0.05
    adversarial_start: int = 0
    disc_channels: int = 32
    disc_lr: float = 2e-4
    temporal_weight: float = 0.0
    latent_noise: float = 0.0
    ssim_weight: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """One training run: `stage` picks what the loop builds; everything else is shared."""

    stage: str
    output_dir: str
    seed: int = 0
    max_steps: int = 1000
    mixed_precision: str = "no"
    gradient_accumulation: int = 1
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)

    def __post_init__(self) -> None:
        _check(self)


# ------------------------------------------------------------------------------------------------
# value checks that need several fields
# ------------------------------------------------------------------------------------------------
def _check(c: TrainConfig) -> None:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise T2VError(msg)

    need(c.stage in STAGES, f"stage must be one of {', '.join(STAGES)}; got {c.stage!r}")
    need(c.mixed_precision in MIXED_PRECISION, f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}; got {c.mixed_precision!r}")
    need(c.max_steps >= 1, f"max_steps must be at least 1; got {c.max_steps}")
    need(c.gradient_accumulation >= 1, f"gradient_accumulation must be at least 1; got {c.gradient_accumulation}")
    need(c.model.train in TRAIN_SETS, f"model.train must be one of {', '.join(TRAIN_SETS)}; got {c.model.train!r}")
    need(c.optim.schedule in LR_SCHEDULES, f"optim.schedule must be one of {', '.join(LR_SCHEDULES)}; got {c.optim.schedule!r}")
    need(c.optim.lr > 0, f"optim.lr must be positive; got {c.optim.lr}")
    need(c.optim.warmup_steps >= 0, f"optim.warmup_steps must be >= 0; got {c.optim.warmup_steps}")
    need(0.0 <= c.data.caption_dropout < 1.0, f"data.caption_dropout must be in [0, 1); got {c.data.caption_dropout}")
    need(0.0 <= c.data.image_fraction <= 1.0, f"data.image_fraction must be in [0, 1]; got {c.data.image_fraction}")
    need(c.data.batch_size >= 1, f"data.batch_size must be at least 1; got {c.data.batch_size}")
    rc, cp = c.data.random_crop, c.data.camera_pan
    from t2v.data.sampling import FrameSampling  # the one check of the augmentation values (imports torch)

    FrameSampling(crop_scale=rc, camera_pan=cp)
    need(c.data.dataset != "shapes" or (rc is None and not c.data.hflip and cp is None),
         "data.random_crop, data.hflip and data.camera_pan are for video files; ShapesWorld renders every clip fresh (and a mirror would contradict its left/right captions)")
    from t2v.diffusion.loss import TIMESTEP_DISTRIBUTIONS  # here, not at the top: the loss module imports torch

    need(c.diffusion.timestep_distribution in TIMESTEP_DISTRIBUTIONS,
         f"diffusion.timestep_distribution must be {' or '.join(TIMESTEP_DISTRIBUTIONS)}; got {c.diffusion.timestep_distribution!r}")
    need(c.diffusion.timestep_shift > 0, f"diffusion.timestep_shift must be positive (1 = no shift, 4 for 16 frames); got {c.diffusion.timestep_shift}")
    need(c.diffusion.logit_std > 0, f"diffusion.logit_std must be positive (1.0 is the usual choice); got {c.diffusion.logit_std}")
    need(c.data.num_workers >= 0, f"data.num_workers must be >= 0; got {c.data.num_workers}")
    need(0.0 <= c.ema.decay <= 1.0, f"ema.decay must be in [0, 1]; got {c.ema.decay}")
    need(c.checkpoint.every >= 0 and c.checkpoint.keep >= 1, "checkpoint.every must be >= 0 and checkpoint.keep >= 1")
    need(c.logging.every >= 1, f"logging.every must be at least 1; got {c.logging.every}")
    need(c.logging.sample_every >= 0, f"logging.sample_every must be >= 0; got {c.logging.sample_every}")
    if c.stage in CASCADE_STAGES:
        _check_cascade(c, need)
    elif c.stage == "image":
        need(c.model.recipe is None, "the image stage trains a 2D U-Net: remove model.recipe (recipes are for the video and tune stages)")
        need(c.data.image_fraction == 0.0, "data.image_fraction is for the video stage (VDM joint training)")
    else:
        need(c.model.recipe is not None, f"the {c.stage} stage needs model.recipe (vdm, make-a-video, tune-a-video or video-ldm)")
    if c.stage == "tune":
        need(c.model.recipe == "tune-a-video", f"the tune stage uses the tune-a-video recipe; got model.recipe {c.model.recipe!r}")
        need(c.model.pretrained is not None, "the tune stage needs model.pretrained (a Stable Diffusion folder)")
        need(bool(c.data.prompt and c.data.prompt.strip()), "the tune stage needs data.prompt (the caption of the clip)")
    if c.model.lora_rank is not None:
        need(c.stage == "tune", "model.lora_rank is for the tune stage (Tune-A-Video with LoRA)")
        need(c.model.lora_rank >= 1, f"model.lora_rank must be at least 1; got {c.model.lora_rank}")
    if c.data.image_fraction > 0:
        need(c.model.recipe == "vdm", "data.image_fraction (joint image-video training) is VDM's: use model.recipe vdm")


def _check_cascade(c: TrainConfig, need: Any) -> None:
    k = c.cascade
    need(c.model.recipe is None, f"the {c.stage} stage builds its own network: remove model.recipe")
    need(c.data.image_fraction == 0.0, "data.image_fraction is for the video stage (VDM joint training)")
    need(len(k.clip_frames) == 2 and c.data.num_frames <= k.clip_frames[0] <= k.clip_frames[1],
         f"cascade.clip_frames must be [min, max] with data.num_frames <= min <= max; got {list(k.clip_frames)} and {c.data.num_frames} frames")
    need(0.0 <= k.high_noise_fraction <= 1.0, f"cascade.high_noise_fraction must be in [0, 1]; got {k.high_noise_fraction}")
    need(k.ssim_weight >= 0, f"cascade.ssim_weight must be >= 0; got {k.ssim_weight}")
    need(k.ssim_weight == 0 or c.stage == "vae-decoder" or c.diffusion.prediction_type == "sample",
         "cascade.ssim_weight scores the network's x0 prediction: set diffusion.prediction_type to sample")
    need(k.ssim_weight == 0 or c.stage != "vae-decoder", "cascade.ssim_weight is for the interpolate and upscale stages")
    if c.stage == "interpolate":
        need(bool(k.factors) and all(f in (2, 4) for f in k.factors), f"cascade.factors must be 2 and/or 4; got {list(k.factors)}")
        for f in k.factors:
            need((c.data.num_frames - 1) % f == 0 and c.data.num_frames > f,
                 f"data.num_frames {c.data.num_frames} must be k*n + 1 (n >= 1) for every factor k in cascade.factors; try {2 * max(k.factors) + 1}")
    if c.stage == "upscale":
        need(k.scale >= 2, f"cascade.scale must be at least 2; got {k.scale}")
        need(0.0 <= k.max_noise_level <= 1.0, f"cascade.max_noise_level must be in [0, 1]; got {k.max_noise_level}")
        need(k.crop is None or (k.crop % (2 * k.scale) == 0 and k.crop <= k.scale * c.data.height),
             f"cascade.crop must be a multiple of {2 * k.scale} no larger than {k.scale * c.data.height}; got {k.crop}")
    if c.stage == "vae-decoder":
        need(k.decoder_train in DECODER_TRAIN_SETS, f"cascade.decoder_train must be one of {', '.join(DECODER_TRAIN_SETS)}; got {k.decoder_train!r}")
        need(c.model.vae is not None or c.model.pretrained is not None,
             "the vae-decoder stage fine-tunes an AutoencoderKL: set model.vae (or model.pretrained with vae/)")
        need(k.adversarial_weight >= 0 and k.temporal_weight >= 0, "cascade.adversarial_weight and cascade.temporal_weight must be >= 0")
        need(k.latent_noise >= 0, f"cascade.latent_noise must be >= 0 (a std in scaled latent units, e.g. 0.2); got {k.latent_noise}")


# ------------------------------------------------------------------------------------------------
# plain dicts (YAML) <-> dataclasses
# ------------------------------------------------------------------------------------------------
def _keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of a config class (sections and their fields)."""
    out = []
    for f in fields(cls):
        key = prefix + f.name
        out.append(key)
        sub = _dataclass_of(_hints(cls)[f.name])
        if sub is not None:
            out += _keys(sub, key + ".")
    return out


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dataclass_of(tp: Any) -> Optional[type]:
    """The dataclass in `tp` (`X` or `Optional[X]`), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


# Names of the diffusers example scripts' options, which difflib cannot relate to ours.
ALIASES = {
    "learning_rate": "optim.lr",
    "lr_warmup_steps": "optim.warmup_steps",
    "lr_scheduler": "optim.schedule",
    "adam_weight_decay": "optim.weight_decay",
    "max_train_steps": "max_steps",
    "train_batch_size": "data.batch_size",
    "gradient_accumulation_steps": "gradient_accumulation",
    "checkpointing_steps": "checkpoint.every",
    "checkpoints_total_limit": "checkpoint.keep",
    "pretrained_model_name_or_path": "model.pretrained",
    "use_ema": "ema.enabled",
}


def unknown_key_error(key: str) -> T2VError:
    """`unknown config key 'optim.lrr'; did you mean 'optim.lr'?` (nearest valid key by difflib)."""
    valid = _keys(TrainConfig)
    if key.rsplit(".", 1)[-1] in ALIASES:
        return T2VError(f"unknown config key {key!r}; did you mean {ALIASES[key.rsplit('.', 1)[-1]]!r}?")
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.0)
    # Prefer a key in the same section when one is close enough.
    section = key.rsplit(".", 1)[0] + "." if "." in key else ""
    same = difflib.get_close_matches(key, [k for k in valid if k.startswith(section)], n=1, cutoff=0.6) if section else []
    hint = (same or near or ["stage"])[0]
    return T2VError(f"unknown config key {key!r}; did you mean {hint!r}?")


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
    if tp in names:
        return names[tp]
    if dataclasses.is_dataclass(tp):
        return "a section (a mapping of keys to values)"
    origin = typing.get_origin(tp)
    if origin is tuple:
        return "a list"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """`value` as type `tp`, or a one-line T2VError naming `key`. YAML 1.1 reads `1e-4` as a string:
    numbers in strings are accepted for float fields."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        sub = _dataclass_of(tp)
        if sub is not None and isinstance(value, dict):
            return _build(sub, value, key + ".")  # a section: its own errors (unknown keys) surface
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except T2VError:
                continue
        raise T2VError(f"config key {key!r} must be {_type_name(tp)}; got {value!r}")
    sub = _dataclass_of(tp)
    if sub is not None:
        if not isinstance(value, dict):
            raise T2VError(f"config key {key!r} must be {_type_name(sub)}; got {value!r}")
        return _build(sub, value, key + ".")
    if origin is tuple:
        (item, *_rest) = typing.get_args(tp)
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise T2VError(f"config key {key!r} must be a list; got {value!r}")
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise T2VError(f"config key {key!r} must be {_type_name(tp)}; got {value!r}")


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = _hints(cls)
    names = {f.name for f in fields(cls)}
    for k in data:
        if k not in names:
            raise unknown_key_error(prefix + str(k))
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    missing = [f.name for f in fields(cls) if f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise T2VError(f"config key {prefix + missing[0]!r} is required")
    return cls(**kwargs)


def config_from_dict(data: dict) -> TrainConfig:
    """A checked TrainConfig from a plain nested dict (a parsed YAML preset)."""
    if not isinstance(data, dict):
        raise T2VError("a training config is a YAML mapping (stage: ..., output_dir: ..., model: {...}, ...)")
    return _build(TrainConfig, data)


def config_to_dict(config: Any) -> Any:
    """Plain values (dicts, lists, scalars) of a config, for YAML/JSON."""
    if dataclasses.is_dataclass(config):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in fields(config)}
    if isinstance(config, tuple):
        return [config_to_dict(v) for v in config]
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """`key.sub=value` -> (['key', 'sub'], value parsed as YAML: `3`, `1e-4`, `null`, `[1, 2]`, `a b`)."""
    if "=" not in text:
        raise T2VError(f"--set takes key.sub=value; got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise T2VError(f"--set takes key.sub=value; got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """A copy of `data` with each `key.sub=value` set; unknown keys name the nearest valid one."""
    import copy

    data = copy.deepcopy(data)
    valid = set(_keys(TrainConfig))
    for text in overrides:
        path, value = parse_override(text)
        dotted = ".".join(path)
        if dotted not in valid:
            raise unknown_key_error(dotted)
        node = data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return data


def load_config(path: Union[str, Path], overrides: Optional[list[str]] = None) -> TrainConfig:
    """Read a YAML preset, apply `--set` overrides, check it. One-line T2VErrors on bad input."""
    path = Path(path)
    if not path.is_file():
        raise T2VError(f"config file not found: {path} (see configs/ for presets)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise T2VError(f"{path} is not valid YAML{at}; fix the file") from None
    return config_from_dict(apply_overrides(data, overrides or []))
