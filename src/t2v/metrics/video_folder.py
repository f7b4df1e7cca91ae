"""Clips for the metrics: the videos of a directory, cut to the frames a protocol takes.

Decoding is `t2v.data.video_io.read_video(path) -> (uint8 (F, H, W, 3) tensor, fps)`; a different
reader with that signature can be passed (tests do).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal

import torch
from torch import Tensor

from t2v.errors import T2VError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v")
Reader = Callable[[Path], tuple[Tensor, float]]
OnShort = Literal["error", "skip"]


def default_reader() -> Reader:
    """`t2v.data.video_io.read_video` (PyAV)."""
    try:
        from t2v.data.video_io import read_video
    except ImportError:  # the data area has not landed in this checkout
        raise T2VError("video decoding (t2v.data.video_io) is not available in this version of t2v") from None
    return read_video


def list_videos(directory: str | Path) -> list[Path]:
    """Video files directly in `directory` (and its subfolders), sorted by path."""
    d = Path(directory)
    if not d.is_dir():
        raise T2VError(f"{d} is not a directory of videos")
    paths = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise T2VError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {d}")
    return paths


def take_frames(video: Tensor, frames: int, stride: int = 1, name: str = "clip") -> Tensor:
    """The first `frames` frames, every `stride`-th, of (F, H, W, 3) -> (frames, H, W, 3)."""
    need = (frames - 1) * stride + 1
    if video.shape[0] < need:
        raise T2VError(
            f"{name} has {video.shape[0]} frames; {frames} frames at stride {stride} need {need} "
            "(use shorter --frames, or --skip-short)"
        )
    return video[: need : stride]


def iter_path_clips(
    paths: list[Path],
    frames: int | None,
    stride: int = 1,
    on_short: OnShort = "error",
    reader: Reader | None = None,
    skipped: list[Path] | None = None,
) -> Iterator[tuple[Path, Tensor]]:
    """Yield (path, uint8 (frames, H, W, 3) clip), one per path (all frames when `frames` is None).

    Too-short videos raise a one-line `T2VError`, or with `on_short="skip"` are left out and
    appended to `skipped`. One video is decoded at a time.
    """
    read = reader or default_reader()
    for path in paths:
        try:
            video, _fps = read(path)
        except T2VError:
            raise
        except Exception as e:  # a corrupt or unsupported file: name it, one line
            msg = str(e).splitlines()[0] if str(e) else ""
            raise T2VError(f"cannot decode {path}: {type(e).__name__}: {msg}") from None
        video = torch.as_tensor(video)
        if video.ndim != 4 or video.shape[-1] != 3:
            raise T2VError(f"{path}: expected (F, H, W, 3) frames, got {tuple(video.shape)}")
        if frames is None:
            yield path, video
            continue
        try:
            clip = take_frames(video, frames, stride, name=str(path))
        except T2VError:
            if on_short == "error":
                raise
            if skipped is not None:
                skipped.append(path)
            continue
        yield path, clip


def iter_clips(
    paths: list[Path],
    frames: int | None,
    stride: int = 1,
    on_short: OnShort = "error",
    reader: Reader | None = None,
    skipped: list[Path] | None = None,
) -> Iterator[Tensor]:
    """`iter_path_clips` without the paths: uint8 (frames, H, W, 3) clips."""
    for _path, clip in iter_path_clips(paths, frames, stride, on_short, reader, skipped):
        yield clip


def batched(clips: Iterable[Tensor], batch_size: int, prepare: Callable[[Tensor], Tensor]) -> Iterator[Tensor]:
    """Prepare clips one by one and stack them into batches of at most `batch_size` equal shapes."""
    batch: list[Tensor] = []
    for clip in clips:
        x = prepare(clip)
        if batch and (len(batch) == batch_size or x.shape != batch[0].shape):
            yield torch.stack(batch)
            batch = []
        batch.append(x)
    if batch:
        yield torch.stack(batch)
