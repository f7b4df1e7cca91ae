"""Text-to-video sampling over a model folder: prompts -> videos (B, C, F, H, W) in [-1, 1].

The pieces are the library's: a CLIP text encoder (Radford et al. 2021) gives the conditioning, the
video U-Net predicts noise (or v), a diffusers sampler (`t2v.diffusion.schedulers`) walks from noise
to data with classifier-free guidance (Ho & Salimans 2022), and for latent models the Stable
Diffusion VAE (Rombach et al. 2022) decodes the latents frame by frame, a few frames at a time, or,
when the folder's vae/ is a `TemporalAutoencoder` (Video LDM's temporally fine-tuned decoder, as
Stable Video Diffusion's vae/ is diffusers' AutoencoderKLTemporalDecoder), a whole clip per call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from einops import rearrange
from torch import Tensor

from t2v.diffusion.sampling import sample
from t2v.diffusion.schedulers import make_scheduler
from t2v.errors import T2VError
from t2v.models.temporal_vae import TemporalAutoencoder, image_vae_config
from t2v.models.text import encode_prompts
from t2v.pipelines.model_folder import ModelParts, load_model_folder

DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 7.5
DEFAULT_FPS = 8.0


def seeded_generators(seed: int, n: int) -> list[torch.Generator]:
    """One CPU generator per video, seeded `seed + i`: video i is the same alone or in a batch."""
    return [torch.Generator("cpu").manual_seed(seed + i) for i in range(n)]


def parse_scale_at(text: str, flag: str, example: str = "8@900") -> tuple[float, float] | tuple[()]:
    """The CLI's `S@T` (scale S at the sampling steps with t >= T) -> (S, T); "none" -> () (off, also
    over a model's default). A one-line T2VError naming `flag` for anything else."""
    if text.strip().lower() == "none":
        return ()
    try:
        g, t = (float(v) for v in text.split("@"))
    except ValueError:
        raise T2VError(f"{flag} takes S@T (scale S at the steps with t >= T), e.g. {example}, or none; "
                       f"got {text!r}") from None
    if not g > 0 or not t >= 0:
        raise T2VError(f"{flag} S@T needs S > 0 and T >= 0; got {text!r}")
    return (g, t)


def parse_high_noise_guidance(text: str) -> tuple[float, float] | tuple[()]:
    """`--high-noise-guidance G@T` (guidance G at the steps with t >= T) -> (G, T); "none" -> ()."""
    return parse_scale_at(text, "--high-noise-guidance")


def parse_temporal_guidance(text: str) -> tuple[float, float] | tuple[()]:
    """`--temporal-guidance S@T` (skip guidance S away from the image model at t >= T) -> (S, T); "none" -> ()."""
    return parse_scale_at(text, "--temporal-guidance", "1@750")


def check_request(prompts: Sequence[str], num_frames: int = 1, num_inference_steps: int = 1,
                  allow_empty_prompt: bool = False) -> None:
    """The checks that need no model: non-empty prompts, num_frames >= 1, steps >= 1 (one-line T2VErrors)."""
    if not prompts:
        raise T2VError("no prompt given; pass at least one non-empty prompt")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or (not p.strip() and not allow_empty_prompt):
            where = "" if len(prompts) == 1 else f" (prompt {i + 1} of {len(prompts)})"
            raise T2VError(f"the prompt is empty{where}; describe the video to generate")
    if num_frames < 1:
        raise T2VError(f"num_frames must be at least 1, got {num_frames}")
    if num_inference_steps < 1:
        raise T2VError(f"steps must be at least 1, got {num_inference_steps}")


