"""The cascade: keyframes -> temporal decoding -> frame interpolation -> super-resolution.

Make-A-Video (Singer et al. 2022, Sec. 3.3) generates 16 frames at 64x64, interpolates them to a
higher frame rate (masked frame interpolation, ↑F) and super-resolves them (SR_l^t); Video LDM
(Blattmann et al. 2023, Sec. 3.2-3.3) generates sparse keyframes, interpolates them with a
masked-conditioning model and decodes with a temporally fine-tuned decoder. t2v's cascade:

  1. keyframes: the base text-to-video model samples N latent keyframes (`TextToVideoPipeline`);
  2. decoding: the temporally fine-tuned decoder (`TemporalAutoencoder`) turns them into pixels;
  3. interpolation: a `CascadeUNet` (task interpolate) fills k - 1 frames between neighbours,
     N -> (N - 1) k + 1 frames (k = 2 or 4), once or several times;
  4. super-resolution: a `CascadeUNet` (task upscale) doubles the size, conditioned on the
     bilinearly upsampled clip with noise augmentation at a chosen level.

Stages 3 and 4 work on pixels, not latents: the shipped ShapesWorld autoencoder reconstructs
26.7 dB at 64x64 and 25.8 dB at 128x128, below what linear blending + 3 dB needs (26.3 dB) and
below bicubic upsampling (28.4 dB), so a latent-space stage could not reach the targets whatever
its quality (docs/cascade.md). Decoding therefore happens right after the keyframes.

A stage folder (interpolate or upscale):
```
STAGE/
  model_index.json   {"_class_name": "CascadeStage", "task": ..., "t2v_cascade": {sampling defaults}}
  unet/              CascadeUNet (config.json + diffusion_pytorch_model.safetensors)
  scheduler/         scheduler_config.json: the training noise schedule (and prediction_type)
```
The decoder folder is a `TemporalAutoencoder` (config.json + diffusion_pytorch_model.safetensors).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from t2v.diffusion.sampling import sample
from t2v.diffusion.schedulers import make_scheduler
from t2v.errors import T2VError
from t2v.models.temporal_vae import image_vae_config
from t2v.pipelines.text_to_video import seeded_generators

CASCADE_ASSETS = "cascade"  # t2v/assets/cascade/{interpolate,upscale,image_vae}; the decoder is default_model/vae
STAGE_CLASS = "CascadeStage"
FACTORS = (2, 4)
# Sampling defaults of a stage folder without its own (model_index.json "t2v_cascade").
STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    # window: the frames the network sees at once (its training window; None: the whole clip).
    "interpolate": {"steps": 20, "sampler": "ddim", "factor": 4, "window": None},
    # self_ensemble: outputs averaged over that many flips of the input (1, 2, 4 or 8; see upscale).
    "upscale": {"steps": 20, "sampler": "ddim", "noise_level": 0.1, "scale": 2, "window": None, "self_ensemble": 1},
}
# The flips of geometric self-ensemble, in order: none, width, height, both, then the same in reverse time.
ENSEMBLE_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1), (2,), (2, -1), (2, -2), (2, -2, -1))
ENSEMBLE_SIZES = (1, 2, 4, 8)  # the first n flips: none; width; both spatial ones; all, time included


# ------------------------------------------------------------------------------------------------
# conditions (shared by training and sampling)
# ------------------------------------------------------------------------------------------------
def interpolated_length(num_frames: int, factor: int) -> int:
    """(N - 1) * k + 1: the frames after interpolating N keyframes by `factor` k."""
    return (num_frames - 1) * factor + 1


def check_factor(factor: int) -> None:
    if factor not in FACTORS:
        raise T2VError(f"--factor must be 2 or 4 (apply twice for more); got {factor}")


def check_self_ensemble(n: int) -> None:
    if n not in ENSEMBLE_SIZES:
        raise T2VError(f"--self-ensemble must be 1, 2, 4 or 8 (flipped copies averaged); got {n}")


def keyframe_mask(num_frames: int, factor: int, device: Union[str, torch.device, None] = None) -> Tensor:
    """(F,) bool, True at the known frames 0, k, 2k, ... of an F-frame clip."""
    return torch.arange(num_frames, device=device) % factor == 0


def interpolation_condition(video: Tensor, known: Tensor) -> Tensor:
    """The interpolation model's condition: (B, C, F, H, W) and known (F,) or (B, F) bool ->
    (B, C + 1, F, H, W) = (the clip with unknown frames zeroed, a mask channel 1 on known frames).

    Make-A-Video's masked frame interpolation / Video LDM's masked conditioning."""
    b, _, f, h, w = video.shape
    mask = known.to(video.device).expand(b, f) if known.ndim == 1 else known.to(video.device)  # (B, F)
    m = mask[:, None, :, None, None].to(video.dtype)  # (B, 1, F, 1, 1)
    return torch.cat([video * m, m.expand(b, 1, f, h, w)], dim=1)  # (B, C + 1, F, H, W)


def place_keyframes(keyframes: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Keyframes (B, C, N, H, W) -> (clip (B, C, (N-1)k+1, H, W) with the keyframes at 0, k, 2k, ...
    and zeros elsewhere, known (F,) bool)."""
    b, c, n, h, w = keyframes.shape
    f = interpolated_length(n, factor)
    known = keyframe_mask(f, factor, keyframes.device)
    clip = keyframes.new_zeros(b, c, f, h, w)
    clip[:, :, known] = keyframes
    return clip, known


