"""Training of the cascade's stages: `interpolate`, `upscale` (diffusion, from scratch) and
`vae-decoder` (Video LDM's temporal decoder fine-tuning against a video discriminator).

`t2v.training.loop.train` hands these stages here. They differ from the text-to-video stages in
what a batch is (conditions built from the clip itself, no text encoder) and, for the decoder, in
having two networks with two optimizers (a GAN), so they get this second, smaller loop; what they
share with the main loop is taken from it: accelerate (processes, precision), the resumable
`BatchStream`, atomic checkpoints with exact resume, `diffusion_loss`, the EMA and the NaN stop.

  interpolate  Make-A-Video's masked frame interpolation (Singer et al. 2022, Sec. 3.3): each batch
               draws a factor k, keeps frames 0, k, 2k, ... of the window as the condition (the
               rest zeroed, plus a mask channel) and learns to denoise the whole window.
  upscale      SR_l^t (Singer et al. 2022) / cascaded diffusion (Ho et al. 2022): the target is the
               high-resolution rendering of the scene, the condition the bilinearly upsampled
               low-resolution one, noise-augmented at a level drawn in [0, max_noise_level] that the
               network also receives.
  vae-decoder  Blattmann et al. 2023, Sec. 3.1.1: the encoder frozen, the decoder with temporal
               layers trained on clips with a reconstruction loss (L1 + L2) and a patch-wise 3D-conv
               discriminator with the hinge loss (Lim & Ye 2017; Miyato et al. 2018).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from t2v.diffusion.loss import diffusion_loss
from t2v.errors import T2VError
from t2v.metrics.reconstruction import ssim_loss
from t2v.pipelines.cascade import (
    augment_condition,
    interpolation_condition,
    keyframe_mask,
    reference,
    save_stage,
    upsample,
)
from t2v.training.checkpoint import complete_checkpoints, latest_checkpoint, load_checkpoint
from t2v.training.config import TrainConfig, config_to_dict

log = logging.getLogger("t2v.training")

# The noise schedule of a pixel-space stage when `diffusion` sets nothing: cosine (Nichol & Dhariwal
# 2021), v-prediction (Salimans & Ho 2022), as pixel-space cascades use.
PIXEL_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 0,
    "timestep_spacing": "trailing",
}


def stage_schedule(config: TrainConfig) -> dict[str, Any]:
    """PIXEL_SCHEDULE with the config's set `diffusion` fields."""
    from t2v.diffusion.loss import PREDICTION_TYPES

    s = dict(PIXEL_SCHEDULE)
    for key in ("prediction_type", "num_train_timesteps", "beta_schedule", "beta_start", "beta_end"):
        if getattr(config.diffusion, key) is not None:
            s[key] = getattr(config.diffusion, key)
    if s["prediction_type"] not in PREDICTION_TYPES:
        raise T2VError(f"diffusion.prediction_type must be one of {', '.join(PREDICTION_TYPES)}; got {s['prediction_type']!r}")
    return s


