"""The one training loop of t2v, on accelerate (one process, DDP, FSDP or DeepSpeed through
`accelerate launch`; mixed precision; gradient accumulation). Stages are configs, not subclasses:

  image  text-to-image training of a 2D U-Net on single frames (the image prior of every paper);
  video  a 2D model inflated with a recipe, the recipe's parameters trained on clips (Make-A-Video,
         Video LDM temporal training; VDM from scratch with joint image-video batches);
  tune   Tune-A-Video's one-shot tuning on one clip and its prompt (Wu et al. 2023).

Every step: captions dropped to "" with probability `caption_dropout` (classifier-free guidance,
Ho & Salimans 2022), pixels -> VAE latents if the model is latent, the denoising loss of
`t2v.diffusion.loss` (Ho et al. 2020), AdamW with warmup and clipping, then an EMA update.
All randomness of a step (noise, timesteps, caption dropout, image masks, VAE posterior samples)
comes from one generator per process, checkpointed with the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from t2v.diffusion.loss import diffusion_loss
from t2v.errors import T2VError
from t2v.models.text import encode_prompts
from t2v.training.checkpoint import complete_checkpoints, latest_checkpoint, load_checkpoint, save_checkpoint
from t2v.training.config import CASCADE_STAGES, TrainConfig, config_to_dict
from t2v.training.datasets import build_dataset, skip_summary, tune_record
from t2v.training.parts import build_parts, encode_pixels
from t2v.training.stream import BatchStream

log = logging.getLogger("t2v.training")

# Test hooks (environment variables, read only by tests): inject NaN into the loss of step N; stop
# (sleep) after step N so a test can SIGKILL the process; write each process's weights at the end.
NAN_ENV = "T2V_TEST_NAN_AT_STEP"
HANG_ENV = "T2V_TEST_HANG_AFTER_STEP"
DUMP_ENV = "T2V_TEST_DUMP_DIR"
# Keys that may change when resuming (everything else must match the checkpoint's config). The
# temporal decoder's loss weights may too: a resumed run with other weights is a second phase of
# the same training (how the shipped temporal decoder was made, docs/cascade.md).
RESUMABLE_CHANGES = ("max_steps", "output_dir", "logging.", "checkpoint.", "cascade.temporal_weight", "cascade.adversarial_weight",
                     "cascade.latent_noise")


@dataclass
class TrainResult:
    """step: the last step; losses: the loss of each step this run took (mean over processes);
    output: the model folder (tune: the tuned folder), on the main process; skipped: bad clips."""

    step: int
    losses: list[float] = field(default_factory=list)
    output: Optional[Path] = None
    skipped: int = 0
    resumed_from: Optional[Path] = None


def train(config: TrainConfig, *, resume: bool = False) -> TrainResult:
    """Train `config.stage` to `config.max_steps`; with `resume`, continue from the newest complete
    checkpoint in `output_dir/checkpoints` (exactly: weights, optimizer, LR, EMA, RNG, data position)."""
    if config.stage in CASCADE_STAGES:  # interpolate, upscale, vae-decoder (docs/cascade.md)
        from t2v.training.cascade import train_cascade

        return train_cascade(config, resume=resume)
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler

    out = Path(config.output_dir)
    ckpt_dir = out / "checkpoints"
    c, o = config, config.optim

    # 1. Processes, precision, gradient accumulation (VDM's masked image samples leave the temporal
    #    layers without gradient in some steps: DDP must then look for unused parameters).
    cpu_only = _no_accelerator_device()
    if c.mixed_precision == "fp16" and cpu_only:
        raise T2VError("mixed_precision fp16 needs a GPU; use 'bf16' or 'no' on a CPU")
    try:
        accelerator = Accelerator(
            cpu=cpu_only, mixed_precision=c.mixed_precision, gradient_accumulation_steps=c.gradient_accumulation,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=c.data.image_fraction > 0)],
        )
    except ValueError as exc:
        raise T2VError(f"mixed_precision {c.mixed_precision!r} is not available here ({str(exc).splitlines()[0]}); use 'no'") from None
    main, device, rank = accelerator.is_main_process, accelerator.device, accelerator.process_index
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(c.mixed_precision, torch.float32)

    with _logging_to(out, main), _reset_accelerate_state_after(), contextlib.ExitStack() as on_exit:
        if not resume and complete_checkpoints(ckpt_dir):
            raise T2VError(f"{out} already has checkpoints (last: {complete_checkpoints(ckpt_dir)[-1][1].name}); pass --resume to continue or choose another output_dir")

        # 2. Model parts and data; fresh weights come from the seed (the same on every process).
        set_seed(c.seed)
        parts = build_parts(c)
        dataset = build_dataset(c)
        stream = BatchStream(dataset, batch_size=c.data.batch_size, seed=c.data.seed, rank=rank,
                             world_size=accelerator.num_processes, num_workers=c.data.num_workers)
        params = list(parts.trainable.values())
        log.info("%s stage: %s trainable parameters of %s in the U-Net%s; %d samples, %d processes",
                 c.stage, f"{sum(p.numel() for p in params):,}", f"{sum(p.numel() for p in parts.unet.parameters()):,}",
                 " (+ text encoder)" if c.model.train_text_encoder else "", len(dataset), accelerator.num_processes)

        # 3. Optimizer, LR schedule (accelerate steps a prepared scheduler once per process), EMA.
        optimizer = torch.optim.AdamW(params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay)
        n = accelerator.num_processes
        lr_scheduler = get_scheduler("constant_with_warmup" if o.schedule == "constant" else o.schedule, optimizer,
                                     num_warmup_steps=o.warmup_steps * n, num_training_steps=c.max_steps * n)
        train_te = c.model.train_text_encoder
        if train_te:
            unet, text_encoder, optimizer, lr_scheduler = accelerator.prepare(parts.unet, parts.text_encoder, optimizer, lr_scheduler)
        else:
            unet, optimizer, lr_scheduler = accelerator.prepare(parts.unet, optimizer, lr_scheduler)
            text_encoder = _to(parts.text_encoder, device, weight_dtype).eval()
        vae = _to(parts.vae, device, weight_dtype) if parts.vae is not None else None
        ema, generator = _ema_and_generator(accelerator, params, c, rank)

        # 4. Resume: the newest complete checkpoint restores everything, including the data position.
        step, resumed = 0, None
        if resume:
            resumed = latest_checkpoint(ckpt_dir)
            if resumed is None:
                log.info("no complete checkpoint in %s: starting at step 0", ckpt_dir)
            else:
                state = load_checkpoint(accelerator, resumed, generator=generator)
                _check_same_config(state["config"], config_to_dict(c), resumed)
                step = state["step"]
                stream.load_state_dict(state["stream"])
                if ema is not None:
                    ema.to(device)
                log.info("resumed from %s (step %d)", resumed, step)
        if main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(c), sort_keys=False))

        # 5. The loop: one optimizer step = `gradient_accumulation` batches on each process.
        writer = _tensorboard(out / "logs", on_exit) if main and c.logging.tensorboard else None
        nan_at, hang_after = int(os.environ.get(NAN_ENV, 0)), int(os.environ.get(HANG_ENV, 0))
        losses, window, grad_norm, reported_skips = [], [], float("nan"), 0
        tick = time.perf_counter()
        bar = tqdm(total=c.max_steps, initial=step, desc=f"train {c.stage}", disable=not (main and c.logging.progress),
                   dynamic_ncols=True, file=sys.stderr)
        unet.train()
        text_encoder.train(train_te)
        while step < c.max_steps:
            step_loss = 0.0
            for _ in range(c.gradient_accumulation):
                batch = next(stream)
                with accelerator.accumulate(*([unet, text_encoder] if train_te else [unet])):
                    video = batch["video"].to(device)  # (B, 3, F, H, W) in [-1, 1]
                    b = video.shape[0]
                    drop = (torch.rand(b, generator=generator) < c.data.caption_dropout).tolist()
                    captions = ["" if d else cap for d, cap in zip(drop, batch["caption"])]
                    image_only = (torch.rand(b, generator=generator) < c.data.image_fraction).to(device)  # (B,)
                    x0 = encode_pixels(vae, video.to(weight_dtype) if vae is not None else video, generator).float()  # (B, C, F, h, w)
                    if train_te:
                        ids = parts.tokenizer(captions, padding="max_length", max_length=parts.tokenizer.model_max_length,
                                              truncation=True, return_tensors="pt").input_ids.to(device)
                        text = text_encoder(ids)[0]  # (B, L, D)
                    else:
                        text = encode_prompts(parts.tokenizer, text_encoder, captions, device).float()  # (B, L, D)
                    if c.stage == "image":
                        x0, cond = x0[:, :, 0], {"encoder_hidden_states": text}  # (B, C, h, w): single frames
                    else:
                        cond = {"encoder_hidden_states": text, "fps": batch["fps"].to(device), "image_only": image_only}
                    loss = diffusion_loss(unet, parts.noise_scheduler, x0, cond, snr_gamma=c.diffusion.snr_gamma,
                                          generator=generator, timestep_distribution=c.diffusion.timestep_distribution,
                                          logit_mean=c.diffusion.logit_mean, logit_std=c.diffusion.logit_std,
                                          timestep_shift=c.diffusion.timestep_shift).loss
                    if step + 1 == nan_at:
                        loss = loss * float("nan")
                    mean_loss = accelerator.reduce(loss.detach(), "mean")  # the same on every process
                    if not torch.isfinite(mean_loss):
                        _stop_on_bad_value("loss", mean_loss.item(), step + 1, ckpt_dir)
                    accelerator.backward(loss)
                    norm = _optimizer_step(accelerator, params, optimizer, lr_scheduler, c, step, ckpt_dir)
                    grad_norm = grad_norm if norm is None else norm
                step_loss += mean_loss.item() / c.gradient_accumulation
            step += 1
            _end_step(step_loss, ema, params, losses, window, bar)

            # 6. Logs, samples, checkpoints.
            if step % c.logging.every == 0 or step == c.max_steps:
                now = time.perf_counter()
                skipped, summary = skip_summary(dataset)
                if writer is not None:
                    for tag, value in (("train/loss", sum(window) / len(window)), ("train/lr", lr_scheduler.get_last_lr()[0]),
                                       ("train/grad_norm", grad_norm), ("train/it_per_s", len(window) / (now - tick)),
                                       ("data/skipped", skipped)):
                        writer.add_scalar(tag, value, step)
                if skipped > reported_skips:
                    log.warning("%s (see the warnings above for which and why)", summary)
                    reported_skips = skipped
                window, tick = [], now
            if main and c.logging.sample_every and step % c.logging.sample_every == 0:
                with _ema_weights(ema, params), torch.random.fork_rng(devices=[]):
                    _log_samples(c, parts, accelerator.unwrap_model(unet), accelerator.unwrap_model(text_encoder), vae, out, step, writer)
            _maybe_checkpoint(accelerator, c, step, ckpt_dir, generator, stream)
            if step == hang_after:
                (out / f"test-hang-{step}").touch()
                time.sleep(600)
        bar.close()

        # 7. The final model, with the EMA weights.
        accelerator.wait_for_everyone()
        if os.environ.get(DUMP_ENV):
            _dump_weights(Path(os.environ[DUMP_ENV]), accelerator, unet, parts)
        skipped, summary = skip_summary(dataset)
        if skipped > reported_skips:
            log.warning(summary)
        output = None
        if main:
            with _ema_weights(ema, params):
                output = _write_output(c, parts, accelerator.unwrap_model(unet), accelerator.unwrap_model(text_encoder), vae)
            log.info("wrote %s", output)
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return TrainResult(step=step, losses=losses, output=output, skipped=skipped, resumed_from=resumed)


# ------------------------------------------------------------------------------------------------
# helpers of the loop
# ------------------------------------------------------------------------------------------------
def _no_accelerator_device() -> bool:
    """True on a CPU-only machine. accelerate then runs the processes that `accelerate launch
    --multi_gpu --num_processes N` (torchrun) starts as one CPU group with gloo (MULTI_CPU); without
    `cpu=True` each would train alone."""
    import accelerate.utils as au

    checks = ("is_cuda_available", "is_xpu_available", "is_npu_available", "is_mlu_available", "is_musa_available",
              "is_hpu_available", "is_neuron_available", "is_mps_available")
    return not any(getattr(au, name)() for name in checks if hasattr(au, name))


def _to(module: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """A frozen module on the device, in the mixed-precision dtype (fp32 modules are not cast)."""
    return module.to(device) if dtype == torch.float32 else module.to(device, dtype=dtype)


def _optimizer_step(accelerator: Any, params: list, optimizer: Any, lr_scheduler: Any, c: TrainConfig, step: int,
                    ckpt_dir: Path) -> Optional[float]:
    """Clip (on the micro-step that syncs), step and zero the optimizer: the gradient norm, or None on
    a micro-step that does not sync. A non-finite norm stops the run (fp16: the scaler skips the step)."""
    norm = None
    if accelerator.sync_gradients:
        norm = float(accelerator.clip_grad_norm_(params, c.optim.max_grad_norm or float("inf")))
        if not math.isfinite(norm) and c.mixed_precision != "fp16":
            _stop_on_bad_value("gradient norm", norm, step + 1, ckpt_dir)
    optimizer.step()
    lr_scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


def _end_step(step_loss: float, ema: Any, params: list, losses: list, window: list, bar: Any) -> None:
    """After an optimizer step: EMA, the loss records, the progress bar."""
    if ema is not None:
        ema.step(params)
    losses.append(step_loss)
    window.append(step_loss)
    bar.update(1)
    bar.set_postfix(loss=f"{step_loss:.4f}", refresh=False)


def _maybe_checkpoint(accelerator: Any, c: TrainConfig, step: int, ckpt_dir: Path, generator: torch.Generator, stream: Any) -> None:
    """Every `checkpoint.every` steps: weights, optimizer, RNG and data position, atomically."""
    if c.checkpoint.every and step % c.checkpoint.every == 0:
        path = save_checkpoint(accelerator, ckpt_dir, step, generator=generator, keep=c.checkpoint.keep,
                               state={"stream": stream.state_dict(), "config": config_to_dict(c)})
        log.info("checkpoint %s", path)


def _stop_on_bad_value(what: str, value: float, step: int, ckpt_dir: Path) -> None:
    """Stop training on a NaN/inf: nothing is written, so the last checkpoint stays the last good one."""
    done = complete_checkpoints(ckpt_dir)
    keep = f"the last good checkpoint is {done[-1][1]} (continue with --resume)" if done else "no checkpoint was written yet"
    raise T2VError(f"the {what} is {value} at step {step}: training stopped; {keep}; lower optim.lr or check the data")


def _check_same_config(saved: dict, now: dict, path: Path) -> None:
    def flat(d: dict, prefix: str = "") -> dict:
        items = {}
        for k, v in d.items():
            items.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
        return items

    a, b = flat(saved), flat(json.loads(json.dumps(now)))
    # A field added to the config after the checkpoint was written is absent from it; at its default
    # value it keeps the old behaviour, so it does not block the resume.
    sections = {f.name: dataclasses.asdict(f.default_factory()) for f in dataclasses.fields(TrainConfig)
                if f.default_factory is not dataclasses.MISSING}  # each section's defaults (no validation)
    defaults = flat(json.loads(json.dumps(sections)))
    for key in sorted(set(a) | set(b)):
        if key not in a and key in defaults and b.get(key) == defaults[key]:
            continue
        if a.get(key) != b.get(key) and not key.startswith(RESUMABLE_CHANGES):
            raise T2VError(f"checkpoint {path} was made with {key} = {a.get(key)!r}, now {b.get(key)!r}; "
                           "restore the config to resume, or train into a new output_dir")


@contextlib.contextmanager
def _ema_weights(ema: Any, params: list) -> Iterator[None]:
    """Swap the EMA weights in for the duration (bit-exact restore afterwards)."""
    if ema is None:
        yield
        return
    ema.store(params)
    ema.copy_to(params)
    try:
        yield
    finally:
        ema.restore(params)


def _log_samples(c: TrainConfig, parts: Any, unet: Any, text_encoder: Any, vae: Any, out: Path, step: int, writer: Any) -> None:
    from t2v.training.samples import sample_videos, write_samples

    prompts = list(c.logging.sample_prompts) or ["a red circle moving right"]
    was_training = unet.training
    unet.eval()
    try:
        videos = sample_videos(
            unet, text_encoder, parts.tokenizer, vae, parts.schedule, prompts,
            num_frames=1 if c.stage == "image" else c.data.num_frames, height=c.data.height, width=c.data.width,
            steps=c.logging.sample_steps, guidance=c.logging.sample_guidance, seed=c.logging.sample_seed,
            fps=c.data.target_fps or 8.0, device=next(unet.parameters()).device,
        )  # (B, 3, F, H, W)
        path = write_samples(videos, prompts, out / "samples", step, fps=c.data.target_fps or 8.0, writer=writer)
        log.info("samples %s", path)
    finally:
        unet.train(was_training)


def _write_output(c: TrainConfig, parts: Any, unet: Any, text_encoder: Any, vae: Any) -> Path:
    out = Path(c.output_dir)
    if c.stage == "tune":
        from t2v.pipelines.tune_a_video import save_tuned

        return save_tuned(out, unet, record=tune_record(c))
    from t2v.training.export import write_model_folder

    return write_model_folder(out / "model", unet=unet, text_encoder=text_encoder.float(), tokenizer=parts.tokenizer,
                              schedule=parts.schedule, vae=vae.float() if vae is not None else None,
                              base_index=parts.index, extra={"_t2v_stage": c.stage}, vae_folder=parts.vae_folder)


def _dump_weights(folder: Path, accelerator: Any, unet: Any, parts: Any) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().cpu().contiguous() for n, p in parts.trainable.items()}
    save_file(tensors, str(folder / f"rank{accelerator.process_index}.safetensors"))


def _ema_and_generator(accelerator: Any, params: list, c: TrainConfig, rank: int) -> tuple[Any, torch.Generator]:
    """The EMA of `params` (diffusers `EMAModel`, saved with every checkpoint; None when disabled) and
    this process's generator (noise, timesteps), seeded from (seed, rank) so that ranks draw differently."""
    from diffusers.training_utils import EMAModel

    ema = EMAModel(params, decay=c.ema.decay, update_after_step=c.ema.update_after_step) if c.ema.enabled else None
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    return ema, torch.Generator().manual_seed(int(np.random.SeedSequence([c.seed, rank]).generate_state(1)[0]))