def blend_neighbours(video: Tensor, known: Tensor) -> Tensor:
    """Linear blending: each unknown frame of (B, C, F, H, W) becomes (1 - w) x_a + w x_b of the nearest
    known frames a < t < b (w = (t - a) / (b - a)); known frames stay; frames before the first or after
    the last known frame copy it. known: (F,) bool with at least one True."""
    f = video.shape[2]
    idx = torch.arange(f)
    pos = idx[known.cpu()]
    if len(pos) == 0:
        raise T2VError("linear blending needs at least one known frame")
    after = torch.searchsorted(pos, idx).clamp(max=len(pos) - 1)  # first known index >= t
    b = pos[after]
    a = pos[(after - (b > idx).long()).clamp(min=0)]  # last known index <= t
    w = torch.where(b > a, (idx - a).float() / (b - a).clamp(min=1).float(), torch.zeros(f))
    w = w.to(video.device, video.dtype).view(1, 1, f, 1, 1)
    return (1 - w) * video[:, :, a.to(video.device)] + w * video[:, :, b.to(video.device)]


def reference(task: str, clip: Tensor, known: Optional[Tensor] = None, scale: int = 2) -> Tensor:
    """What a residual stage adds its sample to: interpolate, the blend of the known frames of `clip`
    (B, C, F, H, W); upscale, `clip` (B, C, F, h, w) upsampled by `scale` (bilinear)."""
    return blend_neighbours(clip, known) if task == "interpolate" else upsample(clip, scale)


def upsample(video: Tensor, scale: int) -> Tensor:
    """(B, C, F, h, w) -> (B, C, F, scale*h, scale*w), bilinear per frame (SR3 / Make-A-Video's input)."""
    b, c, f, h, w = video.shape
    frames = video.transpose(1, 2).reshape(b * f, c, h, w)
    up = F.interpolate(frames.float(), scale_factor=scale, mode="bilinear", align_corners=False)  # (B*F, C, sh, sw)
    return up.reshape(b, f, c, scale * h, scale * w).transpose(1, 2).to(video.dtype)