# ------------------------------------------------------------------------------------------------
# what each stage builds
# ------------------------------------------------------------------------------------------------
def build_stage_model(config: TrainConfig) -> Any:
    """The network a stage trains: a fresh CascadeUNet, or a TemporalAutoencoder from model.vae."""
    k = config.cascade
    if config.stage == "vae-decoder":
        from diffusers import AutoencoderKL

        from t2v.models.temporal_vae import TemporalAutoencoder
        from t2v.training.parts import find_vae

        folder = Path(config.model.vae or config.model.pretrained)
        found = find_vae(folder)
        if found is None:
            raise T2VError(f"{folder} holds no AutoencoderKL or TemporalAutoencoder (config.json + weights, or vae/ inside); "
                           "set model.vae to one")
        cand, name = found
        if name == "AutoencoderKL":
            return TemporalAutoencoder.from_vae(AutoencoderKL.from_pretrained(cand), resblock_kernel=k.decoder_kernel)
        return TemporalAutoencoder.from_pretrained(cand)  # fine-tuned on from its temporal layers as they are
    from t2v.models.cascade_unet import CascadeUNet

    size = config.data.height * (k.scale if config.stage == "upscale" else 1)
    net = CascadeUNet(task=config.stage, channels=3, sample_size=size, block_out_channels=k.block_out_channels,
                      layers_per_block=k.layers_per_block, norm_num_groups=k.norm_num_groups,
                      resblock_kernel=k.resblock_kernel, level_embedding=config.stage == "upscale",
                      residual=k.residual, residual_scale=k.residual_scale)
    if config.model.pretrained is not None:  # fine-tune a trained stage (its temporal kernels may grow)
        from t2v.models.cascade_unet import warm_start
        from t2v.pipelines.cascade import CascadeStage

        warm_start(net, CascadeStage.from_pretrained(config.model.pretrained, config.stage).unet)
    return net


def build_stage_dataset(config: TrainConfig) -> tuple[Any, Any]:
    """(data set, collate function): ShapesWorld windows, or (vae-decoder) any clip data set."""
    d, k = config.data, config.cascade
    if d.dataset == "shapes":
        from t2v.data.shapes_windows import ShapesWindows, collate_windows

        if d.height != d.width:
            raise T2VError(f"ShapesWorld is square; got data.height {d.height} and data.width {d.width}")
        ds = ShapesWindows(d.shapes_length, seed=d.seed, size=d.height, window=d.num_frames,
                           clip_frames=tuple(k.clip_frames), scale=k.scale if config.stage == "upscale" else None)
        return ds, collate_windows
    if config.stage != "vae-decoder":
        raise T2VError(f"the {config.stage} stage trains on ShapesWorld renderings (data.dataset: shapes); got {d.dataset!r}")
    from t2v.data.sources import open_dataset
    from t2v.training.datasets import frame_sampling
    from t2v.training.stream import collate_samples

    return open_dataset(d.dataset, frame_sampling(config), video_root=d.video_root, seed=d.seed), collate_samples


