"""The cascade on files: what `t2v interpolate`, `t2v upscale` and `t2v generate --cascade` run.

Every check that needs no model comes first, so a typo fails in a second with one line.
Frame rates: `t2v interpolate` writes at the input's rate times the factor (the same duration);
`t2v generate --cascade` treats the keyframes as a clip at half the base rate (`--fps`, default 8:
sparse keyframes) and writes the result at that rate times the interpolation factors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from t2v.errors import T2VError
from t2v.pipelines.cascade import CascadePipeline, CascadeStage, check_factor, check_self_ensemble, interpolate, upscale

_STAGE_NAMES = {"interpolate": "interpolate", "upscale": "upscale", "decoder": "vae_temporal"}


def _device(device: Optional[str]) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _check_out(out: Path) -> None:
    from t2v.data.video_io import VIDEO_SUFFIXES

    if out.suffix and out.suffix.lower() not in VIDEO_SUFFIXES:
        raise T2VError(f"-o {out}: unknown video type {out.suffix!r}; use .mp4, .gif, .webm, .mov or a folder (no suffix) for PNG frames")


def read_clip(path: Path) -> tuple[torch.Tensor, float]:
    """A video file or frame folder -> (float (1, 3, F, H, W) in [-1, 1], fps)."""
    from t2v.data.video_io import read_video

    frames, fps = read_video(path)  # (F, H, W, 3) uint8; one-line VideoReadError when unreadable
    video = frames.permute(3, 0, 1, 2).float().div(127.5).sub(1)[None]  # (1, 3, F, H, W)
    return video, fps


def _check_size(stage: CascadeStage, video: torch.Tensor, path: Path) -> None:
    k = 2 ** (len(stage.unet.config.block_out_channels) - 1)
    h, w = video.shape[-2:]
    if h % k or w % k:
        raise T2VError(f"{path} is {w}x{h}; this stage needs sides that are multiples of {k}: resize it, e.g. to "
                       f"{max(k, round(w / k) * k)}x{max(k, round(h / k) * k)}")


def run_stage_on_file(task: str, video: Path, out: Path, *, model: Optional[Path] = None, factor: int = 4,
                      steps: Optional[int] = None, noise_level: Optional[float] = None, seed: int = 0,
                      fps: Optional[float] = None, device: Optional[str] = None,
                      self_ensemble: Optional[int] = None) -> Path:
    """Interpolate or upscale one video file into `out`; returns the path written."""
    from t2v.data.video_io import write_video

    # 1. No-model checks.
    if task == "interpolate":
        check_factor(factor)
    if steps is not None and steps < 1:
        raise T2VError(f"--steps must be at least 1; got {steps}")
    if noise_level is not None and not 0.0 <= noise_level <= 1.0:
        raise T2VError(f"--noise-level must be in [0, 1]; got {noise_level}")
    if fps is not None and fps <= 0:
        raise T2VError(f"--fps must be positive; got {fps}")
    if self_ensemble is not None:
        check_self_ensemble(self_ensemble)
    _check_out(out)
    clip, rate = read_clip(video)  # (1, 3, F, H, W)
    if task == "interpolate" and clip.shape[2] < 2:
        raise T2VError(f"{video} has {clip.shape[2]} frame; interpolation needs at least 2")

    # 2. The stage, the sample, the file.
    stage = CascadeStage.from_pretrained(model, task, device=_device(device))
    _check_size(stage, clip, video)
    if task == "interpolate":
        result = interpolate(stage, clip, factor, steps=steps, seed=seed)
        rate = rate * factor
    else:
        result = upscale(stage, clip, noise_level=noise_level, steps=steps, seed=seed, self_ensemble=self_ensemble)
    return write_video(out, result[0].cpu(), fps or rate)


def generate_cascade(prompts: Sequence[str], *, model: Optional[Path], stages: Optional[Path], keyframes: int,
                     factors: Sequence[int], super_resolve: bool, out: Optional[Path], prompts_file: bool, fps: float,
                     steps: Optional[int], guidance: Optional[float], seed: int, negative_prompt: Optional[str],
                     scheduler: Optional[str], device: Optional[str]) -> list[Path]:
    """`t2v generate --cascade`: one video per prompt (video i from seed + i); returns the paths written."""
    from t2v.data.video_io import write_video
    from t2v.pipelines.naming import is_video_file, video_name

    if keyframes < 2:
        raise T2VError(f"--keyframes must be at least 2 (interpolation needs two neighbours); got {keyframes}")
    for k in factors:
        check_factor(k)
    folders: dict[str, Union[Path, None]] = {name: None for name in _STAGE_NAMES}
    if stages is not None:
        for name, sub in _STAGE_NAMES.items():
            if not (stages / sub).is_dir():
                raise T2VError(f"--stages {stages} has no {sub}/ folder; expected interpolate/, upscale/ and vae_temporal/")
            folders[name] = stages / sub
    pipe = CascadePipeline.from_pretrained(model, interpolator=folders["interpolate"], upscaler=folders["upscale"],
                                           decoder=folders["decoder"], device=_device(device))
    rate = fps / 2 * math.prod(factors)
    paths = []
    for i, p in enumerate(prompts):
        video = pipe([p], keyframes=keyframes, factors=factors, super_resolve=super_resolve, seed=seed + i,
                     num_inference_steps=steps, guidance_scale=guidance, scheduler=scheduler,
                     negative_prompt=negative_prompt)  # (1, 3, F, H, W)
        if prompts_file:
            path = (out or Path("outputs")) / video_name(p, i)
        elif out is not None and is_video_file(out):
            path = out
        else:
            path = (out or Path("outputs")) / video_name(p)
        paths.append(write_video(path, video[0].cpu(), rate))
    return paths
