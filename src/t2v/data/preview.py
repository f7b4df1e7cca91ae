"""A grid video of a few data set samples with their captions written under them, for a person to look at."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from t2v.data.video_io import to_uint8_frames

GAP = 2  # px between tiles
PAD = 3  # px around caption text


def _wrap(text: str, font: ImageFont.ImageFont, width: int, draw: ImageDraw.ImageDraw) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + ([line] if line else [])


def caption_strip(text: str, width: int, max_lines: int = 4) -> np.ndarray:
    """uint8 `(h, width, 3)`: `text` wrapped in white on dark grey (PIL's default font)."""
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = _wrap(text, font, width - 2 * PAD, probe)[:max_lines] or [""]
    line_h = int(math.ceil(sum(font.getmetrics()))) + 1
    im = Image.new("RGB", (width, len(lines) * line_h + 2 * PAD), (24, 24, 24))
    draw = ImageDraw.Draw(im)
    for k, line in enumerate(lines):
        draw.text((PAD, PAD + k * line_h), line, fill=(255, 255, 255), font=font)
    return np.asarray(im)


def preview_grid(videos: list[torch.Tensor], captions: list[str], *, tile: int = 128) -> np.ndarray:
    """Tile clips (each float `(C, F, H, W)` in [-1, 1] or uint8 `(F, H, W, 3)`) with captions below.

    Clips are enlarged by a whole factor (nearest neighbour, so ShapesWorld stays crisp) up to about
    `tile` px; shorter clips hold their last frame. Returns uint8 `(F, H_grid, W_grid, 3)`.
    """
    clips = [to_uint8_frames(v).numpy() for v in videos]  # each (F, H, W, 3)
    num_frames = max(c.shape[0] for c in clips)
    h = max(c.shape[1] for c in clips)
    w = max(c.shape[2] for c in clips)
    k = max(1, tile // max(h, w))
    th, tw = h * k, w * k
    strips = [caption_strip(t, tw) for t in captions]
    sh = max(s.shape[0] for s in strips)
    cols = math.ceil(math.sqrt(len(clips)))
    rows = math.ceil(len(clips) / cols)
    grid = np.zeros((num_frames, rows * (th + sh + GAP) - GAP, cols * (tw + GAP) - GAP, 3), dtype=np.uint8)
    for i, (clip, strip) in enumerate(zip(clips, strips)):
        r, c = divmod(i, cols)
        y, x = r * (th + sh + GAP), c * (tw + GAP)
        clip = np.concatenate([clip, np.repeat(clip[-1:], num_frames - clip.shape[0], axis=0)])  # (num_frames, H, W, 3)
        big = clip.repeat(k, axis=1).repeat(k, axis=2)  # (num_frames, H*k, W*k, 3)
        grid[:, y : y + big.shape[1], x : x + big.shape[2]] = big
        grid[:, y + th : y + th + strip.shape[0], x : x + tw] = strip[None]
    return grid
