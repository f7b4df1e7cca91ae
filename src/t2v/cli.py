"""The `t2v` command. The only module that reads argv.

Each command imports its heavy dependencies (torch, diffusers) inside its body so that
`t2v --help` stays fast. A `T2VError` anywhere below becomes one red line and exit status 2.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from t2v.errors import T2VError

app = typer.Typer(
    name="t2v",
    help="Text-to-video diffusion: VDM, Make-A-Video, Tune-A-Video and Video LDM on one inflation mechanism.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
eval_app = typer.Typer(help="Measure videos: FVD, IS, CLIPSIM, CLIP frame consistency, the ShapesWorld oracle.", no_args_is_help=True)
data_app = typer.Typer(help="Look at data sets: ShapesWorld, caption folders, WebVid CSVs.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(data_app, name="data")

err = Console(stderr=True)


# True once `entry_point()` runs: the process is the t2v command and ends with it, so freezing its heap is
# safe. In-process callers (tests, notebooks) run the same commands with the collector untouched.
_process_is_command = False


@contextmanager
def startup_imports(freeze: Optional[bool] = None) -> Iterator[None]:
    """Around a command's imports of torch, diffusers and transformers: no cyclic collection while
    they run, then `gc.freeze()`; by default only when the process is the command (`entry_point`),
    `freeze=True` for a script whose process is one such run (benchmarks/generate.py).

    Those imports create ~430k long-lived objects, and CPython's collector (3.11) rescans all of them
    at every full collection while they are created: about 0.8 s of `t2v generate`'s start-up on
    2 cores (docs/default_model.md). Frozen objects are never scanned again and are still freed by
    reference counting; collection of the objects made later is as usual."""
    if not (_process_is_command if freeze is None else freeze):
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


# --------------------------------------------------------------------------------------------
# generate (issue 5)
# --------------------------------------------------------------------------------------------
@app.command(help="Generate a video from a text prompt (or one per line of --prompts FILE) and print where it was written.")
def generate(
    prompt: Optional[str] = typer.Argument(None, help="What the video shows."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model folder (unet/, text_encoder/, scheduler/, vae/). Default: the embedded model."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="FILE.mp4 / .gif / .webm, or a folder (default: outputs/). With --prompts, a folder."),
    num_frames: int = typer.Option(16, "--num-frames", help="Frames per video."),
    height: Optional[int] = typer.Option(None, "--height", help="Height in pixels (default: the model's size)."),
    width: Optional[int] = typer.Option(None, "--width", help="Width in pixels (default: the model's size)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of the video (and Make-A-Video's fps conditioning). Default 8."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampling steps (default: the model's, else 50)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Classifier-free guidance scale, 1 = none (default: the model's, else 7.5)."),
    seed: int = typer.Option(0, "--seed", help="Seed; video i of --prompts uses seed + i."),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", help="What to steer away from (replaces the empty prompt of guidance)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="ddim, dpm++, dpm++sde, euler or ddpm (default: the model's)."),
    timestep_shift: Optional[float] = typer.Option(None, "--timestep-shift", help="Move the sampling steps toward noise (SD3's shift; 1 = none; default: the model's, else 1)."),
    high_noise_guidance: Optional[str] = typer.Option(None, "--high-noise-guidance", help="G@T: guidance G at the sampling steps with t >= T, where the motion is decided (e.g. 8@900; none = off; default: the model's)."),
    temporal_guidance: Optional[str] = typer.Option(None, "--temporal-guidance", help="S@T: at the steps with t >= T, also push away from the image model (temporal layers skipped) by S: spatiotemporal skip guidance (e.g. 1@750; none = off; default: the model's)."),
    prompts_file: Optional[Path] = typer.Option(None, "--prompts", help="Text file, one prompt a line: one video each, written into --out as a folder."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)."),
    cascade: bool = typer.Option(False, "--cascade", help="Run the cascade: keyframes -> temporal decoder -> interpolation -> super-resolution (docs/cascade.md)."),
    keyframes: int = typer.Option(8, "--keyframes", help="With --cascade: keyframes the base model samples."),
    factor: Optional[list[int]] = typer.Option(None, "--factor", help="With --cascade: interpolation factor 2 or 4, repeatable (--factor 2 --factor 2). Default 4."),
    stages: Optional[Path] = typer.Option(None, "--stages", help="With --cascade: folder with interpolate/, upscale/ and vae_temporal/ stage folders (default: the shipped ShapesWorld stages)."),
    no_upscale: bool = typer.Option(False, "--no-upscale", help="With --cascade: stop after interpolation (64x64)."),
) -> None:
    with startup_imports():
        import torch

        from t2v.diffusion.schedulers import make_scheduler
        from t2v.data.video_io import write_video
        from t2v.pipelines.naming import is_video_file, video_name
        from t2v.pipelines.text_to_video import (DEFAULT_FPS, TextToVideoPipeline, check_request,
                                                 parse_high_noise_guidance, parse_temporal_guidance)

    # 1. Everything that needs no model, so that a typo fails fast.
    if (prompt is None) == (prompts_file is None):
        raise T2VError("give either a PROMPT or --prompts FILE (one prompt a line)")
    if prompts_file is not None:
        if not prompts_file.is_file():
            raise T2VError(f"--prompts {prompts_file} is not a file; give a text file with one prompt a line")
        prompts = [line.strip() for line in prompts_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not prompts:
            raise T2VError(f"--prompts {prompts_file} has no prompts; write one prompt a line")
        if out is not None and is_video_file(out):
            raise T2VError(f"with --prompts, --out is a folder for the videos; got the file name {out}")
    else:
        prompts = [prompt]
    check_request(prompts, num_frames, steps if steps is not None else 1)
    if scheduler is not None:
        make_scheduler(scheduler)
    if fps is not None and fps <= 0:
        raise T2VError(f"--fps must be positive, got {fps}")
    if timestep_shift is not None and not timestep_shift > 0:
        raise T2VError(f"--timestep-shift must be positive (1 = no shift), got {timestep_shift}")
    high = None if high_noise_guidance is None else parse_high_noise_guidance(high_noise_guidance)
    skip = None if temporal_guidance is None else parse_temporal_guidance(temporal_guidance)
    for flag, value in (("--timestep-shift", timestep_shift), ("--high-noise-guidance", high), ("--temporal-guidance", skip)):
        if cascade and value is not None:
            raise T2VError(f"{flag} is for the base model alone; the cascade samples with each model's defaults")

    if cascade:
        from t2v.pipelines.cascade_files import generate_cascade

        paths = generate_cascade(prompts, model=model, stages=stages, keyframes=keyframes, factors=factor or [4],
                                 super_resolve=not no_upscale, out=out, prompts_file=prompts_file is not None,
                                 fps=fps or DEFAULT_FPS, steps=steps, guidance=guidance, seed=seed,
                                 negative_prompt=negative_prompt, scheduler=scheduler, device=device)
        for path in paths:
            print(path)
        return
    if keyframes != 8 or factor or stages is not None or no_upscale:
        raise T2VError("--keyframes, --factor, --stages and --no-upscale need --cascade")

    # 2. The model, then one video per prompt (video i seeded seed + i, as in a batch).
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = TextToVideoPipeline.from_pretrained(model, device=device)
    for i, p in enumerate(prompts):
        video = pipe(
            [p], negative_prompt=negative_prompt, num_frames=num_frames, height=height, width=width, fps=fps,
            num_inference_steps=steps, guidance_scale=guidance, seed=seed + i, scheduler=scheduler,
            timestep_shift=timestep_shift, high_noise_guidance=high, temporal_guidance=skip,
        )  # (1, C, F, H, W)
        if prompts_file is not None:
            path = (out or Path("outputs")) / video_name(p, i)
        elif out is not None and is_video_file(out):
            path = out
        else:
            path = (out or Path("outputs")) / video_name(p)
        write_video(path, video[0], fps or DEFAULT_FPS)
        print(path)


# --------------------------------------------------------------------------------------------
# train (issue 6)
# --------------------------------------------------------------------------------------------
@app.command(help="Train a stage (image, video, tune, or the cascade's interpolate, upscale, vae-decoder) from a YAML config (see configs/); also under `accelerate launch`.")
def train(
    config: Path = typer.Argument(..., help="YAML preset, e.g. configs/shapes_image.yaml."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a config value: --set optim.lr=3e-4 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint in output_dir/checkpoints."),
) -> None:
    from t2v.training.config import load_config
    from t2v.training.loop import train as run_training

    result = run_training(load_config(config, set_ or []), resume=resume)
    if result.output is not None:
        print(result.output)


# --------------------------------------------------------------------------------------------
# tune (the training loop, issue 6) / edit (the Tune-A-Video pipeline, issue 5)
# --------------------------------------------------------------------------------------------
@app.command(help="Tune-A-Video: one-shot tuning of a text-to-image model on one text-video pair; writes a tuned folder for `t2v edit`.")
def tune(
    model: Path = typer.Option(..., "--model", help="Stable Diffusion folder (unet/, text_encoder/, tokenizer/, scheduler/, vae/)."),
    video: Path = typer.Option(..., "--video", help="The clip to tune on."),
    prompt: str = typer.Option(..., "--prompt", help="Its caption, e.g. 'a man is skiing'."),
    steps: int = typer.Option(..., "--steps", help="Optimizer steps (the paper: 500)."),
    out: Path = typer.Option(..., "--out", help="Tuned folder: unet_delta.safetensors + tune.json (+ logs/)."),
    lr: float = typer.Option(3e-5, "--lr", help="AdamW learning rate."),
    num_frames: int = typer.Option(24, "--num-frames", help="Frames taken from the clip."),
    stride: int = typer.Option(1, "--stride", help="Keep every n-th frame (the paper's sample_frame_rate)."),
    height: Optional[int] = typer.Option(None, "--height", help="Default: the model's native size."),
    width: Optional[int] = typer.Option(None, "--width", help="Default: the model's native size."),
    lora: Optional[int] = typer.Option(None, "--lora", help="Train peft LoRA adapters of this rank on to_q instead of to_q itself."),
    seed: int = typer.Option(0, "--seed"),
    mixed_precision: str = typer.Option("no", "--mixed-precision", help="no, fp16 (GPU) or bf16."),
    gradient_checkpointing: bool = typer.Option(True, "--gradient-checkpointing/--no-gradient-checkpointing"),
) -> None:
    from t2v.training.loop import train as run_training
    from t2v.training.tune import tune_config

    config = tune_config(model, video, prompt, steps, out, lr=lr, num_frames=num_frames, stride=stride, height=height,
                         width=width, lora_rank=lora, seed=seed, mixed_precision=mixed_precision,
                         gradient_checkpointing=gradient_checkpointing)
    result = run_training(config)
    if result.output is not None:
        print(result.output)


@app.command(help="Tune-A-Video: edit a tuned video with new prompts (DDIM inversion + sampling); writes one video per prompt and a side-by-side comparison.")
def edit(
    tuned: Optional[Path] = typer.Option(None, "--tuned", help="Folder written by `t2v tune` (tune.json + unet_delta.safetensors)."),
    prompts: Optional[list[str]] = typer.Option(None, "--prompt", help="Edited prompt; repeat for several edits."),
    steps: int = typer.Option(50, "--steps", help="DDIM steps of inversion and sampling (the inversion is cached per step count)."),
    guidance: float = typer.Option(12.5, "--guidance", help="Classifier-free guidance scale of the edits (Tune-A-Video uses 12.5)."),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", help="What to steer the edits away from."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the videos (default: outputs/edit-NAME)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of the written videos (default: the sampled source clip's)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if available)."),
) -> None:
    import torch

    from t2v.data.video_io import write_video
    from t2v.pipelines.comparison import side_by_side
    from t2v.pipelines.naming import video_name
    from t2v.pipelines.text_to_video import check_request
    from t2v.pipelines.tune_a_video import edit as edit_videos
    from t2v.pipelines.tune_a_video import load_tuned, read_record, source_clip

    if tuned is None:
        raise T2VError("pass --tuned DIR, a folder written by `t2v tune`")
    if not prompts:
        raise T2VError("pass at least one --prompt with the edited description")
    check_request(prompts, 1, steps)
    if fps is not None and fps <= 0:
        raise T2VError(f"--fps must be positive, got {fps}")
    read_record(tuned)  # a wrong folder fails before the model loads

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe, record = load_tuned(tuned, device=device)
    source, source_fps = source_clip(record)  # (C, F, H, W)
    videos = edit_videos(pipe, record, prompts, steps, guidance, negative_prompt=negative_prompt)
    out = out or Path("outputs") / f"edit-{tuned.resolve().name}"
    rate = fps or source_fps
    for i, (p, v) in enumerate(zip(prompts, videos)):
        print(write_video(out / video_name(p, i), v, rate))
    row = side_by_side([source, *videos], [f"source: {record['prompt']}", *prompts])
    print(write_video(out / "comparison.mp4", row, rate))


# --------------------------------------------------------------------------------------------
# serve (issue 11)
# --------------------------------------------------------------------------------------------
@app.command(help="A local web page: generate, watch progress, cancel, tune on an uploaded clip and compare edits, browse results.")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. 0.0.0.0 exposes the page (no login) to the network."),
    port: int = typer.Option(7860, "--port", help="TCP port."),
    model: Optional[list[Path]] = typer.Option(None, "--model", help="Model folder (repeatable; the page offers each). Default: the embedded model."),
    results: Path = typer.Option(Path("outputs/serve"), "--results", help="Folder for results (a JSON of settings beside each video) and uploads."),
    max_frames: int = typer.Option(32, "--max-frames", help="Most frames per video (and per tuning clip)."),
    max_size: int = typer.Option(256, "--max-size", help="Most pixels of the height and of the width."),
    max_steps: int = typer.Option(100, "--max-steps", help="Most sampling / inversion steps."),
    max_tune_steps: int = typer.Option(50, "--max-tune-steps", help="Most optimizer steps of a tuning."),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", help="Largest upload, MB (1e6 bytes)."),
    max_clip_mb: float = typer.Option(500.0, "--max-clip-mb", help="Largest uploaded clip once decoded (frames x H x W x 3 bytes), MB."),
    max_edit_prompts: int = typer.Option(4, "--max-edit-prompts", help="Most edited prompts per tuning."),
    max_queue: int = typer.Option(8, "--max-queue", help="Most jobs waiting per model."),
) -> None:
    from t2v.serve import ServeLimits, run_server

    limits = ServeLimits(max_frames=max_frames, max_size=max_size, max_steps=max_steps, max_tune_steps=max_tune_steps,
                         max_upload_mb=max_upload_mb, max_clip_mb=max_clip_mb, max_edit_prompts=max_edit_prompts,
                         max_queue=max_queue)
    run_server(list(model or []), results, limits, host=host, port=port)


# --------------------------------------------------------------------------------------------
# the cascade's stages (issue 9)
# --------------------------------------------------------------------------------------------
@app.command(help="Frame interpolation: N frames -> (N-1)*factor+1 with a masked-conditioning video model (Make-A-Video / Video LDM).")
def interpolate(
    video: Path = typer.Argument(..., help="Input video (mp4, gif, webm, a folder of frames, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output video file (.mp4/.gif/.webm) or a folder for PNG frames."),
    factor: int = typer.Option(4, "--factor", help="2 or 4: frames made between each pair of neighbours + 1."),
    model: Optional[Path] = typer.Option(None, "--model", help="Interpolation stage folder (default: the shipped ShapesWorld stage)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampling steps (default: the stage's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled frames."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of the output (default: the input's times the factor)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if available)."),
) -> None:
    from t2v.pipelines.cascade_files import run_stage_on_file

    print(run_stage_on_file("interpolate", video, out, model=model, factor=factor, steps=steps, seed=seed, fps=fps, device=device))


@app.command(help="Video super-resolution (2x) with a noise-augmented, upsampled-clip-conditioned video model (Make-A-Video's SR).")
def upscale(
    video: Path = typer.Argument(..., help="Input video (mp4, gif, webm, a folder of frames, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output video file (.mp4/.gif/.webm) or a folder for PNG frames."),
    model: Optional[Path] = typer.Option(None, "--model", help="Super-resolution stage folder (default: the shipped ShapesWorld stage, 64 -> 128)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampling steps (default: the stage's)."),
    noise_level: Optional[float] = typer.Option(None, "--noise-level", help="Augmentation level of the condition in [0, 1] (default: the stage's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and the augmentation noise."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of the output (default: the input's)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if available)."),
    self_ensemble: Optional[int] = typer.Option(None, "--self-ensemble", help="Average over 1, 2, 4 or 8 flips of the clip (width, height, time; n times the work; default: the stage's)."),
) -> None:
    from t2v.pipelines.cascade_files import run_stage_on_file

    print(run_stage_on_file("upscale", video, out, model=model, steps=steps, noise_level=noise_level, seed=seed, fps=fps,
                            device=device, self_ensemble=self_ensemble))


# --------------------------------------------------------------------------------------------
# inflate (issue 4)
# --------------------------------------------------------------------------------------------
@app.command(help="Inflate a Stable Diffusion (diffusers) U-Net into a video U-Net with a paper's recipe.")
def inflate(
    source: Path = typer.Option(..., "--from", help="Stable Diffusion folder (with unet/) or a diffusers U-Net folder."),
    recipe: str = typer.Option("video-ldm", help="vdm, make-a-video, tune-a-video or video-ldm."),
    out: Path = typer.Option(..., "--out", help="New model folder: unet/ (video U-Net) + the other parts copied."),
    overwrite: bool = typer.Option(False, help="Replace OUT if it exists and is not empty."),
) -> None:
    from t2v.models import get_recipe, inflate_folder

    rec = get_recipe(recipe)  # fail on a bad name before loading anything
    folder = inflate_folder(source, rec, out, overwrite=overwrite)
    print(f"wrote {folder} (unet/: VideoUNet, recipe {rec.name})")


# --------------------------------------------------------------------------------------------
# eval (issues 7, 8)
# --------------------------------------------------------------------------------------------
def _eval_report(title: str, rows: list[tuple[str, str, str]], payload: dict, json_out: Optional[Path]) -> None:
    """Print the metric table to stdout and write the JSON report (issue 8)."""
    import json

    from rich.table import Table

    table = Table(title=title)
    for col in ("set", "value", "videos"):
        table.add_column(col, justify="right" if col != "set" else "left")
    for name, value, n in rows:
        table.add_row(name, value, n)
    Console().print(table)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(payload, indent=2) + "\n")
        Console().print(f"report written to {json_out}")


def _clips_with_progress(paths: list, frames: Optional[int], stride: int, skip_short: bool, skipped: list, desc: str):
    """Decoded clips of `paths` behind a progress bar on stderr, drawn on terminals only; use it as a
    context manager so that an error clears the bar before its one line (issue 8)."""
    from tqdm import tqdm

    from t2v.metrics.video_folder import iter_clips

    clips = iter_clips(paths, frames, stride, "skip" if skip_short else "error", skipped=skipped)
    return tqdm(clips, total=len(paths), desc=desc, unit="video", file=sys.stderr, leave=False, disable=None)


def _weights_file(weights: Optional[str], known_urls: list[str], where: str) -> Path:
    """--weights as a file, or a URL fetched into the cache; without it a cached known download (issue 8)."""
    from t2v.metrics.download import cached_path, fetch

    if weights is not None:
        path = fetch(weights)
        if not path.is_file():
            raise T2VError(f"weights file {path} not found: download {where}")
        return path
    for url in known_urls:
        if cached_path(url).is_file():
            return cached_path(url)
    raise T2VError(f"weights needed: pass --weights FILE or URL ({where})")


_FRAMES = typer.Option(16, "--frames", help="frames per clip (the first ones)")
_STRIDE = typer.Option(1, "--stride", help="take every n-th frame")
_SKIP = typer.Option(False, "--skip-short", help="leave out videos shorter than the clip instead of failing")
_JSON = typer.Option(None, "--json", help="write a JSON report here")
_DEVICE = typer.Option("cpu", "--device", help="torch device")
_BATCH = typer.Option(8, "--batch-size", help="clips per forward pass")


@eval_app.command("fvd", help="Frechet Video Distance between two folders of videos (I3D Kinetics-400 features, Unterthiner et al. 2018).")
def eval_fvd(
    real: Path = typer.Option(..., "--real", help="folder of real videos"),
    fake: Path = typer.Option(..., "--fake", help="folder of generated videos"),
    weights: Optional[str] = typer.Option(None, "--weights", help="I3D weights: pytorch-i3d rgb_imagenet.pt, StyleGAN-V i3d_torchscript.pt, or a URL (downloaded once to ~/.cache/t2v)"),
    frames: int = _FRAMES,
    stride: int = _STRIDE,
    size: int = typer.Option(224, "--size", help="frame size fed to I3D"),
    resize: str = typer.Option("squash", "--resize", help="squash (original FVD) or center-crop (short side + center crop)"),
    feature: str = typer.Option("logits", "--feature", help="logits (400, original FVD) or pool (1024)"),
    batch_size: int = _BATCH,
    device: str = _DEVICE,
    skip_short: bool = _SKIP,
    json_out: Optional[Path] = _JSON,
) -> None:
    from dataclasses import asdict

    from t2v.metrics.fvd import FVDConfig, feature_statistics, fvd_from_statistics, i3d_extractor
    from t2v.metrics.video_folder import list_videos
    from t2v.models.i3d import PYTORCH_I3D_URL, STYLEGAN_V_I3D_URL, WHERE_TO_GET, load_i3d

    resize_mode = {"squash": "squash", "center-crop": "center_crop", "center_crop": "center_crop"}.get(resize)
    if resize_mode is None:
        raise T2VError(f"--resize {resize!r}: use squash or center-crop")
    if feature not in ("logits", "pool"):
        raise T2VError(f"--feature {feature!r}: use logits or pool")
    config = FVDConfig(frames=frames, stride=stride, size=size, resize=resize_mode, feature=feature, batch_size=batch_size)
    real_paths, fake_paths = list_videos(real), list_videos(fake)
    weights_path = _weights_file(weights, [PYTORCH_I3D_URL, STYLEGAN_V_I3D_URL], WHERE_TO_GET)
    extractor = i3d_extractor(load_i3d(weights_path, device), feature)
    skipped: list = []
    stats = {}
    for name, paths in (("real", real_paths), ("fake", fake_paths)):
        with _clips_with_progress(paths, frames, stride, skip_short, skipped, f"{name} videos") as clips:
            stats[name] = feature_statistics(clips, extractor, config, device)
    value = fvd_from_statistics(stats["real"], stats["fake"], config)
    payload = {
        "metric": "fvd", "value": value, "weights": str(weights_path), "config": asdict(config),
        "real": {"dir": str(real), "videos": stats["real"].n}, "fake": {"dir": str(fake), "videos": stats["fake"].n},
        "skipped": [str(p) for p in skipped],
    }
    counts = f"{stats['real'].n} real, {stats['fake'].n} fake"
    _eval_report("FVD", [("fake vs real", f"{value:.6g}", counts)], payload, json_out)


@eval_app.command("is", help="Inception Score of videos (C3D fine-tuned on UCF-101, TGAN/TGANv2 protocol).")
def eval_is(
    fake: Path = typer.Option(..., "--fake", help="folder of generated videos"),
    real: Optional[Path] = typer.Option(None, "--real", help="also score a folder of real videos (the reference)"),
    weights: Optional[str] = typer.Option(None, "--weights", help="C3D weights: StyleGAN-V c3d_ucf101.pt, TGANv2 conv3d_deepnetA_ucf.npz (mean2.npz beside it), or a URL"),
    mean: Optional[Path] = typer.Option(None, "--mean", help="TGANv2's mean2.npz when not beside the .npz weights"),
    splits: int = typer.Option(10, "--splits", help="number of splits"),
    shuffle_seed: Optional[int] = typer.Option(None, "--shuffle-seed", help="shuffle before splitting (StyleGAN-V uses 42)"),
    frames: int = _FRAMES,
    stride: int = _STRIDE,
    batch_size: int = _BATCH,
    device: str = _DEVICE,
    skip_short: bool = _SKIP,
    json_out: Optional[Path] = _JSON,
) -> None:
    from dataclasses import asdict

    from t2v.metrics.inception_score import ISConfig, class_probabilities, inception_score
    from t2v.metrics.video_folder import list_videos
    from t2v.models.c3d import C3D_NPZ_URL, STYLEGAN_V_C3D_URL, WHERE_TO_GET, load_c3d

    config = ISConfig(frames=frames, stride=stride, splits=splits, batch_size=batch_size, shuffle_seed=shuffle_seed)
    sets = [("fake", fake, list_videos(fake))] + ([("real", real, list_videos(real))] if real is not None else [])
    weights_path = _weights_file(weights, [STYLEGAN_V_C3D_URL, C3D_NPZ_URL], WHERE_TO_GET)
    classifier = load_c3d(weights_path, mean, device)
    rows, payload = [], {"metric": "is", "weights": str(weights_path), "config": asdict(config), "skipped": []}
    for name, folder, paths in sets:
        with _clips_with_progress(paths, frames, stride, skip_short, payload["skipped"], f"{name} videos") as clips:
            probs = class_probabilities(clips, classifier, batch_size, device)
        m, s = inception_score(probs, splits, shuffle_seed)
        payload[name] = {"dir": str(folder), "videos": int(probs.shape[0]), "mean": m, "std": s}
        rows.append((name, f"{m:.4g} ± {s:.2g}", str(probs.shape[0])))
    payload["skipped"] = [str(p) for p in payload["skipped"]]
    _eval_report(f"Inception Score ({splits} splits)", rows, payload, json_out)


def _eval_clip(
    metric: str, fake: Path, real: Optional[Path], clip: Path, prompts: Optional[Path],
    frames: Optional[int], stride: int, skip_short: bool, device: str, json_out: Optional[Path],
) -> None:
    """CLIPSIM or CLIP frame consistency of one or two folders (issue 8)."""
    from tqdm import tqdm

    from t2v.metrics.clip_score import clipsim, frame_consistency, load_clip, prompts_for_videos
    from t2v.metrics.video_folder import iter_path_clips, list_videos

    sets = [("fake", fake, list_videos(fake))] + ([("real", real, list_videos(real))] if real is not None else [])
    texts = {}
    if metric == "clipsim":  # prompts of every video before any decoding: fail early
        texts = {name: dict(zip(paths, prompts_for_videos(paths, prompts if name == "fake" else None))) for name, _, paths in sets}
    scorer = load_clip(clip, device)
    rows, payload = [], {"metric": metric, "clip": str(clip), "frames": frames, "stride": stride, "skipped": []}
    for name, folder, paths in sets:
        skipped: list = []
        pairs = iter_path_clips(paths, frames, stride, "skip" if skip_short else "error", skipped=skipped)
        scores = []
        with tqdm(pairs, total=len(paths), desc=f"{name} videos", unit="video", file=sys.stderr, leave=False, disable=None) as bar:
            for path, frames_ in bar:
                scores.append(clipsim(scorer, frames_, texts[name][path]) if metric == "clipsim" else frame_consistency(scorer, frames_))
        if not scores:
            raise T2VError(f"no videos left to score in {folder}")
        value = sum(scores) / len(scores)
        payload["skipped"] += [str(p) for p in skipped]
        payload[name] = {"dir": str(folder), "videos": len(scores), "value": value}
        rows.append((name, f"{value:.4f}", str(len(scores))))
    _eval_report("CLIPSIM" if metric == "clipsim" else "CLIP frame consistency", rows, payload, json_out)


_CLIP = typer.Option(..., "--clip", help="local transformers CLIP folder (e.g. openai/clip-vit-base-patch32)")
_ALL_FRAMES = typer.Option(None, "--frames", help="frames per video (the first ones; default: all)")


@eval_app.command("clipsim", help="CLIPSIM: mean CLIP text-frame cosine (MSR-VTT protocol); prompts from sidecar .txt files or --prompts.")
def eval_clipsim(
    fake: Path = typer.Option(..., "--fake", help="folder of generated videos"),
    clip: Path = _CLIP,
    real: Optional[Path] = typer.Option(None, "--real", help="also score a folder of real videos (their own sidecar prompts)"),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="JSON {video name: prompt}, or one prompt a line in sorted video order"),
    frames: Optional[int] = _ALL_FRAMES,
    stride: int = _STRIDE,
    skip_short: bool = _SKIP,
    device: str = _DEVICE,
    json_out: Optional[Path] = _JSON,
) -> None:
    _eval_clip("clipsim", fake, real, clip, prompts, frames, stride, skip_short, device, json_out)


@eval_app.command("consistency", help="CLIP frame consistency: mean cosine of CLIP embeddings over all frame pairs (Tune-A-Video).")
def eval_consistency(
    fake: Path = typer.Option(..., "--fake", help="folder of generated videos"),
    clip: Path = _CLIP,
    real: Optional[Path] = typer.Option(None, "--real", help="also score a folder of real videos"),
    frames: Optional[int] = _ALL_FRAMES,
    stride: int = _STRIDE,
    skip_short: bool = _SKIP,
    device: str = _DEVICE,
    json_out: Optional[Path] = _JSON,
) -> None:
    _eval_clip("consistency", fake, real, clip, None, frames, stride, skip_short, device, json_out)


@eval_app.command("shapes", help="The ShapesWorld oracle: generate every combination (88 held-in + 8 held-out) for N seeds, read color/shape/direction back.")
def eval_shapes(
    model: Optional[Path] = typer.Option(None, "--model", help="model folder (default: the embedded default model)"),
    seeds: int = typer.Option(4, "--seeds", help="seeds per combination"),
    steps: Optional[int] = typer.Option(None, "--steps", help="sampling steps (default: the model's generation defaults)"),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="classifier-free guidance scale (default: the model's)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="ddim, dpm++, dpm++sde, euler or ddpm (default: the model's)"),
    timestep_shift: Optional[float] = typer.Option(None, "--timestep-shift", help="sampling steps moved toward noise (default: the model's, else 1)"),
    high_noise_guidance: Optional[str] = typer.Option(None, "--high-noise-guidance", help="G@T: guidance G at the steps with t >= T (none = off; default: the model's)"),
    temporal_guidance: Optional[str] = typer.Option(None, "--temporal-guidance", help="S@T: skip guidance S away from the image model at the steps with t >= T (none = off; default: the model's)"),
    num_frames: int = typer.Option(16, "--num-frames", help="frames per clip"),
    image_only: bool = typer.Option(False, "--image-only", help="skip the temporal layers: the image model frame by frame (the ablation)"),
    batch_size: int = typer.Option(8, "--batch-size", help="clips sampled together"),
    seed: int = typer.Option(0, "--seed", help="clip j of the evaluation uses generator seed SEED + j"),
    device: Optional[str] = typer.Option(None, "--device", help="torch device (default: cuda if available)"),
    json_out: Optional[Path] = _JSON,
) -> None:
    import json

    from rich.table import Table
    from tqdm import tqdm

    from t2v.metrics.shapes_eval import METRICS, evaluate_shapes, report
    from t2v.pipelines import TextToVideoPipeline
    from t2v.pipelines.text_to_video import parse_high_noise_guidance, parse_temporal_guidance

    high = None if high_noise_guidance is None else parse_high_noise_guidance(high_noise_guidance)
    skip = None if temporal_guidance is None else parse_temporal_guidance(temporal_guidance)
    pipe = TextToVideoPipeline.from_pretrained(model, device=device)
    settings = pipe.sampling_settings(steps, guidance, timestep_shift, high, skip)  # the folder's defaults filled in
    steps, guidance, timestep_shift = settings["num_inference_steps"], settings["guidance_scale"], settings["timestep_shift"]
    high = settings["high_noise_guidance"] or ()  # () and not None: the default is already resolved
    skip = () if image_only else (settings["temporal_guidance"] or ())

    def generate(prompts: list[str], first_seed: int):
        return pipe(prompts, num_frames=num_frames, num_inference_steps=steps, guidance_scale=guidance, seed=first_seed,
                    scheduler=scheduler, progress=False, image_only=image_only, timestep_shift=timestep_shift,
                    high_noise_guidance=high, temporal_guidance=skip)

    with tqdm(total=96 * seeds, desc="shapes", unit="clip", file=sys.stderr, leave=False, disable=None) as bar:
        scores, clips = evaluate_shapes(generate, seeds=seeds, batch_size=batch_size, base_seed=seed, progress=bar.update)
    high_text = f", guidance {high[0]:g} at t >= {high[1]:g}" if high else ""
    high_text += f", temporal guidance {skip[0]:g} at t >= {skip[1]:g}" if skip else ""
    title = f"ShapesWorld oracle ({'image-only ablation' if image_only else 'video model'}, {seeds} seeds, {steps} steps, guidance {guidance:g}{high_text})"
    table = Table(title=title)
    for col in ("set", "clips", *METRICS):
        table.add_column(col.replace("_", "-"), justify="left" if col == "set" else "right")
    for group in ("held_in", "held_out", "all"):
        g = scores[group]
        table.add_row(group.replace("_", "-"), str(g["n"]), *(f"{100 * g[m]:.1f}%" for m in METRICS))
    Console().print(table)
    if json_out is not None:
        settings = {"model": str(model) if model else "default", "seeds": seeds, "steps": steps, "guidance": guidance,
                    "timestep_shift": timestep_shift, "high_noise_guidance": list(high) or None,
                    "temporal_guidance": list(skip) or None, "scheduler": scheduler or pipe.parts.default_sampler, "num_frames": num_frames, "image_only": image_only, "seed": seed}
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report(scores, clips, settings), indent=2) + "\n")
        Console().print(f"report written to {json_out}")


# --------------------------------------------------------------------------------------------
# data (issue 3)
# --------------------------------------------------------------------------------------------
@data_app.command("preview", help="Write a grid video of a few samples with their captions, and print its path.")
def data_preview(
    dataset: str = typer.Argument(..., help="`shapes`, a folder of videos with .txt captions, a manifest .csv/.jsonl, or a WebVid .csv."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output .mp4 or .gif (or a folder for PNG frames). Default: outputs/preview-NAME.mp4."),
    n: int = typer.Option(8, "--n", min=1, help="Number of samples in the grid."),
    frames: int = typer.Option(16, "--frames", min=1, help="Frames per sample."),
    size: int = typer.Option(64, "--size", min=1, help="Sample height and width (short side resized, then center crop)."),
    stride: int = typer.Option(1, "--stride", min=1, help="Keep every n-th frame (Tune-A-Video's sample_frame_rate)."),
    target_fps: Optional[float] = typer.Option(None, "--target-fps", help="Resample clips to this frame rate instead of --stride."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of the preview (default: the samples' rate)."),
    seed: int = typer.Option(0, "--seed", help="Seed of ShapesWorld clips and random start offsets."),
    video_root: Optional[Path] = typer.Option(None, "--video-root", help="WebVid/manifest: folder the videos are under (default: the CSV's folder)."),
    held_out: bool = typer.Option(False, "--held-out", help="ShapesWorld: show only the 8 held-out combinations."),
) -> None:
    from t2v.data.preview import preview_grid
    from t2v.data.sampling import FrameSampling
    from t2v.data.sources import open_dataset
    from t2v.data.video_io import write_video

    sampling = FrameSampling(num_frames=frames, height=size, width=size, sample_stride=stride, target_fps=target_fps)
    ds = open_dataset(dataset, sampling, video_root=video_root, seed=seed, shapes_length=n, held_out=held_out)
    items, seen = [], set()
    for i in range(len(ds)):
        item = ds[i]
        if item["source"] not in seen:  # a skipped entry hands over to the next one: no duplicates
            seen.add(item["source"])
            items.append(item)
        if len(items) == n:
            break
    grid = preview_grid([it["video"] for it in items], [it["caption"] for it in items])
    if out is None:
        name = "shapes" if dataset == "shapes" else Path(dataset).stem or "data"
        out = Path("outputs") / f"preview-{name}.mp4"
    write_video(out, grid, fps or items[0]["fps"])
    summary = getattr(ds, "skip_summary", None)
    if summary is not None and ds.skipped:
        err.print(f"[yellow]{summary()}[/yellow]", highlight=False)
    print(out)


def main() -> None:
    """Run the app, turning a T2VError into one line on stderr and exit status 2 (also in-process)."""
    try:
        app()
    except T2VError as e:
        err.print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)


def entry_point() -> None:
    """The `t2v` executable (console script and `python -m t2v`): `main()` in a process that ends with it.

    So commands may freeze the heap after their imports (`startup_imports`), and on the way out every
    object is frozen (`gc.freeze()`): the interpreter's last cyclic collection then does not scan the
    ~430k objects of torch, diffusers and transformers, about 1.3 s of `t2v generate` on 2 cores.
    Commands close their files and writers themselves; reference counting still frees everything that
    is not in a cycle."""
    global _process_is_command
    _process_is_command = True
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":
    entry_point()
