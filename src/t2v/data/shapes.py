"""ShapesWorld: a procedural captioned video world (the spec is `shapes-world.md` in the shared docs).

One filled object (8 colors x 3 shapes) moves at constant velocity in one of 4 directions over a
black canvas: 96 (color, shape, motion) combinations, 8 of which are held out of training to
measure compositional generalization. Because the world is known, `t2v.metrics.shapes_oracle`
reads color, shape and motion back out of any clip.

Geometry (canvas pixels, x to the right, y down): an object of side `object_size` has its bounding
box's top-left corner at `start` in frame 0 and moves `displacement` pixels over the clip; each
frame's corner is rounded to whole pixels, so every frame shows the same crisp shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import Dataset

from t2v.errors import T2VError

# ------------------------------------------------------------------------------------------------
# the world's constants (shapes-world.md)
# ------------------------------------------------------------------------------------------------
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 25),
    "green": (25, 200, 25),
    "blue": (40, 80, 255),
    "yellow": (240, 220, 20),
    "magenta": (220, 40, 220),
    "cyan": (30, 220, 220),
    "white": (240, 240, 240),
    "orange": (255, 140, 0),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
MOTIONS: tuple[str, ...] = ("left", "right", "up", "down")
# Unit direction of each motion in image coordinates (x right, y down).
MOTION_VECTORS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
# Area of each shape over its bounding box (square 1, disk pi/4, isosceles triangle 1/2).
SHAPE_FILL: dict[str, float] = {"square": 1.0, "circle": math.pi / 4, "triangle": 0.5}

HELD_OUT: tuple[tuple[str, str, str], ...] = (
    ("yellow", "triangle", "left"),
    ("blue", "circle", "up"),
    ("white", "square", "down"),
    ("orange", "circle", "right"),
    ("cyan", "triangle", "down"),
    ("magenta", "square", "left"),
    ("green", "triangle", "up"),
    ("red", "square", "right"),
)
ALL_COMBINATIONS: tuple[tuple[str, str, str], ...] = tuple(product(COLORS, SHAPES, MOTIONS))
HELD_IN: tuple[tuple[str, str, str], ...] = tuple(c for c in ALL_COMBINATIONS if c not in set(HELD_OUT))

CANVAS = 64  # the reference canvas; sizes and displacements scale with size / CANVAS
OBJECT_SIZE_64 = (14, 20)  # bounding-box side, px at 64, inclusive
DISPLACEMENT_64 = (20.0, 36.0)  # total displacement over the clip, px at 64
MIN_CANVAS = 16
FPS = 8.0  # nominal frame rate of a ShapesWorld clip

# Direction phrases: the direction word itself always appears.
_TO_DIRECTION = {"left": "to the left", "right": "to the right", "up": "up", "down": "down"}
PHRASINGS: tuple[str, ...] = (
    "{a} {color} {shape} moving {direction}",
    "{a} {color} {shape} is moving {to_direction}",
    "{color} {shape} going {direction}",
    "{a} {color} {shape} moves {direction}",
    "{a} {color} {shape} sliding {direction} on a black background",
    "the {color} {shape} travels {to_direction}",
)


def is_held_out(color: str, shape: str, motion: str) -> bool:
    """True for the 8 combinations that never appear in training data."""
    return (color, shape, motion) in HELD_OUT


def caption(color: str, shape: str, motion: str, phrasing: int = 0) -> str:
    """The caption of a clip in one of the `PHRASINGS` ("a red circle moving right", ...)."""
    _check(color, shape, motion)
    return PHRASINGS[phrasing % len(PHRASINGS)].format(
        a="an" if color[0] in "aeiou" else "a", color=color, shape=shape, direction=motion, to_direction=_TO_DIRECTION[motion]
    )


def _check(color: str, shape: str, motion: str) -> None:
    for value, options, what in ((color, COLORS, "color"), (shape, SHAPES, "shape"), (motion, MOTIONS, "motion")):
        if value not in options:
            raise T2VError(f"unknown ShapesWorld {what} {value!r}; choose one of {', '.join(options)}")


# ------------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------------
def shape_mask(shape: str, object_size: int) -> np.ndarray:
    """Boolean `(s, s)` mask of a shape in its bounding box: a pixel is in when its center is.

    circle: the inscribed disk; square: the whole box; triangle: isosceles, apex at the top middle,
    base along the bottom edge. No anti-aliasing.
    """
    s = int(object_size)
    c = np.arange(s) + 0.5  # pixel centers
    v, u = c[:, None], c[None, :]  # rows (y), columns (x)
    if shape == "square":
        return np.ones((s, s), dtype=bool)
    if shape == "circle":
        return (u - s / 2) ** 2 + (v - s / 2) ** 2 <= (s / 2) ** 2
    if shape == "triangle":
        return np.abs(u - s / 2) <= v / 2  # half-width grows from 0 at the apex to s/2 at the base
    raise T2VError(f"unknown ShapesWorld shape {shape!r}; choose one of {', '.join(SHAPES)}")


def trajectory(motion: str, num_frames: int, displacement: float, start: tuple[int, int]) -> np.ndarray:
    """Integer top-left corners `(F, 2)` as (x, y): constant velocity, rounded half up to whole pixels."""
    dx, dy = MOTION_VECTORS[motion]
    t = np.arange(num_frames) / max(num_frames - 1, 1)  # 0 .. 1
    xy = np.asarray(start, dtype=np.float64)[None, :] + displacement * t[:, None] * np.array([dx, dy], dtype=np.float64)
    return np.floor(xy + 0.5).astype(np.int64)


def render_clip(
    color: str,
    shape: str,
    motion: str,
    *,
    size: int = 64,
    num_frames: int = 16,
    object_size: int | None = None,
    displacement: float | None = None,
    start: tuple[int, int] | None = None,
) -> np.ndarray:
    """Render one clip: uint8 `(F, H, W, 3)` with H = W = `size`.

    `object_size` (bounding-box side) and `displacement` (total, over the clip) are canvas pixels;
    they default to the middle of the world's ranges scaled to the canvas. `start` is the (x, y)
    top-left corner in frame 0 (default: the path is centered). Raises `T2VError` when the object
    would leave the canvas in any frame.
    """
    _check(color, shape, motion)
    if size < MIN_CANVAS or num_frames < 1:
        raise T2VError(f"ShapesWorld needs size >= {MIN_CANVAS} and num_frames >= 1; got {size}, {num_frames}")
    s = int(object_size) if object_size is not None else max(3, round(17 * size / CANVAS))
    d = float(displacement) if displacement is not None else 28.0 * size / CANVAS
    if start is None:
        dx, dy = MOTION_VECTORS[motion]
        start = (_centered(size, s, d, dx), _centered(size, s, d, dy))
    corners = trajectory(motion, num_frames, d, start)  # (F, 2) as (x, y)
    if corners.min() < 0 or corners.max() + s > size:
        raise T2VError(
            f"the {shape} (side {s}) leaves the {size}x{size} canvas: start {tuple(start)}, displacement {d:g} {motion}; "
            "use a smaller object, displacement or another start"
        )
    mask = shape_mask(shape, s)
    clip = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    for f, (x, y) in enumerate(corners):
        clip[f, y : y + s, x : x + s][mask] = COLORS[color]
    return clip


def _centered(size: int, s: int, d: float, direction: int) -> int:
    """Start coordinate that centers the path [start, start + direction * d] (plus the object) on the canvas."""
    lo = min(0.0, direction * d)
    return int(math.floor((size - s - abs(direction) * d) / 2 - lo))


# ------------------------------------------------------------------------------------------------
# random parameters per seed
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipParams:
    """Everything that decides one ShapesWorld clip and its caption."""

    color: str
    shape: str
    motion: str
    object_size: int
    displacement: float
    start: tuple[int, int]
    phrasing: int

    @property
    def caption(self) -> str:
        return caption(self.color, self.shape, self.motion, self.phrasing)

    @property
    def held_out(self) -> bool:
        return is_held_out(self.color, self.shape, self.motion)


def sample_params(
    rng: np.random.Generator,
    *,
    size: int = 64,
    combinations: tuple[tuple[str, str, str], ...] = HELD_IN,
) -> ClipParams:
    """Draw a clip: a combination (uniform over `combinations`), a size of 14-20 px and a
    displacement of 20-36 px (both at 64, scaled to `size`), a start that keeps the whole object
    inside the canvas in every frame, and a caption phrasing."""
    if size < MIN_CANVAS:
        raise T2VError(f"ShapesWorld needs size >= {MIN_CANVAS}; got {size}")
    color, shape, motion = combinations[int(rng.integers(len(combinations)))]
    s = max(3, round(int(rng.integers(OBJECT_SIZE_64[0], OBJECT_SIZE_64[1] + 1)) * size / CANVAS))
    d = float(rng.uniform(*DISPLACEMENT_64)) * size / CANVAS
    room = size - s  # corners in [0, room] keep the object inside
    reach = math.ceil(d)
    dx, dy = MOTION_VECTORS[motion]
    start = []
    for direction in (dx, dy):
        if direction > 0:
            start.append(int(rng.integers(0, room - reach + 1)))
        elif direction < 0:
            start.append(int(rng.integers(reach, room + 1)))
        else:
            start.append(int(rng.integers(0, room + 1)))
    phrasing = int(rng.integers(len(PHRASINGS)))
    return ClipParams(color, shape, motion, s, d, (start[0], start[1]), phrasing)


def item_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of item `index` of seed `seed` (PCG64 on a SeedSequence of both)."""
    if seed < 0 or index < 0:
        raise T2VError(f"ShapesWorld seeds and indices are >= 0; got seed {seed}, index {index}")
    return np.random.default_rng([seed, index])


