"""Read and write videos on PyAV (FFmpeg): mp4/webm/mov/gif files and folders of frames.

Decoded clips are uint8 tensors `(F, H, W, 3)` (RGB) plus a frame rate; model outputs are float
`(C, F, H, W)` in [-1, 1] and go through `to_uint8_frames` on their way out.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from einops import rearrange
from PIL import Image

from t2v.errors import T2VError

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_FOLDER_FPS = 8.0


class VideoReadError(T2VError):
    """A video that is missing, unreadable, truncated or has no frames."""


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
def read_video(path: str | Path, *, folder_fps: float = DEFAULT_FOLDER_FPS) -> tuple[torch.Tensor, float]:
    """Decode a whole video to uint8 `(F, H, W, 3)` RGB and its frame rate.

    `path` is a video file (anything FFmpeg demuxes: mp4, webm, mov, gif, ...) or a folder of
    png/jpg frames in name order (numbers compared as numbers), whose rate is `folder_fps`.
    Frames are counted by decoding (webm containers report 0 frames). Raises `VideoReadError`
    naming the path when it is missing, unreadable or truncated.
    """
    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"video not found: {path}")
    if path.is_dir():
        return _read_frame_folder(path), float(folder_fps)
    return _read_container(path)


def _read_container(path: Path) -> tuple[torch.Tensor, float]:
    frames: list[np.ndarray] = []
    pts: list[int] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"no video stream in {path}")
            stream = container.streams.video[0]
            # Slice threads only: frame threading hides decode errors of truncated files.
            stream.thread_type = "SLICE"
            declared = stream.frames  # 0 when the container does not say (webm)
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if frame.pts is not None:
                    pts.append(frame.pts)
            fps = _frame_rate(stream, pts, len(frames))
    except (av.FFmpegError, OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or (str(e).splitlines()[0] if str(e) else type(e).__name__)
        raise VideoReadError(f"cannot decode {path} (unreadable or truncated: {reason})") from None
    if not frames:
        raise VideoReadError(f"no frames could be decoded from {path}")
    if declared and len(frames) < declared:
        raise VideoReadError(f"{path} is truncated: decoded {len(frames)} of the {declared} frames its header lists")
    if any(f.shape != frames[0].shape for f in frames):
        raise VideoReadError(f"frame size changes inside {path}; re-encode it at one size")
    return torch.from_numpy(np.stack(frames)), fps  # (F, H, W, 3)


def _frame_rate(stream, pts: list[int], n: int) -> float:
    """Mean rate of the decoded frames from their timestamps; the stream's declared rate otherwise.

    Timestamps are what GIF stores (a duration per frame, in 1/100 s), so a GIF written at 8 fps
    with alternating 12/13 cs frames reads back as 8 fps, where FFmpeg's `average_rate` says 25/3.
    """
    if n >= 2 and len(pts) == n and stream.time_base is not None:
        span = (max(pts) - min(pts)) * stream.time_base
        if span > 0:
            return float(Fraction(n - 1) / span)
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return DEFAULT_FOLDER_FPS


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _read_frame_folder(path: Path) -> torch.Tensor:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=lambda p: _natural_key(p.name))
    if not files:
        raise VideoReadError(f"no png/jpg frames in folder {path}")
    frames = []
    for f in files:
        try:
            with Image.open(f) as im:
                frames.append(np.asarray(im.convert("RGB")))
        except OSError as e:
            raise VideoReadError(f"cannot read frame {f} ({e})") from None
    if any(f.shape != frames[0].shape for f in frames):
        raise VideoReadError(f"frames in {path} differ in size; every frame must have the same size")
    return torch.from_numpy(np.stack(frames))  # (F, H, W, 3)


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
def to_uint8_frames(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 `(F, H, W, 3)` as is, or float `(C, F, H, W)` in [-1, 1] (C = 3 or 1) to uint8 `(F, H, W, 3)`."""
    x = torch.as_tensor(frames)
    if x.dtype == torch.uint8:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise T2VError(f"uint8 frames must be (F, H, W, 3); got shape {tuple(x.shape)}")
        return x
    if not x.is_floating_point() or x.ndim != 4 or x.shape[0] not in (1, 3):
        raise T2VError(
            f"frames must be uint8 (F, H, W, 3) or float (C, F, H, W) in [-1, 1]; got {x.dtype} {tuple(x.shape)}"
        )
    x = x.detach().float().cpu()
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1, -1)
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return rearrange(x, "c f h w -> f h w c").contiguous()


