"""What one request to `t2v serve` may ask for, so that no request takes the machine.

Each limit is a `t2v serve` flag; a request over a limit is refused before any work starts with a
one-line T2VError that names the value, the limit and the flag that changes it (shown on the page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from t2v.errors import T2VError

MB = 1_000_000  # upload and clip sizes are in MB = 1e6 bytes


@dataclass(frozen=True)
class ServeLimits:
    """Per-request limits of the web page (defaults fit a CPU; raise them on a GPU).

    max_frames: frames of a generated video and of the clip a tuning samples;
    max_size: pixels of the height and of the width; max_steps: sampling (and inversion) steps;
    max_tune_steps: optimizer steps of a one-shot tuning; max_upload_mb: bytes of an uploaded file;
    max_clip_mb: the uploaded clip decoded to RGB (frames x height x width x 3 bytes), which the
    tuning holds in memory; max_edit_prompts: edited prompts per tuning; max_queue: jobs waiting
    per model; max_prompt_chars: characters of one prompt.
    """

    max_frames: int = 32
    max_size: int = 256
    max_steps: int = 100
    max_tune_steps: int = 50
    max_upload_mb: float = 50.0
    max_clip_mb: float = 500.0
    max_edit_prompts: int = 4
    max_queue: int = 8
    max_prompt_chars: int = 300

    def __post_init__(self) -> None:
        for name in ("max_frames", "max_size", "max_steps", "max_tune_steps", "max_edit_prompts", "max_queue", "max_prompt_chars"):
            if getattr(self, name) < 1:
                raise T2VError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("max_upload_mb", "max_clip_mb"):
            if not getattr(self, name) > 0:
                raise T2VError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    @property
    def max_clip_bytes(self) -> int:
        return int(self.max_clip_mb * MB)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def over(what: str, value: float, limit: float, flag: str) -> T2VError:
    """The one-line message of a value over a limit."""
    return T2VError(f"{what} {value:g} is over this server's limit of {limit:g}; ask for less "
                    f"(or restart t2v serve with a higher {flag})")


def _int(settings: Mapping[str, Any], key: str, label: str, default: Optional[int]) -> Optional[int]:
    value = settings.get(key)
    if value is None or value == "":
        return default
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise T2VError(f"{label} must be a whole number, got {value!r}") from None
    if f != int(f):
        raise T2VError(f"{label} must be a whole number, got {value!r}")
    return int(f)


def _float(settings: Mapping[str, Any], key: str, label: str, default: Optional[float]) -> Optional[float]:
    value = settings.get(key)
    if value is None or value == "":
        return default
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise T2VError(f"{label} must be a number, got {value!r}") from None
    if f != f or f in (float("inf"), float("-inf")):
        raise T2VError(f"{label} must be a finite number, got {value!r}")
    return f


def _prompt(value: Any, label: str, limits: ServeLimits) -> str:
    if not isinstance(value, str) or not value.strip():
        raise T2VError(f"the {label} is empty; describe the video")
    value = value.strip()
    if len(value) > limits.max_prompt_chars:
        raise T2VError(f"the {label} has {len(value)} characters, over this server's limit of "
                       f"{limits.max_prompt_chars}; shorten it")
    return value


def _bounded(settings: Mapping[str, Any], key: str, label: str, default: int, limit: int, flag: str) -> int:
    """A whole number in [1, limit]; over the limit, the message names the server flag that raises it."""
    value = _int(settings, key, label, default)
    if value < 1:
        raise T2VError(f"{label} must be at least 1, got {value}")
    if value > limit:
        raise over(label, value, limit, flag)
    return value


def _guidance(settings: Mapping[str, Any], default: float) -> float:
    g = _float(settings, "guidance", "guidance", default)
    if not 0 <= g <= 50:
        raise T2VError(f"guidance must be between 0 and 50, got {g:g}")
    return g


def _seed(settings: Mapping[str, Any]) -> int:
    seed = _int(settings, "seed", "seed", 0)
    if not 0 <= seed < 2**63:
        raise T2VError(f"seed must be between 0 and 2^63 - 1, got {seed}")
    return seed


def clamp_defaults(defaults: Mapping[str, Any], limits: ServeLimits) -> dict[str, Any]:
    """A model's default settings, lowered to this server's limits (what the page proposes)."""
    out = dict(defaults)
    out["num_frames"] = min(out["num_frames"], limits.max_frames)
    out["steps"] = min(out["steps"], limits.max_steps)
    return out


def check_generate(settings: Mapping[str, Any], defaults: Mapping[str, Any], vae_factor: int,
                   limits: ServeLimits) -> dict[str, Any]:
    """A generation request (prompt, frames, height, width, steps, guidance, seed, fps, scheduler,
    negative_prompt) -> the settings to run, defaults filled in; T2VError on a bad or too-large value.

    `defaults` are the model's (frames, height, width, steps, guidance, fps, scheduler); sizes must be
    multiples of the model's VAE factor `vae_factor`.
    """
    from t2v.diffusion.schedulers import SCHEDULERS

    defaults = clamp_defaults(defaults, limits)  # sizes are not lowered: they would break the VAE factor
    out: dict[str, Any] = {"prompt": _prompt(settings.get("prompt"), "prompt", limits)}
    neg = settings.get("negative_prompt") or None
    out["negative_prompt"] = _prompt(neg, "negative prompt", limits) if neg else None
    out["num_frames"] = _bounded(settings, "num_frames", "frames", defaults["num_frames"], limits.max_frames, "--max-frames")
    for key in ("height", "width"):
        v = _bounded(settings, key, key, defaults[key], limits.max_size, "--max-size")
        if v % vae_factor:
            raise T2VError(f"{key} {v} is not a multiple of {vae_factor} (this model's VAE downsamples by {vae_factor}); "
                           f"try {max(vae_factor, round(v / vae_factor) * vae_factor)}")
        out[key] = v
    out["steps"] = _bounded(settings, "steps", "steps", defaults["steps"], limits.max_steps, "--max-steps")
    out["guidance"] = _guidance(settings, defaults["guidance"])
    out["seed"] = _seed(settings)
    fps = _float(settings, "fps", "fps", defaults["fps"])
    if not 0 < fps <= 120:
        raise T2VError(f"fps must be between 0 and 120, got {fps:g}")
    out["fps"] = fps
    scheduler = settings.get("scheduler") or defaults.get("scheduler")  # None: the model's own sampler
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise T2VError(f"unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}")
    out["scheduler"] = scheduler
    return out


def check_tune(settings: Mapping[str, Any], clip_frames: int, limits: ServeLimits) -> dict[str, Any]:
    """A tune-and-edit request (upload, prompt, edit_prompts, tune_steps, num_frames, stride, steps,
    guidance, seed) -> the settings to run; `clip_frames` is the uploaded clip's frame count."""
    out: dict[str, Any] = {"prompt": _prompt(settings.get("prompt"), "caption of the clip", limits)}
    edits = settings.get("edit_prompts")
    if isinstance(edits, str):
        edits = edits.splitlines()
    if not isinstance(edits, list):
        raise T2VError("edit_prompts must be a list of prompts (one a line on the page)")
    edits = [e for e in edits if isinstance(e, str) and e.strip()]
    if not edits:
        raise T2VError("no edited prompt given; write at least one, e.g. the caption with one word changed")
    if len(edits) > limits.max_edit_prompts:
        raise over("edited prompts:", len(edits), limits.max_edit_prompts, "--max-edit-prompts")
    out["edit_prompts"] = [_prompt(e, "edited prompt", limits) for e in edits]
    out["tune_steps"] = _bounded(settings, "tune_steps", "tuning steps", 20, limits.max_tune_steps, "--max-tune-steps")
    out["num_frames"] = _bounded(settings, "num_frames", "frames", min(8, limits.max_frames), limits.max_frames, "--max-frames")
    stride = _int(settings, "stride", "stride", 1)
    if stride < 1:
        raise T2VError(f"stride must be at least 1, got {stride}")
    out["stride"] = stride
    need = (out["num_frames"] - 1) * stride + 1
    if need > clip_frames:
        raise T2VError(f"the clip has {clip_frames} frames but {out['num_frames']} frames every {stride} need {need}; "
                       "ask for fewer frames or a smaller stride")
    out["steps"] = _bounded(settings, "steps", "steps", min(20, limits.max_steps), limits.max_steps, "--max-steps")
    out["guidance"] = _guidance(settings, 7.5)
    out["seed"] = _seed(settings)
    lr = _float(settings, "lr", "learning rate", 3e-5)
    if not 0 < lr <= 1e-2:
        raise T2VError(f"learning rate must be between 0 and 0.01, got {lr:g}")
    out["lr"] = lr
    return out
