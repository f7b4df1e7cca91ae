"""What the jobs of `t2v serve` do: generate a video, or tune on an uploaded clip and edit it.

Both call the library's own functions (`TextToVideoPipeline`, the training loop's `tune` stage,
`load_tuned` / `invert_source` / `edit`, `side_by_side`, `write_video`) and write every video with a
JSON of its settings beside it (`t2v.serve.storage`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from t2v.errors import T2VError
from t2v.serve.jobs import Job
from t2v.serve.storage import BASES, ResultStore

DEFAULT_FRAMES = 16
DEFAULT_FPS = 8.0
# One training run at a time in this process: accelerate keeps its state in a process-wide singleton.
_TRAIN_LOCK = threading.Lock()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class ServedModel:
    """A model folder the page may use, known by `key` (the page never sends paths)."""

    key: str
    label: str
    path: Path
    recipe: str
    vae_factor: int
    defaults: dict[str, Any]  # num_frames, height, width, steps, guidance, fps, scheduler (None = the model's)
    _pipe: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def public(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "recipe": self.recipe, "vae_factor": self.vae_factor,
                "defaults": self.defaults}

    def pipeline(self) -> Any:
        """The loaded TextToVideoPipeline (loaded on the first job, then kept)."""
        with self._lock:
            if self._pipe is None:
                import torch

                from t2v.pipelines import TextToVideoPipeline

                device = "cuda" if torch.cuda.is_available() else "cpu"
                self._pipe = TextToVideoPipeline.from_pretrained(self.path, device=device)
            return self._pipe


def _json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise T2VError(f"{path} is not readable JSON; --model needs a t2v model folder ({what})") from None
    return data if isinstance(data, dict) else {}


def describe_model(path: Optional[Path], key: str) -> ServedModel:
    """Read a model folder's configs (no weights) -> ServedModel; None is the embedded default model.

    A folder without a `VideoUNet` is a one-line T2VError, so that `t2v serve` fails before it starts.
    """
    from t2v.pipelines.model_folder import default_model_dir, folder_vae_factor
    from t2v.training.tune import native_size

    folder = default_model_dir() if path is None else Path(path)
    if not folder.is_dir():
        raise T2VError(f"--model {folder} is not a folder; pass a t2v model folder (unet/, text_encoder/, scheduler/, vae/)")
    unet = _json(folder / "unet" / "config.json", "unet/config.json")
    if unet.get("_class_name") != "VideoUNet":
        raise T2VError(f"--model {folder}: unet/ holds {unet.get('_class_name') or 'no model'}, not a VideoUNet; "
                       f"run `t2v inflate --from {folder} --recipe RECIPE --out DIR` and serve DIR")
    factor = folder_vae_factor(folder)
    size = native_size(folder, factor)
    index = _json(folder / "model_index.json", "model_index.json") if (folder / "model_index.json").is_file() else {}
    gen = index.get("t2v_generation", {}) if isinstance(index.get("t2v_generation"), dict) else {}
    defaults = {
        "num_frames": int(gen.get("num_frames", DEFAULT_FRAMES)),
        "height": int(gen.get("height", size)),
        "width": int(gen.get("width", size)),
        "steps": int(gen.get("num_inference_steps", 50)),
        "guidance": float(gen.get("guidance_scale", 7.5)),
        "fps": float(gen.get("fps", DEFAULT_FPS)),
        "scheduler": None,
    }
    label = "default (embedded)" if path is None else folder.name
    return ServedModel(key, label, folder.resolve(), str(unet.get("recipe", "?")), factor, defaults)


# ----------------------------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------------------------
def run_generate(job: Job, model: ServedModel, store: ResultStore) -> dict[str, Any]:
    """Sample one video with `job.settings` (checked by `check_generate`) and write it with its JSON."""
    from t2v.data.video_io import write_video

    s = job.settings
    job.total = s["steps"]
    job.stage = "loading the model"
    pipe = model.pipeline()
    job.stage = "sampling"
    video = pipe([s["prompt"]], negative_prompt=s["negative_prompt"], num_frames=s["num_frames"], height=s["height"],
                 width=s["width"], fps=s["fps"], num_inference_steps=s["steps"], guidance_scale=s["guidance"],
                 seed=s["seed"], scheduler=s["scheduler"], progress=False)  # (1, 3, F, H, W)
    job.stage = "writing the video"
    rid, folder = store.new_result()
    path = write_video(folder / "video.mp4", video[0], s["fps"])
    settings = {"file": path.name, "role": "video", "kind": "generate", "created": _now(), "job": job.id,
                "model": model.label, "model_path": str(model.path), **s,
                "scheduler": s["scheduler"] or pipe.default_sampler, "frames_written": int(video.shape[2])}
    store.write_settings(path, settings)
    return {"id": rid, "main": path.name, "videos": [settings]}


# ----------------------------------------------------------------------------------------------
# tune and edit (Tune-A-Video, Wu et al. 2023)
# ----------------------------------------------------------------------------------------------
def tune_base(model: ServedModel, store: ResultStore) -> Path:
    """A folder `t2v tune` accepts, for `model`: the model itself when its U-Net was inflated with
    `tune-a-video`, else its 2D parent (`VideoUNet.to_unet2d`, temporal layers dropped) beside copies
    of its other parts, made once under RESULTS/bases/."""
    if model.recipe == "tune-a-video":
        return model.path
    weights = sorted((model.path / "unet").glob("*.safetensors")) + sorted((model.path / "unet").glob("*.bin"))
    stamp = "|".join([str(model.path)] + [f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights])
    folder = store.root / BASES / hashlib.sha256(stamp.encode()).hexdigest()[:16]
    if (folder / "model_index.json").is_file():
        return folder
    from t2v.models import load_video_unet

    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    load_video_unet(model.path).to_unet2d().save_pretrained(tmp / "unet", safe_serialization=True)
    for part in ("text_encoder", "tokenizer", "scheduler", "vae"):
        if (model.path / part).is_dir():
            shutil.copytree(model.path / part, tmp / part)
    index = {"_class_name": "StableDiffusionPipeline", "_t2v_2d_parent_of": str(model.path),
             "unet": ["diffusers", "UNet2DConditionModel"]}
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def run_tune_edit(job: Job, model: ServedModel, store: ResultStore, clip: Path, clip_facts: dict[str, Any]) -> dict[str, Any]:
    """Tune `model` on the uploaded clip and its caption, DDIM-invert the clip, sample each edited
    prompt from the inverted noise, and write source.mp4, edit-NNN.mp4 and comparison.mp4 (+ JSONs)."""
    from t2v.data.video_io import write_video
    from t2v.pipelines.comparison import side_by_side
    from t2v.pipelines.tune_a_video import edit, invert_source, load_tuned, source_clip
    from t2v.training.loop import train as run_training
    from t2v.training.tune import tune_config

    s = job.settings
    prompts = s["edit_prompts"]
    job.total = s["tune_steps"] + s["steps"] * (1 + len(prompts))
    work = store.root / ".work" / job.id
    try:
        job.stage = "preparing the 2D base model"
        base = tune_base(model, store)
        config = tune_config(base, clip, s["prompt"], s["tune_steps"], work / "tuned", lr=s["lr"], num_frames=s["num_frames"],
                             stride=s["stride"], seed=s["seed"], gradient_checkpointing=False)
        config = replace(config, logging=replace(config.logging, progress=False, tensorboard=False))
        job.stage = f"tuning on the clip ({s['tune_steps']} steps)"
        with _TRAIN_LOCK:
            run_training(config)
        job.stage = "inverting the clip (DDIM)"
        pipe, record = load_tuned(work / "tuned")
        latents = invert_source(pipe, record, s["steps"], progress=False)
        job.stage = f"sampling {len(prompts)} edit{'s' if len(prompts) > 1 else ''}"
        videos = edit(pipe, record, prompts, s["steps"], s["guidance"], latents=latents, progress=False)
        job.stage = "writing the videos"
        source, fps = source_clip(record)  # (C, F, H, W)
        rid, folder = store.new_result()
        common = {"kind": "edit", "created": _now(), "job": job.id, "model": model.label, "model_path": str(model.path),
                  "upload": clip_facts.get("id"), "upload_name": clip_facts.get("name"), **s, "fps": fps}
        written = []
        for name, role, video, extra in (
            [("source.mp4", "source", source, {"prompt_of_video": s["prompt"]})]
            + [(f"edit-{i:03d}.mp4", "edit", v, {"prompt_of_video": p}) for i, (p, v) in enumerate(zip(prompts, videos))]
        ):
            path = write_video(folder / name, video, fps)
            written.append({"file": name, "role": role, **common, **extra, "frames_written": int(video.shape[1])})
            store.write_settings(path, written[-1])
        row = side_by_side([source, *videos], [f"source: {s['prompt']}", *prompts])  # (F, H, W_row, 3)
        path = write_video(folder / "comparison.mp4", row, fps)
        written.append({"file": path.name, "role": "comparison", **common, "frames_written": int(row.shape[0])})
        store.write_settings(path, written[-1])
        shutil.move(str(work / "tuned"), str(folder / "tuned"))
        return {"id": rid, "main": path.name, "videos": written}
    finally:
        shutil.rmtree(work, ignore_errors=True)