def clip_to_video(clip: np.ndarray) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> float (C, F, H, W) in [-1, 1] (numpy: cheaper than torch ops here)."""
    video = rearrange(clip.astype(np.float32) / np.float32(127.5) - np.float32(1.0), "f h w c -> c f h w")
    return torch.from_numpy(np.ascontiguousarray(video))


# ------------------------------------------------------------------------------------------------
# the data set
# ------------------------------------------------------------------------------------------------
class ShapesWorldDataset(Dataset):
    """`length` ShapesWorld clips, item `i` decided by (seed, i) alone, byte for byte.

    Items: `{video: float (C, F, H, W) in [-1, 1], caption, source, fps, color, shape, motion, held_out}`.
    The 8 `HELD_OUT` combinations appear only with `include_held_out` (all 96) or `only_held_out`
    (just those 8). With `images=True` each item is one frame of its clip, `(C, 1, H, W)`, for
    text-to-image pretraining; the caption is the clip's (the object sits where that motion puts it).
    """

    def __init__(
        self,
        length: int,
        seed: int = 0,
        size: int = 64,
        num_frames: int = 16,
        include_held_out: bool = False,
        only_held_out: bool = False,
        images: bool = False,
    ) -> None:
        if length < 1:
            raise T2VError(f"ShapesWorld length must be >= 1; got {length}")
        if size < MIN_CANVAS or num_frames < 1:
            raise T2VError(f"ShapesWorld needs size >= {MIN_CANVAS} and num_frames >= 1; got {size}, {num_frames}")
        item_rng(seed, 0)  # validates the seed
        self.length, self.seed, self.size, self.num_frames, self.images = length, seed, size, num_frames, images
        self.combinations = HELD_OUT if only_held_out else ALL_COMBINATIONS if include_held_out else HELD_IN

    def __len__(self) -> int:
        return self.length

    def params(self, index: int) -> ClipParams:
        """The parameters of item `index` (cheap: nothing is rendered)."""
        return sample_params(item_rng(self.seed, index), size=self.size, combinations=self.combinations)

    def __getitem__(self, index: int) -> dict:
        if not -self.length <= index < self.length:
            raise IndexError(index)
        index %= self.length
        rng = item_rng(self.seed, index)
        p = sample_params(rng, size=self.size, combinations=self.combinations)
        clip = render_clip(
            p.color, p.shape, p.motion, size=self.size, num_frames=self.num_frames,
            object_size=p.object_size, displacement=p.displacement, start=p.start,
        )  # (F, H, W, 3) uint8
        if self.images:
            t = int(rng.integers(self.num_frames))
            clip = clip[t : t + 1]  # (1, H, W, 3)
        return {
            "video": clip_to_video(clip),  # (C, F, H, W)
            "caption": p.caption,
            "source": f"shapes:seed={self.seed}:index={index}",
            "fps": FPS,
            "color": p.color,
            "shape": p.shape,
            "motion": p.motion,
            "held_out": p.held_out,
        }
