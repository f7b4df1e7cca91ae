"""File names for generated videos: a short slug of the prompt, numbered within a batch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".gif")


def slug(text: str, max_len: int = 48) -> str:
    """'A red circle, moving right!' -> 'a-red-circle-moving-right' (ASCII letters, digits, hyphens)."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:max_len].rstrip("-") or "video"


def video_name(prompt: str, index: Optional[int] = None, suffix: str = ".mp4") -> str:
    """`a-red-circle.mp4`, or `003-a-red-circle.mp4` for the 4th video of a batch."""
    stem = slug(prompt) if index is None else f"{index:03d}-{slug(prompt)}"
    return stem + suffix


def is_video_file(path: Path) -> bool:
    """True when `path` names a video file (by suffix) rather than a folder to write into."""
    return path.suffix.lower() in VIDEO_SUFFIXES