def write_video(path: str | Path, frames: torch.Tensor | np.ndarray, fps: float, *, pad_odd: bool = True, crf: int = 18) -> Path:
    """Write a clip; the format follows the path.

    - `.mp4` / `.mov`: H.264 (libx264), yuv420p, `crf` quality (lower is better). yuv420p needs
      even sizes: odd sizes are padded by repeating the last row/column when `pad_odd`, else rejected.
    - `.webm`: VP9, yuv420p (same size rule).
    - `.gif`: one adaptive 256-color palette per frame; frame times in 1/100 s keep `fps` on average.
    - no suffix (or an existing folder): numbered lossless PNG frames `00000.png, 00001.png, ...`.

    `frames`: uint8 `(F, H, W, 3)` or float `(C, F, H, W)` in [-1, 1]. Returns the path written.
    """
    path = Path(path)
    x = to_uint8_frames(frames).numpy()
    if x.shape[0] == 0:
        raise T2VError(f"no frames to write to {path}")
    if not fps or fps <= 0:
        raise T2VError(f"fps must be positive to write {path}; got {fps}")
    suffix = path.suffix.lower()
    if suffix == "" or path.is_dir():
        _write_frame_folder(path, x)
    elif suffix in (".mp4", ".mov"):
        _write_yuv420(path, x, fps, "libx264", {"crf": str(crf), "preset": "medium", "threads": "1"}, pad_odd)
    elif suffix == ".webm":
        _write_yuv420(path, x, fps, "libvpx-vp9", {"crf": str(crf + 12), "b": "0", "deadline": "good", "cpu-used": "4"}, pad_odd)
    elif suffix == ".gif":
        _write_gif(path, x, fps)
    else:
        raise T2VError(f"cannot write {path}: use a .mp4, .mov, .webm or .gif file, or a folder name for PNG frames")
    return path


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)  # 29.97 -> 30000/1001


def _open_output(path: Path) -> av.container.OutputContainer:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # bitexact: no random container ids (Matroska/WebM segment UID), so equal frames give equal bytes.
        return av.open(str(path), "w", options={"fflags": "+bitexact"})
    except (av.FFmpegError, OSError) as e:
        raise T2VError(f"cannot write {path} ({e})") from None


def _write_yuv420(path: Path, x: np.ndarray, fps: float, codec: str, options: dict[str, str], pad_odd: bool) -> None:
    f, h, w, _ = x.shape
    if h % 2 or w % 2:
        if not pad_odd:
            raise T2VError(f"{path.suffix} (yuv420p) needs even sizes; got {w}x{h}: crop or resize to even width and height")
        # Edge replication: the padded row/column repeats its neighbour, so no dark border appears.
        x = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        f, h, w, _ = x.shape
    with _open_output(path) as container:
        stream = container.add_stream(codec, rate=_rate(fps), options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # One encoder thread: libx264's threaded rate control makes the bytes differ from run to
        # run; with one thread the same frames give the same file (seeded outputs are reproducible).
        stream.codec_context.thread_count = 1
        for frame in x:
            for packet in stream.encode(av.VideoFrame.from_ndarray(_rgb_to_yuv420p(frame), format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# BT.601 limited range ("TV" range), what players assume for untagged yuv420p at these sizes.
_RGB_TO_YUV = np.array([[0.256788, 0.504129, 0.097906],
                        [-0.148223, -0.290993, 0.439216],
                        [0.439216, -0.367788, -0.071427]], dtype=np.float32)
_YUV_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float32)


def _rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> uint8 (H*3/2, W) planar yuv420p (BT.601 limited range).

    Written by hand because FFmpeg's swscale gave slightly different bytes from run to run here
    (its SIMD path), which made seeded mp4 files differ; this conversion is exact and repeatable.
    Chroma is the mean of each 2x2 block.
    """
    h, w, _ = frame.shape
    yuv = frame.astype(np.float32) @ _RGB_TO_YUV.T + _YUV_OFFSET  # (H, W, 3)
    uv = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))  # (H/2, W/2, 2)
    flat = np.concatenate([yuv[..., 0].ravel(), uv[..., 0].ravel(), uv[..., 1].ravel()])  # Y, U, V planes
    return np.clip(np.rint(flat), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def _write_gif(path: Path, x: np.ndarray, fps: float) -> None:
    # FFmpeg's gif encoder wants palettised (pal8) frames and its own palette needs a filter graph;
    # Pillow's median-cut quantizer makes the per-frame palette and PyAV/FFmpeg writes the file.
    f, h, w, _ = x.shape
    time_base = Fraction(1, 100)  # GIF stores frame durations in 1/100 s
    with _open_output(path) as container:
        stream = container.add_stream("gif", rate=_rate(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "pal8"
        stream.codec_context.time_base = time_base
        for i, frame in enumerate(x):
            im = Image.fromarray(frame).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            palette = np.zeros((256, 4), np.uint8)
            rgb = np.asarray(im.getpalette(rawmode="RGB"), np.uint8).reshape(-1, 3)[:256]
            palette[: len(rgb), 1:] = rgb
            palette[:, 0] = 255  # ARGB, opaque
            vf = av.VideoFrame.from_ndarray((np.asarray(im), palette), format="pal8")
            # Rounded cumulative times: durations alternate (12, 13, ... cs at 8 fps) so the mean rate is fps.
            vf.pts, vf.time_base = round(i * 100 / fps), time_base
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_frame_folder(path: Path, x: np.ndarray) -> None:
    if path.exists() and not path.is_dir():
        raise T2VError(f"cannot write frames to {path}: it is a file; give a folder name")
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("[0-9][0-9][0-9][0-9][0-9].png"):
        old.unlink()  # never mix frames of two clips
    for i, frame in enumerate(x):
        Image.fromarray(frame).save(path / f"{i:05d}.png")