def augment_condition(alphas_cumprod: Tensor, condition: Tensor, level: Tensor, noise: Tensor) -> Tensor:
    """Noise augmentation (Ho et al. 2022 "Cascaded Diffusion Models", Sec. 4.1; Imagen): the
    condition goes through the forward process q(x_s | x_0) of the stage's own schedule at
    s = round(level * (T - 1)): sqrt(abar_s) x + sqrt(1 - abar_s) eps. level (B,) in [0, 1];
    level 0 leaves the condition as it is."""
    if level.ndim != 1 or level.shape[0] != condition.shape[0]:
        raise T2VError(f"noise_level must have one value per clip; got shape {tuple(level.shape)}")
    if bool(((level < 0) | (level > 1)).any()):
        raise T2VError(f"noise_level must be in [0, 1]; got {level.tolist()}")
    t_max = alphas_cumprod.shape[0] - 1
    s = (level.double() * t_max).round().long().cpu()
    abar = torch.where(level.cpu() > 0, alphas_cumprod.double()[s], torch.ones_like(s, dtype=torch.float64))  # (B,)
    abar = abar.to(condition.device, torch.float32).view(-1, *([1] * (condition.ndim - 1)))
    return (abar.sqrt() * condition.float() + (1 - abar).sqrt() * noise.float()).to(condition.dtype)


# ------------------------------------------------------------------------------------------------
# stage folders
# ------------------------------------------------------------------------------------------------
def default_stage_dir(name: str) -> Path:
    """`t2v/assets/cascade/NAME` (interpolate, upscale; image_vae: the per-frame autoencoder the
    temporal decoder was fine-tuned from, the baseline of its measurements); a T2VError when not installed."""
    path = Path(str(resources.files("t2v.assets").joinpath(CASCADE_ASSETS))) / name  # a namespace package's joinpath takes one part
    if not path.is_dir():
        raise T2VError(f"no default {name} stage is installed in this version of t2v; pass its model folder")
    return path


@dataclass
class CascadeStage:
    """A loaded interpolation or super-resolution stage: the network, its noise schedule, defaults."""

    path: Path
    unet: Any  # t2v.models.CascadeUNet
    scheduler_config: dict[str, Any]
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.unet.config.task

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @classmethod
    def from_pretrained(cls, folder: Union[str, Path, None], task: str,
                        device: Union[str, torch.device, None] = None) -> "CascadeStage":
        """Load a stage folder (None: the shipped ShapesWorld stage); one-line T2VError on a bad folder."""
        from t2v.diffusion.schedulers import scheduler_config
        from t2v.models.cascade_unet import CascadeUNet

        folder = default_stage_dir(task) if folder is None else Path(folder)
        expected = f"a cascade {task} stage folder (model_index.json, unet/ with a CascadeUNet, scheduler/)"
        if not (folder / "unet" / "config.json").is_file():
            raise T2VError(f"{folder} has no unet/config.json; expected {expected}")
        try:
            cfg = json.loads((folder / "unet" / "config.json").read_text())
        except json.JSONDecodeError:
            raise T2VError(f"{folder}/unet/config.json is not valid JSON; expected {expected}") from None
        if cfg.get("_class_name") != "CascadeUNet":
            raise T2VError(f"{folder}/unet holds a {cfg.get('_class_name')}, not a CascadeUNet; expected {expected}")
        if cfg.get("task") != task:
            raise T2VError(f"{folder} is a cascade {cfg.get('task')} stage, not {task}; expected {expected}")
        unet = CascadeUNet.from_pretrained(folder / "unet").eval().requires_grad_(False)
        if device is not None:
            unet.to(device)
        defaults = dict(STAGE_DEFAULTS[task])
        index = folder / "model_index.json"
        if index.is_file():
            defaults.update(json.loads(index.read_text()).get("t2v_cascade", {}))
        return cls(folder, unet, scheduler_config(folder / "scheduler"), defaults)

    def save(self, out: Union[str, Path]) -> Path:
        """Write the stage folder (replacing one there); returns it."""
        return save_stage(out, self.unet, self.scheduler_config, self.defaults)


