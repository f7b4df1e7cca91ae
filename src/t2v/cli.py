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
@app.command(help="Generate a video from a text prompt. [dim](issue 5: not yet available)[/dim]")
def generate(prompt: Optional[str] = typer.Argument(None)) -> None:
    _not_yet("generate", 5)


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


@app.command(help="Tune-A-Video: edit a tuned video with new prompts (DDIM inversion + sampling). [dim](issue 5: not yet available)[/dim]")
def edit() -> None:
    _not_yet("edit", 5)


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