def _tensorboard(logdir: Path, on_exit: contextlib.ExitStack) -> Any:
    """A SummaryWriter that `on_exit` closes however the run ends (also on a NaN stop or an error), so
    that the steps logged before it are on disk: the writer queues events and flushes every 2 min."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(logdir))
    on_exit.callback(writer.close)
    return writer


@contextlib.contextmanager
def _reset_accelerate_state_after() -> Iterator[None]:
    """accelerate keeps one process-wide state whose precision cannot change; forget it when the run
    ends, so that a later `train` in the same process (a notebook, the tests) may choose another. The
    process group (PartialState) stays."""
    from accelerate.state import AcceleratorState, GradientState

    try:
        yield
    finally:
        AcceleratorState._reset_state()
        GradientState._reset_state()


class _TqdmHandler(logging.Handler):
    """Log lines above the progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


@contextlib.contextmanager
def _logging_to(out: Path, main: bool) -> Iterator[None]:
    """t2v's log lines (training, skipped clips) to the console and, on the main process, to out/train.log."""
    logger = logging.getLogger("t2v")
    handlers: list[logging.Handler] = []
    console = _TqdmHandler(logging.INFO if main else logging.WARNING)
    console.setFormatter(logging.Formatter("%(message)s"))
    handlers.append(console)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(out / "train.log")
        file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(file)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    for h in handlers:
        logger.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(old_level)