class TextToVideoPipeline:
    """Sample videos from a text-conditioned video U-Net (pixel-space, or latent with a VAE).

    Build it with `TextToVideoPipeline.from_pretrained(model_dir)`. `pipe(prompts)` returns a float
    video batch (B, C, F, H, W) in [-1, 1].
    """

    def __init__(self, parts: ModelParts) -> None:
        self.parts = parts
        self.unet = parts.unet
        self.text_encoder = parts.text_encoder
        self.tokenizer = parts.tokenizer
        self.vae = parts.vae
        self.scheduler_config = parts.scheduler_config
        self.default_sampler = parts.default_sampler

    @classmethod
    def from_pretrained(
        cls,
        model_dir: Union[str, Path, None] = None,
        *,
        device: Union[str, torch.device, None] = None,
        dtype: Optional[torch.dtype] = None,
        inflate_recipe: Optional[str] = None,
    ) -> "TextToVideoPipeline":
        """Load a model folder (None: the embedded default model); see `load_model_folder`."""
        return cls(load_model_folder(model_dir, inflate_recipe=inflate_recipe, device=device, dtype=dtype))

    # ------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def to(self, device: Union[str, torch.device, None] = None, dtype: Optional[torch.dtype] = None) -> "TextToVideoPipeline":
        kwargs = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
        for m in (self.unet, self.text_encoder, self.vae):
            if m is not None and kwargs:
                m.to(**kwargs)
        return self

    @property
    def vae_factor(self) -> int:
        """Pixels per latent pixel along each side (1 for pixel-space models)."""
        if self.vae is None:
            return 1
        return 2 ** (len(image_vae_config(self.vae)["block_out_channels"]) - 1)

    @property
    def default_size(self) -> tuple[int, int]:
        """(height, width) the U-Net was built for: its sample_size times the VAE factor."""
        size = self.unet.config.sample_size or 64
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return h * self.vae_factor, w * self.vae_factor

    @property
    def channels(self) -> int:
        return self.unet.config.in_channels

    def scheduler(self, name: Optional[str] = None):
        """A fresh diffusers sampler `name` (ddim, dpm++, dpm++sde, euler, ddpm; None = the folder's own) on the model's schedule."""
        return make_scheduler(name or self.default_sampler, self.scheduler_config)

    # ------------------------------------------------------------------------------------------
    def encode_text(self, prompts: Sequence[str]) -> Tensor:
        """CLIP embeddings (B, L, D) of prompts (each distinct prompt encoded once)."""
        return encode_prompts(self.tokenizer, self.text_encoder, list(prompts), self.device).to(self.dtype)

    @torch.no_grad()
    def encode_video(self, video: Tensor) -> Tensor:
        """Pixels (B, 3, F, H, W) in [-1, 1] -> the U-Net's input space (B, C, F, h, w).

        Latent models: the VAE posterior's mean (deterministic), times the latent scaling factor.
        """
        if self.vae is None:
            return video.to(device=self.device, dtype=self.dtype)
        video = video.to(device=self.vae.device, dtype=self.vae.dtype)
        if isinstance(self.vae, TemporalAutoencoder):
            z = self.vae.encode(video)  # its encoder is the image VAE's, frame by frame
        else:
            frames = rearrange(video, "b c f h w -> (b f) c h w")
            z = rearrange(self.vae.encode(frames).latent_dist.mode(), "(b f) c h w -> b c f h w", b=video.shape[0])
        cfg = image_vae_config(self.vae)
        z = (z - (cfg.get("shift_factor") or 0.0)) * cfg["scaling_factor"]
        return z.to(self.dtype).contiguous()

    @torch.no_grad()
    def decode_latents(self, latents: Tensor, decode_chunk_size: int = 8, image_only: bool = False) -> Tensor:
        """The U-Net's space (B, C, F, h, w) -> pixels (B, 3, F, H, W) in [-1, 1].

        An image VAE decodes `decode_chunk_size` frames per call (peak memory grows with the chunk, not
        the clip). A `TemporalAutoencoder` decodes one whole clip per call (its temporal layers see
        every frame); `image_only` then skips its temporal layers (its decoder frame by frame)."""
        if decode_chunk_size < 1:
            raise T2VError(f"decode_chunk_size must be at least 1, got {decode_chunk_size}")
        if self.vae is None:
            return latents.float().clamp(-1, 1)
        if isinstance(self.vae, TemporalAutoencoder):
            clips = [self.vae.decode_scaled(clip, image_only=image_only) for clip in latents.split(1)]
            return torch.cat(clips).float().clamp(-1, 1)
        cfg = image_vae_config(self.vae)
        z = latents.to(dtype=self.vae.dtype) / cfg["scaling_factor"] + (cfg.get("shift_factor") or 0.0)
        b = latents.shape[0]
        z = rearrange(z, "b c f h w -> (b f) c h w")
        frames = [self.vae.decode(chunk).sample for chunk in z.split(decode_chunk_size)]  # each (n, 3, H, W)
        video = torch.cat(frames).float().clamp(-1, 1)  # (B*F, 3, H, W)
        return rearrange(video, "(b f) c h w -> b c f h w", b=b)

    @property
    def generation_defaults(self) -> dict[str, Any]:
        """Default sampling settings: `model_index.json`'s "t2v_generation" entry (num_inference_steps,
        guidance_scale, ...) over the library-wide defaults (50 steps, guidance 7.5, no timestep shift)."""
        defaults: dict[str, Any] = {"num_inference_steps": DEFAULT_STEPS, "guidance_scale": DEFAULT_GUIDANCE, "timestep_shift": 1.0}
        index = Path(self.parts.path) / "model_index.json"
        if index.is_file():
            defaults.update(json.loads(index.read_text(encoding="utf-8")).get("t2v_generation", {}))
        return defaults

    def sampling_settings(self, num_inference_steps: Optional[int] = None, guidance_scale: Optional[float] = None,
                          timestep_shift: Optional[float] = None,
                          high_noise_guidance: Optional[Sequence[float]] = None,
                          temporal_guidance: Optional[Sequence[float]] = None) -> dict[str, Any]:
        """The settings a call with these arguments samples with: each None replaced by the folder's
        `generation_defaults`; high_noise_guidance and temporal_guidance are (scale, t_min) or None
        (() turns the folder's off)."""
        defaults = self.generation_defaults
        high = defaults.get("high_noise_guidance") if high_noise_guidance is None else high_noise_guidance
        skip = defaults.get("temporal_guidance") if temporal_guidance is None else temporal_guidance
        return {
            "num_inference_steps": int(defaults["num_inference_steps"] if num_inference_steps is None else num_inference_steps),
            "guidance_scale": float(defaults["guidance_scale"] if guidance_scale is None else guidance_scale),
            "timestep_shift": float(defaults["timestep_shift"] if timestep_shift is None else timestep_shift),
            "high_noise_guidance": (float(high[0]), float(high[1])) if high else None,
            "temporal_guidance": (float(skip[0]), float(skip[1])) if skip else None,
        }

    def _model_fn(self, fps: Optional[float], image_only: bool = False):
        unet = self.unet

        def model_fn(x: Tensor, t: Tensor, encoder_hidden_states: Tensor) -> Tensor:
            rate = None if fps is None else torch.full((x.shape[0],), float(fps), device=x.device)
            out = unet(x.to(unet.dtype), t, encoder_hidden_states.to(unet.dtype), fps=rate, image_only=image_only)
            return out.to(x.dtype)  # the sampler's arithmetic stays in float32

        return model_fn

    # ------------------------------------------------------------------------------------------
    def check_inputs(self, prompts: Sequence[str], num_frames: int, height: int, width: int,
                     num_inference_steps: int, scheduler: Optional[str], allow_empty_prompt: bool = False) -> None:
        """One-line T2VErrors for bad user input (before any model runs)."""
        check_request(prompts, num_frames, num_inference_steps, allow_empty_prompt)
        k = self.vae_factor
        for name, v in (("height", height), ("width", width)):
            if v < k or v % k:
                raise T2VError(
                    f"{name} {v} is not a positive multiple of {k} (this model's VAE downsamples by {k}); "
                    f"try {max(k, round(v / k) * k)}"
                )
        if scheduler is not None:
            make_scheduler(scheduler, self.scheduler_config)  # raises on an unknown name

    @torch.no_grad()
    def __call__(
        self,
        prompts: Union[str, Sequence[str]],
        negative_prompt: Optional[str] = None,
        num_frames: int = 16,
        height: Optional[int] = None,
        width: Optional[int] = None,
        fps: Optional[float] = None,
        num_inference_steps: Optional[int] = None,
        guidance_scale: Optional[float] = None,
        seed: int = 0,
        scheduler: Optional[str] = None,
        decode_chunk_size: int = 8,
        progress: bool = True,
        latents: Optional[Tensor] = None,
        output_latents: bool = False,
        allow_empty_prompt: bool = False,
        image_only: bool = False,
        timestep_shift: Optional[float] = None,
        high_noise_guidance: Optional[Sequence[float]] = None,
        temporal_guidance: Optional[Sequence[float]] = None,
    ) -> Tensor:
        """Sample one video per prompt -> float (B, C, F, H, W) in [-1, 1] (C = 3).

        Video i starts from the noise of a generator seeded `seed + i` (also used by stochastic
        samplers), so a batch equals its videos sampled one by one. `fps` conditions recipes with fps
        conditioning (Make-A-Video; default 8 there) and is ignored otherwise. `guidance_scale` g
        mixes eps(z) + g (eps(z, c) - eps(z)) in one batched forward; g = 1 runs the conditional model
        only. `latents` (B or 1, C, F, h, w) replaces the initial noise (editing from DDIM-inverted
        noise). `output_latents` returns the final latents instead of decoded pixels.
        `allow_empty_prompt` lets "" through (the unconditional model, e.g. to check DDIM inversion).
        `num_inference_steps` / `guidance_scale` default to the folder's `generation_defaults`.
        `image_only` skips every temporal layer: the 2D model frame by frame (the ablation).
        `timestep_shift` > 1 spends more sampling steps at high noise (SD3's shift; default: the
        folder's `generation_defaults`, else 1; DDIM takes none).
        `high_noise_guidance` (scale, t_min): that guidance scale at the steps with t >= t_min (where
        the layout and the motion are decided); default: the folder's `generation_defaults`, else
        none; () turns the folder's off.
        `temporal_guidance` (scale, t_min): at the steps with t >= t_min, also push away from the image
        model's conditional prediction (every temporal layer skipped) by `scale`: spatiotemporal skip
        guidance (`t2v.diffusion.guidance.skip_guidance`), which strengthens what the temporal layers
        add (one object, one path). One more forward of B rows per such step. Default: the folder's
        `generation_defaults`, else none; () turns the folder's off; ignored with `image_only`.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        settings = self.sampling_settings(num_inference_steps, guidance_scale, timestep_shift, high_noise_guidance,
                                          temporal_guidance)
        num_inference_steps, guidance_scale = settings["num_inference_steps"], settings["guidance_scale"]
        timestep_shift, high = settings["timestep_shift"], settings["high_noise_guidance"]
        skip = None if image_only else settings["temporal_guidance"]
        if latents is not None:
            num_frames = latents.shape[2]
            height = latents.shape[3] * self.vae_factor if height is None else height
            width = latents.shape[4] * self.vae_factor if width is None else width
        dh, dw = self.default_size
        height, width = dh if height is None else height, dw if width is None else width
        self.check_inputs(prompts, num_frames, height, width, num_inference_steps, scheduler, allow_empty_prompt)
        b, k = len(prompts), self.vae_factor
        shape = (b, self.channels, num_frames, height // k, width // k)  # (B, C, F, h, w)

        # 1. Text embeddings, computed once for the whole loop (every distinct prompt once).
        negatives = [negative_prompt or ""] * b
        guided = guidance_scale != 1.0 or (high is not None and high[0] != 1.0)
        emb = self.encode_text(negatives + prompts if guided else prompts)  # (B or 2B, L, D)
        cond = {"encoder_hidden_states": emb[-b:]}  # (B, L, D)
        uncond = {"encoder_hidden_states": emb[:b]} if guided else None

        # 2. Initial noise: one generator per video.
        generators = seeded_generators(seed, b)
        if latents is None:
            noise = torch.cat([torch.randn(shape[1:], generator=g)[None] for g in generators])  # (B, C, F, h, w)
        else:
            if tuple(latents.shape[1:]) != shape[1:] or latents.shape[0] not in (1, b):
                raise T2VError(f"initial latents have shape {tuple(latents.shape)}; expected {(b, *shape[1:])}")
            noise = latents.expand(b, *shape[1:])
        # Contiguous: a strided view (e.g. from a VAE encode) would pick other conv kernels, other bits.
        noise = noise.to(device=self.device, dtype=torch.float32).contiguous()

        # 3. The reverse process with the chosen sampler (eps or v per the schedule's prediction_type).
        if fps is None and self.unet.recipe.fps_conditioning:
            fps = DEFAULT_FPS
        x = sample(
            self._model_fn(fps, image_only),
            self.scheduler(scheduler),
            shape=shape,
            cond=cond,
            uncond=uncond,
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
            generator=generators if b > 1 else generators[0],
            latents=noise,
            progress=progress,
            device=self.device,
            dtype=torch.float32,
            timestep_shift=timestep_shift,
            high_noise_guidance=high,
            skip_fn=self._model_fn(fps, True) if skip else None,
            skip_guidance=skip,
        )  # (B, C, F, h, w)
        if output_latents:
            return x
        # 4. Pixels, a few frames (or, through a temporal decoder, one clip) per VAE call.
        return self.decode_latents(x, decode_chunk_size, image_only=image_only)  # (B, 3, F, H, W)