def random_crops(videos: list[torch.Tensor], side: int, scale: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The same random crop of `side` px (top/left multiples of `scale`) from each (B, C, F, H, W) video, per sample."""
    b, _, _, h, w = videos[0].shape
    tops = torch.randint(0, (h - side) // scale + 1, (b,), generator=generator) * scale
    lefts = torch.randint(0, (w - side) // scale + 1, (b,), generator=generator) * scale
    return [torch.stack([v[i, :, :, t : t + side, l : l + side] for i, (t, l) in enumerate(zip(tops.tolist(), lefts.tolist()))])
            for v in videos]


def diffusion_inputs(config: TrainConfig, batch: dict, alphas_cumprod: torch.Tensor, generator: torch.Generator,
                     device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor], Optional[torch.Tensor]]:
    """(x0, conditioning kwargs of CascadeUNet, reference) of one batch of the interpolate / upscale stage.
    With residual targets, x0 = residual_scale * (clip - reference) and the reference (B, 3, F, H, W)
    is returned (clip = reference + x0 / residual_scale); without them, reference is None."""
    k = config.cascade
    video = batch["video"].to(device)  # (B, 3, F, H, W)
    if config.stage == "interpolate":
        factor = k.factors[int(torch.randint(len(k.factors), (1,), generator=generator))]
        known = keyframe_mask(video.shape[2], factor, device)  # (F,)
        ref = reference("interpolate", video, known) if k.residual else None
        target = (video - ref) * k.residual_scale if k.residual else video
        return target, {"condition": interpolation_condition(video, known)}, ref  # (B, 4, F, H, W)
    hi = batch["video_hi"].to(device)  # (B, 3, F, sH, sW)
    up = upsample(video, k.scale)  # (B, 3, F, sH, sW)
    if k.crop is not None:
        hi, up = random_crops([hi, up], k.crop, k.scale, generator)  # (B, 3, F, crop, crop) each
    if k.residual:
        hi = (hi - up) * k.residual_scale  # the target: the residual over the clean upsampled clip (what `upscale` adds back)
    b = hi.shape[0]
    level = torch.rand(b, generator=generator) * k.max_noise_level  # (B,)
    noise = torch.randn(up.shape, generator=generator).to(device)
    cond = augment_condition(alphas_cumprod, up, level, noise)
    return hi, {"condition": cond, "noise_level": level.to(device)}, up if k.residual else None


def clip_estimate(x: torch.Tensor, ref: Optional[torch.Tensor], residual_scale: float) -> torch.Tensor:
    """The clip a stage's x0 (or x0 prediction) stands for: reference + x / scale, or x itself."""
    return x if ref is None else ref + x / residual_scale


def stage_timesteps(b: int, num_train_timesteps: int, high_noise_fraction: float, generator: torch.Generator) -> torch.Tensor:
    """(B,) training timesteps: uniform (Ho et al. 2020), except that a `high_noise_fraction` share is
    the last one, T - 1, where the network regresses the conditional mean from pure noise (what the
    first sampling step asks of it; the cascade's targets are nearly determined by the condition)."""
    t = torch.randint(0, num_train_timesteps, (b,), generator=generator)
    top = torch.rand(b, generator=generator) < high_noise_fraction
    return torch.where(top, torch.full_like(t, num_train_timesteps - 1), t)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def reconstruction_loss(recon: torch.Tensor, video: torch.Tensor, temporal_weight: float = 0.0) -> torch.Tensor:
    """L1 + L2 on pixels (B, 3, F, H, W), plus `temporal_weight` x L1 on frame differences."""
    err = recon.float() - video.float()
    loss = err.abs().mean() + err.pow(2).mean()
    if temporal_weight > 0 and err.shape[2] > 1:
        loss = loss + temporal_weight * (err[:, :, 1:] - err[:, :, :-1]).abs().mean()
    return loss


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------
def train_cascade(config: TrainConfig, *, resume: bool = False) -> Any:
    """Train `config.stage` (interpolate, upscale or vae-decoder) to `max_steps`; same checkpoints,
    resume and outputs as `t2v.training.loop.train` (`output_dir/model` holds the stage folder)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler

    from t2v.training.loop import (
        NAN_ENV,
        TrainResult,
        _check_same_config,
        _ema_and_generator,
        _ema_weights,
        _end_step,
        _logging_to,
        _maybe_checkpoint,
        _no_accelerator_device,
        _optimizer_step,
        _reset_accelerate_state_after,
        _stop_on_bad_value,
        _tensorboard,
    )
    from t2v.training.stream import BatchStream

    c, o, k = config, config.optim, config.cascade
    out = Path(c.output_dir)
    ckpt_dir = out / "checkpoints"
    cpu_only = _no_accelerator_device()
    if c.mixed_precision == "fp16" and cpu_only:
        raise T2VError("mixed_precision fp16 needs a GPU; use 'bf16' or 'no' on a CPU")
    accelerator = Accelerator(cpu=cpu_only, mixed_precision=c.mixed_precision, gradient_accumulation_steps=c.gradient_accumulation)
    main, device, rank = accelerator.is_main_process, accelerator.device, accelerator.process_index
    decoder_stage = c.stage == "vae-decoder"

    with _logging_to(out, main), _reset_accelerate_state_after(), contextlib.ExitStack() as on_exit:
        if not resume and complete_checkpoints(ckpt_dir):
            raise T2VError(f"{out} already has checkpoints (last: {complete_checkpoints(ckpt_dir)[-1][1].name}); pass --resume to continue or choose another output_dir")

        # 1. The network, the data, what trains.
        set_seed(c.seed)
        model = build_stage_model(c)
        dataset, collate = build_stage_dataset(c)
        stream = BatchStream(dataset, batch_size=c.data.batch_size, seed=c.data.seed, rank=rank,
                             world_size=accelerator.num_processes, num_workers=c.data.num_workers, collate_fn=collate)
        disc = d_opt = None
        if decoder_stage:
            from t2v.models.video_discriminator import VideoDiscriminator

            model.requires_grad_(False)
            chosen = model.decoder_parameters() if k.decoder_train == "decoder" else model.temporal_parameters()
            disc = VideoDiscriminator(channels=k.disc_channels)
            d_opt = torch.optim.AdamW(disc.parameters(), lr=k.disc_lr, betas=(0.5, 0.9), weight_decay=0.0)
            schedule, abar = None, None
        else:
            chosen = dict(model.named_parameters())
            schedule = stage_schedule(c)
            noise_scheduler = DDPMScheduler.from_config(schedule)
            abar = noise_scheduler.alphas_cumprod
        params = list(chosen.values())
        for p in params:
            p.requires_grad_(True)
        log.info("%s stage: %s trainable parameters of %s%s; %d samples, %d processes", c.stage,
                 f"{sum(p.numel() for p in params):,}", f"{sum(p.numel() for p in model.parameters()):,}",
                 f" (+ discriminator {sum(p.numel() for p in disc.parameters()):,})" if disc is not None else "",
                 len(dataset), accelerator.num_processes)

        # 2. Optimizers, LR schedule, EMA; accelerate prepares them.
        optimizer = torch.optim.AdamW(params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay)
        n = accelerator.num_processes
        lr_scheduler = get_scheduler("constant_with_warmup" if o.schedule == "constant" else o.schedule, optimizer,
                                     num_warmup_steps=o.warmup_steps * n, num_training_steps=c.max_steps * n)
        if decoder_stage:
            model, disc, optimizer, d_opt, lr_scheduler = accelerator.prepare(model, disc, optimizer, d_opt, lr_scheduler)
        else:
            model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
        ema, generator = _ema_and_generator(accelerator, params, c, rank)

        # 3. Resume: weights, optimizers, EMA, RNG, data position.
        step, resumed = 0, None
        if resume:
            resumed = latest_checkpoint(ckpt_dir)
            if resumed is not None:
                state = load_checkpoint(accelerator, resumed, generator=generator)
                _check_same_config(state["config"], config_to_dict(c), resumed)
                step = state["step"]
                stream.load_state_dict(state["stream"])
                log.info("resumed from %s (step %d)", resumed, step)
        if main:
            import yaml

            out.mkdir(parents=True, exist_ok=True)
            (out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(c), sort_keys=False))

        # 4. The loop.
        writer = _tensorboard(out / "logs", on_exit) if main and c.logging.tensorboard else None
        nan_at = int(os.environ.get(NAN_ENV, 0))
        losses, window, tick = [], [], time.perf_counter()
        bar = tqdm(total=c.max_steps, initial=step, desc=f"train {c.stage}", disable=not (main and c.logging.progress),
                   dynamic_ncols=True, file=sys.stderr)
        model.train()
        unwrapped = accelerator.unwrap_model(model)
        if decoder_stage:
            unwrapped.vae.encoder.eval()
        while step < c.max_steps:
            step_loss, d_loss_value = 0.0, float("nan")
            for _ in range(c.gradient_accumulation):
                batch = next(stream)
                with accelerator.accumulate(model):
                    if decoder_stage:
                        video = batch["video"].to(device)  # (B, 3, F, H, W)
                        # The frozen encoder's posterior mean, then the decoder (through the prepared
                        # model, so that several processes average their gradients).
                        noise = None
                        if k.latent_noise > 0:  # per clip, a std uniform in [0, latent_noise]
                            shape = (video.shape[0], unwrapped.latent_channels, video.shape[2],
                                     video.shape[3] // unwrapped.factor, video.shape[4] // unwrapped.factor)
                            std = k.latent_noise * torch.rand(video.shape[0], generator=generator)
                            noise = (torch.randn(shape, generator=generator) * std.view(-1, 1, 1, 1, 1)).to(device)
                        recon = model(video, latent_noise=noise)  # (B, 3, F, H, W)
                        loss = reconstruction_loss(recon, video, k.temporal_weight)
                        adversarial = k.adversarial_weight > 0 and step >= k.adversarial_start
                        if adversarial:
                            disc.requires_grad_(False)
                            loss = loss - k.adversarial_weight * disc(recon).mean()  # generator hinge loss
                    else:
                        x0, cond, ref = diffusion_inputs(c, batch, abar, generator, device)
                        t = stage_timesteps(x0.shape[0], noise_scheduler.config.num_train_timesteps,
                                            k.high_noise_fraction, generator).to(device)
                        dl = diffusion_loss(model, noise_scheduler, x0, cond, snr_gamma=c.diffusion.snr_gamma,
                                            generator=generator, timesteps=t)
                        loss = dl.loss
                        if k.ssim_weight > 0:  # SSIM of the clip the x0 prediction stands for (config: prediction_type sample)
                            loss = loss + k.ssim_weight * ssim_loss(clip_estimate(dl.prediction, ref, k.residual_scale),
                                                                    clip_estimate(x0, ref, k.residual_scale))
                    if step + 1 == nan_at:
                        loss = loss * float("nan")
                    mean_loss = accelerator.reduce(loss.detach(), "mean")
                    if not torch.isfinite(mean_loss):
                        _stop_on_bad_value("loss", mean_loss.item(), step + 1, ckpt_dir)
                    accelerator.backward(loss)
                    _optimizer_step(accelerator, params, optimizer, lr_scheduler, c, step, ckpt_dir)
                    if decoder_stage and adversarial:
                        # The discriminator's step: real clips against the decoder's reconstructions.
                        disc.requires_grad_(True)
                        d_loss = hinge_d_loss(disc(video), disc(recon.detach()))
                        accelerator.backward(d_loss)
                        d_opt.step()
                        d_opt.zero_grad(set_to_none=True)
                        d_loss_value = float(d_loss.detach())
                step_loss += mean_loss.item() / c.gradient_accumulation
            step += 1
            _end_step(step_loss, ema, params, losses, window, bar)
            if step % c.logging.every == 0 or step == c.max_steps:
                now = time.perf_counter()
                mean = sum(window) / len(window)
                if writer is not None:
                    writer.add_scalar("train/loss", mean, step)
                    writer.add_scalar("train/lr", lr_scheduler.get_last_lr()[0], step)
                    writer.add_scalar("train/it_per_s", len(window) / (now - tick), step)
                    if decoder_stage and math.isfinite(d_loss_value):
                        writer.add_scalar("train/d_loss", d_loss_value, step)
                log.info("step %d loss %.5f%s (%.2f s/step)", step, mean,
                         f" d_loss {d_loss_value:.4f}" if decoder_stage and math.isfinite(d_loss_value) else "",
                         (now - tick) / len(window))
                window, tick = [], now
            _maybe_checkpoint(accelerator, c, step, ckpt_dir, generator, stream)
        bar.close()

        # 5. The stage folder, with the EMA weights.
        accelerator.wait_for_everyone()
        output = None
        if main:
            with _ema_weights(ema, params):
                net = accelerator.unwrap_model(model)
                output = out / "model"
                if decoder_stage:
                    net.save_pretrained(output, safe_serialization=True)
                else:
                    # A stage samples windows of the length it trained on (pipelines.cascade._sample_windows).
                    save_stage(output, net, schedule, {"window": c.data.num_frames})
            log.info("wrote %s", output)
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return TrainResult(step=step, losses=losses, output=output, resumed_from=resumed)