def save_stage(out: Union[str, Path], unet: Any, schedule: dict[str, Any], defaults: Optional[dict[str, Any]] = None,
               fp16: bool = False) -> Path:
    """Write a stage folder (unet/, scheduler/, model_index.json) under a temporary name, then rename.
    `fp16` stores the weights in half precision (they load back as float32)."""
    import copy

    import diffusers
    from diffusers import DDIMScheduler

    out = Path(out)
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (copy.deepcopy(unet).half() if fp16 else unet).save_pretrained(tmp / "unet", safe_serialization=True)
    DDIMScheduler.from_config(schedule).save_pretrained(tmp / "scheduler")
    task = unet.config.task
    index = {
        "_class_name": STAGE_CLASS,
        "_diffusers_version": diffusers.__version__,
        "task": task,
        "unet": ["t2v.models", "CascadeUNet"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "t2v_cascade": {**STAGE_DEFAULTS[task], **(defaults or {})},
    }
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.rename(tmp, out)
    return out


def load_temporal_decoder(folder: Union[str, Path, None] = None, device: Union[str, torch.device, None] = None) -> Any:
    """A `TemporalAutoencoder` folder (None: the shipped ShapesWorld one, the embedded default model's
    `vae/`); one-line T2VError otherwise."""
    from t2v.models.temporal_vae import TemporalAutoencoder
    from t2v.pipelines.model_folder import default_model_dir

    folder = default_model_dir() / "vae" if folder is None else Path(folder)
    cfg = folder / "config.json"
    if not cfg.is_file() or json.loads(cfg.read_text()).get("_class_name") != "TemporalAutoencoder":
        raise T2VError(f"{folder} is not a temporal decoder folder (config.json naming TemporalAutoencoder); "
                       "train one with `t2v train` stage vae-decoder")
    model = TemporalAutoencoder.from_pretrained(folder).eval().requires_grad_(False)
    return model.to(device) if device is not None else model


# ------------------------------------------------------------------------------------------------
# sampling each stage
# ------------------------------------------------------------------------------------------------
def _sample(stage: CascadeStage, shape: tuple[int, ...], cond: dict[str, Tensor], steps: int, sampler: str,
            seed: int, progress: bool, generators: Optional[list[torch.Generator]] = None,
            noise: Optional[Tensor] = None) -> Tensor:
    """Sample one batch; item i draws its initial noise (unless `noise` is given) and any sampler
    noise from `generators[i]` (default: seeded `seed + i`)."""
    unet = stage.unet

    def model_fn(x: Tensor, t: Tensor, **c: Any) -> Tensor:
        return unet(x.to(unet.dtype), t, **c).to(x.dtype)

    generators = seeded_generators(seed, shape[0]) if generators is None else generators
    if noise is None:
        noise = torch.cat([torch.randn(shape[1:], generator=g)[None] for g in generators])
    return sample(model_fn, make_scheduler(sampler, stage.scheduler_config), shape=shape, cond=cond,
                  num_inference_steps=steps, generator=generators if len(generators) > 1 else generators[0],
                  latents=noise.to(stage.device), progress=progress, device=stage.device)


def window_starts(num_frames: int, window: int, factor: int) -> list[int]:
    """Where the interpolation windows of `window` frames start in a clip of `num_frames` frames whose
    known frames are 0, k, 2k, ...: each window begins and ends on a known frame and starts where the
    previous one ended (they share that keyframe); the last one is moved back to end on the last frame
    (it then overlaps its neighbour). One window of the whole clip when the clip is not longer."""
    if window < 2 or (window - 1) % factor:
        raise T2VError(f"an interpolation window of {window} frames does not hold whole gaps of {factor} frames; "
                       f"the stage's t2v_cascade.window must be 1 + a multiple of the factor")
    return _tile(num_frames, window, window - 1)


def _tile(num_frames: int, window: int, step: int) -> list[int]:
    """Starts of windows of `window` frames every `step` frames, the last moved back to end on the last frame."""
    if num_frames <= window:
        return [0]
    starts = list(range(0, num_frames - window + 1, step))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return starts


def _sample_windows(stage: CascadeStage, shape: tuple[int, ...], cond: dict[str, Tensor], starts: list[int], span: int,
                    steps: int, sampler: str, seed: int, progress: bool) -> Tensor:
    """Sample a (B, C, F, H, W) clip as windows of `span` frames starting at `starts`, batched over
    clips and windows; a later window overwrites the frames it shares with the one before.

    The network sees windows of the length it was trained on: a convolution in time trained on short
    windows met zero padding at their ends, never the further frames a whole clip puts there. Clip
    i's noise is drawn whole from generator `seed + i` and cut into windows, so its result does not
    depend on the batch; a stochastic sampler's own noise comes from a generator per (clip, window).
    Conditions of 5 dims (B, ., F, H, W) are cut like the clip, others (B, ...) repeated per window."""
    b, c, f, h, w = shape
    generators = seeded_generators(seed, b)
    noise = torch.cat([torch.randn((c, f, h, w), generator=g)[None] for g in generators])  # (B, C, F, H, W)
    if starts == [0] and span >= f:  # one window: the whole clip
        return _sample(stage, shape, cond, steps, sampler, seed, progress, generators=generators, noise=noise)
    cut = lambda x: torch.cat([x[:, :, s0:s0 + span] for s0 in starts])  # noqa: E731  window-major (W*B, ., span, H, W)
    wcond = {k: cut(v) if v.ndim == 5 else v.repeat(len(starts), *([1] * (v.ndim - 1))) for k, v in cond.items()}
    wgen = [torch.Generator("cpu").manual_seed((seed + i) * 1_000_003 + j) for j in range(len(starts)) for i in range(b)]
    wout = _sample(stage, (len(starts) * b, c, span, h, w), wcond, steps, sampler, seed, progress,
                   generators=wgen, noise=cut(noise))
    out = wout.new_zeros(shape)
    for j, s0 in enumerate(starts):
        out[:, :, s0:s0 + span] = wout[j * b:(j + 1) * b]
    return out


def _check_video(video: Tensor, what: str) -> None:
    if video.ndim != 5 or video.shape[1] != 3:
        raise T2VError(f"{what} takes a video batch (B, 3, F, H, W) in [-1, 1]; got shape {tuple(video.shape)}")


@torch.no_grad()
def interpolate(stage: CascadeStage, keyframes: Tensor, factor: Optional[int] = None, *, steps: Optional[int] = None,
                sampler: Optional[str] = None, seed: int = 0, progress: bool = False) -> Tensor:
    """Masked frame interpolation: keyframes (B, 3, N, H, W) in [-1, 1] -> (B, 3, (N-1)k+1, H, W).

    The keyframes are the condition at frames 0, k, 2k, ... and are copied into the result unchanged;
    the frames between are sampled (`steps` of `sampler`, video i from seed `seed + i`)."""
    _check_video(keyframes, "interpolation")
    if stage.task != "interpolate":
        raise T2VError(f"{stage.path} is a {stage.task} stage; pass an interpolation stage")
    factor = int(factor or stage.defaults["factor"])
    check_factor(factor)
    if keyframes.shape[2] < 2:
        raise T2VError(f"interpolation needs at least 2 frames; got {keyframes.shape[2]}")
    clip, known = place_keyframes(keyframes.to(stage.device, torch.float32), factor)  # (B, 3, F, H, W), (F,)
    f = clip.shape[2]
    span = min(int(stage.defaults.get("window") or f), f)
    cond = {"condition": interpolation_condition(clip, known)}  # (B, 4, F, H, W); every window starts on a keyframe
    out = _sample_windows(stage, tuple(clip.shape), cond, window_starts(f, span, factor), span,
                          int(steps or stage.defaults["steps"]), sampler or stage.defaults["sampler"], seed, progress)
    if stage.unet.config.get("residual", False):  # the sample is the (scaled) residual over blending
        out = out / stage.unet.config.get("residual_scale", 1.0) + reference("interpolate", clip, known)
    out = out.clamp(-1, 1)
    out[:, :, known] = clip[:, :, known]  # the keyframes stay exactly as given
    return out


@torch.no_grad()
def upscale(stage: CascadeStage, video: Tensor, *, noise_level: Optional[float] = None, steps: Optional[int] = None,
            sampler: Optional[str] = None, seed: int = 0, progress: bool = False,
            self_ensemble: Optional[int] = None) -> Tensor:
    """Video super-resolution: (B, 3, F, h, w) in [-1, 1] -> (B, 3, F, s*h, s*w) (s = the stage's scale, 2).

    The condition is the bilinearly upsampled clip, noise-augmented at `noise_level` in [0, 1] (the
    folder's default otherwise; the augmentation noise of video i comes from seed `seed + i`).
    `self_ensemble` n in (1, 2, 4, 8) (default: the folder's): the geometric self-ensemble of EDSR
    (Lim et al. 2017) for video: super-resolve the clip flipped in width, height and time (the
    first n of `ENSEMBLE_FLIPS`), flip each result back and average; n times the work."""
    _check_video(video, "super-resolution")
    if stage.task != "upscale":
        raise T2VError(f"{stage.path} is a {stage.task} stage; pass a super-resolution stage")
    level = float(stage.defaults["noise_level"] if noise_level is None else noise_level)
    if not 0.0 <= level <= 1.0:
        raise T2VError(f"--noise-level must be in [0, 1]; got {level}")
    n = int(stage.defaults.get("self_ensemble", 1) if self_ensemble is None else self_ensemble)
    check_self_ensemble(n)
    outs = [_upscale_once(stage, video.flip(dims), level, steps, sampler, seed, progress).clamp(-1, 1).flip(dims)
            for dims in ENSEMBLE_FLIPS[:n]]  # flip(()) is the clip itself
    return sum(outs) / n


def _upscale_once(stage: CascadeStage, video: Tensor, level: float, steps: Optional[int], sampler: Optional[str],
                  seed: int, progress: bool) -> Tensor:
    """One super-resolution sample of `video` (B, 3, F, h, w) -> (B, 3, F, sH, sW), not yet clamped."""
    scale = int(stage.defaults["scale"])
    up = upsample(video.to(stage.device, torch.float32), scale)  # (B, 3, F, sH, sW)
    b = up.shape[0]
    gens = seeded_generators(seed + 1_000_003, b)  # augmentation noise: its own stream per video
    aug_noise = torch.cat([torch.randn(up.shape[1:], generator=g)[None] for g in gens]).to(up.device)
    from diffusers import DDPMScheduler

    abar = DDPMScheduler.from_config(stage.scheduler_config).alphas_cumprod
    levels = torch.full((b,), level)
    cond = {"condition": augment_condition(abar, up, levels, aug_noise), "noise_level": levels.to(up.device)}
    f = up.shape[2]
    span = min(int(stage.defaults.get("window") or f), f)  # consecutive windows of the training length
    out = _sample_windows(stage, tuple(up.shape), cond, _tile(f, span, span), span, int(steps or stage.defaults["steps"]),
                          sampler or stage.defaults["sampler"], seed, progress)
    if stage.unet.config.get("residual", False):  # the sample is the (scaled) residual over the clean upsampled clip
        out = out / stage.unet.config.get("residual_scale", 1.0) + up
    return out


# ------------------------------------------------------------------------------------------------
# the whole cascade
# ------------------------------------------------------------------------------------------------
class CascadePipeline:
    """Text -> keyframes (base model) -> temporal decoder -> interpolation -> super-resolution.

    `pipe(prompts)` returns float (B, 3, F, H, W) in [-1, 1]; with 8 keyframes, factors (4,) and the
    shipped stages: 29 frames at 128x128."""

    def __init__(self, base: Any, decoder: Any, interpolator: CascadeStage, upscaler: CascadeStage) -> None:
        self.base, self.decoder, self.interpolator, self.upscaler = base, decoder, interpolator, upscaler
        if base.vae is None:
            raise T2VError("the cascade's base model must be a latent model (with vae/), as Video LDM's keyframe model is")
        vae = image_vae_config(base.vae)
        if decoder.latent_channels != vae["latent_channels"] or abs(decoder.scaling_factor - vae["scaling_factor"]) > 1e-6:
            raise T2VError(
                f"the temporal decoder (latent channels {decoder.latent_channels}, scale {decoder.scaling_factor:g}) does not "
                f"fit the base model's VAE ({vae['latent_channels']}, {vae['scaling_factor']:g}); "
                "fine-tune one from this VAE with `t2v train` stage vae-decoder"
            )

    @classmethod
    def from_pretrained(cls, base: Union[str, Path, None] = None, *, interpolator: Union[str, Path, None] = None,
                        upscaler: Union[str, Path, None] = None, decoder: Union[str, Path, None] = None,
                        device: Union[str, torch.device, None] = None) -> "CascadePipeline":
        """Each stage a folder; None = the shipped default model and ShapesWorld stages. Without a
        decoder, a base model whose `vae/` is a temporal decoder (as the default model's) decodes its
        own keyframes; otherwise the shipped ShapesWorld decoder does."""
        from t2v.models.temporal_vae import TemporalAutoencoder
        from t2v.pipelines.text_to_video import TextToVideoPipeline

        pipe = TextToVideoPipeline.from_pretrained(base, device=device)
        own = decoder is None and isinstance(pipe.vae, TemporalAutoencoder)
        return cls(
            pipe,
            pipe.vae if own else load_temporal_decoder(decoder, device),
            CascadeStage.from_pretrained(interpolator, "interpolate", device),
            CascadeStage.from_pretrained(upscaler, "upscale", device),
        )

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """The base model's latents (B, C, N, h, w) -> pixels (B, 3, N, H, W) with the temporal decoder."""
        return self.decoder.decode_scaled(latents).float().clamp(-1, 1)

    @torch.no_grad()
    def __call__(self, prompts: Union[str, Sequence[str]], *, keyframes: int = 8, factors: Sequence[int] = (4,),
                 super_resolve: bool = True, seed: int = 0, num_inference_steps: Optional[int] = None,
                 guidance_scale: Optional[float] = None, scheduler: Optional[str] = None,
                 stage_steps: Optional[int] = None, noise_level: Optional[float] = None,
                 negative_prompt: Optional[str] = None, progress: bool = False,
                 return_stages: bool = False) -> Union[Tensor, dict[str, Tensor]]:
        """Sample one video per prompt; video i uses seed `seed + i` in every stage.

        keyframes: frames the base model samples; factors: interpolation factors applied in turn
        (each 2 or 4); super_resolve: run super-resolution; stage_steps / noise_level: the stages'
        sampling steps and augmentation level (default: each folder's). `return_stages` returns
        {"keyframes", "interpolated", "video"} (the last is the output)."""
        if keyframes < 2:
            raise T2VError(f"--keyframes must be at least 2 (interpolation needs two neighbours); got {keyframes}")
        for k in factors:
            check_factor(k)
        latents = self.base(prompts, negative_prompt=negative_prompt, num_frames=keyframes,
                            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                            scheduler=scheduler, progress=progress, output_latents=True)  # (B, C, N, h, w)
        keys = self.decode(latents)  # (B, 3, N, H, W)
        video = keys
        for k in factors:
            video = interpolate(self.interpolator, video, k, steps=stage_steps, seed=seed, progress=progress)
        interpolated = video
        if super_resolve:
            video = upscale(self.upscaler, video, noise_level=noise_level, steps=stage_steps, seed=seed, progress=progress)
        if return_stages:
            return {"keyframes": keys, "interpolated": interpolated, "video": video}
        return video
