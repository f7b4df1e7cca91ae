"""The `t2v` command. The only module that reads argv.

Each command imports its heavy dependencies (torch, diffusers) inside its body so that
`t2v --help` stays fast. A `T2VError` anywhere below becomes one red line and exit status 2.
"""

from __future__ import annotations

import sys
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


def _not_yet(what: str, issue: int) -> None:
    raise T2VError(f"`t2v {what}` is not available yet in this version (planned in issue {issue}).")


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
    steps: int = typer.Option(50, "--steps", help="Sampling steps."),
    guidance: float = typer.Option(7.5, "--guidance", help="Classifier-free guidance scale (1 = none)."),
    seed: int = typer.Option(0, "--seed", help="Seed; video i of --prompts uses seed + i."),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", help="What to steer away from (replaces the empty prompt of guidance)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="ddim, dpm++, euler or ddpm (default: the model's)."),
    prompts_file: Optional[Path] = typer.Option(None, "--prompts", help="Text file, one prompt a line: one video each, written into --out as a folder."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)."),
) -> None:
    import torch

    from t2v.diffusion.schedulers import make_scheduler
    from t2v.data.video_io import write_video
    from t2v.pipelines.naming import is_video_file, video_name
    from t2v.pipelines.text_to_video import DEFAULT_FPS, TextToVideoPipeline, check_request

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
    check_request(prompts, num_frames, steps)
    if scheduler is not None:
        make_scheduler(scheduler)
    if fps is not None and fps <= 0:
        raise T2VError(f"--fps must be positive, got {fps}")

    # 2. The model, then one video per prompt (video i seeded seed + i, as in a batch).
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = TextToVideoPipeline.from_pretrained(model, device=device)
    for i, p in enumerate(prompts):
        video = pipe(
            [p], negative_prompt=negative_prompt, num_frames=num_frames, height=height, width=width, fps=fps,
            num_inference_steps=steps, guidance_scale=guidance, seed=seed + i, scheduler=scheduler,
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
@app.command(help="Train a stage (image, video, vae-decoder) from a YAML config. [dim](issue 6: not yet available)[/dim]")
def train(config: Optional[Path] = typer.Argument(None)) -> None:
    _not_yet("train", 6)


# --------------------------------------------------------------------------------------------
# tune / edit (issue 5)
# --------------------------------------------------------------------------------------------
@app.command(help="Tune-A-Video: one-shot tuning of a text-to-image model on one text-video pair. [dim](issue 5: not yet available)[/dim]")
def tune() -> None:
    _not_yet("tune", 5)


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
@eval_app.command("fvd", help="Frechet Video Distance (I3D features). [dim](issue 8: not yet available)[/dim]")
def eval_fvd() -> None:
    _not_yet("eval fvd", 8)


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
    """Entry point: run the app, turning a T2VError into one line on stderr and exit status 2."""
    try:
        app()
    except T2VError as e:
        err.print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
