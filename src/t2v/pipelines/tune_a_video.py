"""Tune-A-Video (Wu et al. 2023): save / reload a one-shot tuned model, invert its clip, edit it.

A tuned model is a folder with two files:
  unet_delta.safetensors   only the parameters the tuning changed: the `tune-a-video` recipe's
                           trainable ones (`to_q` of spatial self- and cross-attention + temporal
                           attention); with peft LoRA adapters, the LoRA weights instead of `to_q`
  tune.json                the record: base model folder, clip, prompt, frame sampling, settings
The base model folder (an SD folder with a 2D U-Net, or a model folder whose U-Net was inflated with
`tune-a-video`) is read again on load, so the tuned folder stays small.

Editing (paper sec. 4.2): DDIM-invert the source clip's clean latents with the empty prompt and no
guidance, then sample each edited prompt from the inverted noise with DDIM (eta = 0). The inverted
noise is cached beside the weights as `inversion-<steps>.safetensors`, with what it depends on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from t2v.errors import T2VError
from t2v.pipelines.text_to_video import TextToVideoPipeline

log = logging.getLogger("t2v.pipelines")

RECIPE = "tune-a-video"
DELTA_FILE = "unet_delta.safetensors"
RECORD_FILE = "tune.json"
_DELTA_FORMAT = "t2v-tuned-delta-1"
# What the record must hold for load_tuned / invert_source.
REQUIRED = ("base_model", "video", "prompt", "sampling")
# LoraConfig fields kept in tune.json (enough to rebuild the same adapters).
_LORA_FIELDS = ("r", "lora_alpha", "target_modules", "exclude_modules", "lora_dropout", "use_rslora",
                "use_dora", "bias", "rank_pattern", "alpha_pattern")
# peft's default target for `add_lora`: `to_q` of spatial self- (attn1) and cross-attention (attn2).
LORA_TARGET = r".*\.attn[12]\.to_q"


# ----------------------------------------------------------------------------------------------
# which parameters a tuning changes
# ----------------------------------------------------------------------------------------------
def _lora_holder(unet: nn.Module) -> tuple[str, nn.Module, str, Any] | None:
    """(module path, module, adapter name, LoraConfig) of the peft adapters in `unet`, if any."""
    for name, module in unet.named_modules():
        cfgs = getattr(module, "peft_config", None)
        if isinstance(cfgs, dict) and cfgs:
            if len(cfgs) > 1:
                raise T2VError(f"the U-Net has {len(cfgs)} LoRA adapters ({', '.join(cfgs)}); save one adapter at a time")
            (adapter, cfg), = cfgs.items()
            return name, module, adapter, cfg
    return None


def tuned_parameters(unet: nn.Module) -> dict[str, nn.Parameter]:
    """Name -> parameter of what Tune-A-Video trains in `unet` (the optimizer's and the delta's set).

    Without LoRA: the recipe's trainable parameters (`unet.trainable_parameters()`). With peft LoRA
    adapters: every LoRA weight plus the recipe's trainable parameters that LoRA does not wrap (the
    frozen `base_layer` weights are left out).
    """
    trainable = unet.trainable_parameters()
    named = dict(unet.named_parameters())
    lora = {n: p for n, p in named.items() if ".lora_" in n}
    if not lora:
        return trainable
    keep = {n: p for n, p in trainable.items() if ".base_layer." not in n}
    return {n: named[n] for n in named if n in lora or n in keep}  # the model's order


def add_lora(unet: nn.Module, rank: int, alpha: Optional[float] = None, target_modules: str = LORA_TARGET) -> nn.Module:
    """Put peft LoRA adapters (rank `rank`, scale alpha / rank, alpha = rank by default) on `unet`'s
    spatial `to_q` layers, in place, instead of training them fully (Hu et al. 2022). Returns `unet`."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise T2VError(f"LoRA rank must be at least 1, got {rank}")
    cfg = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, target_modules=target_modules)
    inject_adapter_in_model(cfg, unet)
    return unet


def _lora_record(unet: nn.Module) -> Optional[dict[str, Any]]:
    holder = _lora_holder(unet)
    if holder is None:
        return None
    path, _, adapter, cfg = holder
    d = cfg.to_dict()
    out = {k: d.get(k) for k in _LORA_FIELDS}
    for k, v in out.items():
        if isinstance(v, (set, frozenset)):
            out[k] = sorted(v)
    return {"module": path, "adapter": adapter, "config": out}


def _apply_lora(unet: nn.Module, spec: dict[str, Any]) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    try:
        module = unet.get_submodule(spec["module"]) if spec.get("module") else unet
        cfg = LoraConfig(**spec["config"])
        inject_adapter_in_model(cfg, module, adapter_name=spec.get("adapter", "default"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise T2VError(f"the LoRA settings in {RECORD_FILE} do not fit the base model ({exc}); re-run t2v tune") from None


# ----------------------------------------------------------------------------------------------
# save / load
# ----------------------------------------------------------------------------------------------
def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _jsonable(x: Any) -> Any:
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def save_tuned(out_dir: Path, unet: nn.Module, *, record: dict) -> Path:
    """Write a tuned model: `out_dir/unet_delta.safetensors` (only `tuned_parameters(unet)`) and
    `out_dir/tune.json` (`record` plus what load needs: recipe, delta size, LoRA settings).

    `record` must hold `base_model` (folder), `video` (path), `prompt` and `sampling` (the
    FrameSampling fields); anything else (steps, lr, seed, lora_rank, ...) is kept as is. Each file
    is written to a temporary name and renamed, so an interrupted save never leaves a half file.
    Returns `out_dir`.
    """
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise T2VError(f"the tuning record lacks {', '.join(missing)}; it needs {', '.join(REQUIRED)}")
    recipe = getattr(unet, "recipe", None)
    if recipe is None or not recipe.sparse_causal:
        raise T2VError(f"save_tuned expects a VideoUNet inflated with the {RECIPE!r} recipe")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    delta = {n: p.detach().to("cpu").contiguous() for n, p in tuned_parameters(unet).items()}
    if not delta:
        raise T2VError("the U-Net has no tuned parameters to save")
    rec = _jsonable(dict(record))
    rec.update(
        recipe=recipe.name,
        delta=DELTA_FILE,
        delta_tensors=len(delta),
        delta_numel=sum(t.numel() for t in delta.values()),
        lora=_lora_record(unet),
    )
    meta = {"format": _DELTA_FORMAT, "recipe": recipe.name}
    _atomic_write(out_dir / DELTA_FILE, lambda p: save_file(delta, str(p), metadata=meta))
    _atomic_write(out_dir / RECORD_FILE, lambda p: p.write_text(json.dumps(rec, indent=2) + "\n"))
    return out_dir


def read_record(tuned_dir: Union[str, Path]) -> dict[str, Any]:
    """tune.json of a tuned folder, with `tuned_dir` added; one-line error when it is not one."""
    tuned_dir = Path(tuned_dir)
    path = tuned_dir / RECORD_FILE
    if not path.is_file():
        raise T2VError(f"{tuned_dir} has no {RECORD_FILE}; pass a folder written by `t2v tune`")
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise T2VError(f"{path} is not readable JSON ({type(exc).__name__}); re-run `t2v tune`") from None
    missing = [k for k in REQUIRED if k not in rec] if isinstance(rec, dict) else list(REQUIRED)
    if missing:
        raise T2VError(f"{path} lacks {', '.join(missing)}; re-run `t2v tune`")
    rec["tuned_dir"] = str(tuned_dir)
    return rec


def _resolve(path: str, tuned_dir: Path) -> Path:
    """A path from the record: as written (absolute or from the working folder), else beside tune.json."""
    p = Path(path)
    if p.is_absolute() or p.exists() or not (tuned_dir / p).exists():
        return p
    return tuned_dir / p


def load_tuned(tuned_dir: Union[str, Path], *, device: Union[str, torch.device, None] = None,
               dtype: Optional[torch.dtype] = None) -> tuple[TextToVideoPipeline, dict]:
    """The tuned model as a pipeline, and its record (with `tuned_dir` added).

    Loads the base folder named in the record, inflating a 2D U-Net with the `tune-a-video` recipe,
    re-creates LoRA adapters if the tuning used them, and puts the delta's parameters in. A missing
    delta, or one whose names/shapes do not match the base model, is a one-line T2VError.
    """
    tuned_dir = Path(tuned_dir)
    rec = read_record(tuned_dir)
    base = _resolve(rec["base_model"], tuned_dir)
    if not base.is_dir():
        raise T2VError(f"the base model {base} named in {tuned_dir / RECORD_FILE} is missing; restore it or re-run `t2v tune`")
    delta_path = tuned_dir / rec.get("delta", DELTA_FILE)
    if not delta_path.is_file():
        raise T2VError(f"{tuned_dir} has no {delta_path.name}; the tuned weights are missing, re-run `t2v tune`")
    pipe = TextToVideoPipeline.from_pretrained(base, inflate_recipe=RECIPE)
    unet = pipe.unet
    if not unet.recipe.sparse_causal:
        raise T2VError(f"the base model {base} was inflated with {unet.recipe.name!r}, not {RECIPE!r}; use its SD folder as the base")
    if rec.get("lora"):
        _apply_lora(unet, rec["lora"])
    try:
        with safe_open(str(delta_path), framework="pt") as f:
            if (f.metadata() or {}).get("format") != _DELTA_FORMAT:
                raise T2VError(f"{delta_path} is not a t2v tuned delta; re-run `t2v tune`")
            delta = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise T2VError(f"{delta_path} is unreadable ({exc}); re-run `t2v tune`") from None
    expected = tuned_parameters(unet)
    unknown, absent = sorted(set(delta) - set(expected)), sorted(set(expected) - set(delta))
    if unknown or absent:
        detail = f"unknown names {unknown[:2]}" if unknown else f"missing names {absent[:2]}"
        raise T2VError(f"{delta_path} does not match the base model {base} ({detail}); was it tuned from another model?")
    wrong = [k for k, t in delta.items() if t.shape != expected[k].shape]
    if wrong:
        raise T2VError(
            f"{delta_path} does not match the base model {base} ({wrong[0]}: {tuple(delta[wrong[0]].shape)} vs "
            f"{tuple(expected[wrong[0]].shape)}); was it tuned from another model?"
        )
    with torch.no_grad():
        for k, t in delta.items():
            expected[k].copy_(t)
    unet.requires_grad_(False)
    pipe.to(device=device, dtype=dtype)
    return pipe, rec


# ----------------------------------------------------------------------------------------------
# inversion and editing
# ----------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    """Hash of a file's bytes, or of a frame folder's file names and bytes."""
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(file.name.encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def source_sampling(record: dict):
    """The record's FrameSampling (unknown keys are an error)."""
    from t2v.data.sampling import FrameSampling

    s = dict(record["sampling"])
    known = {f.name for f in fields(FrameSampling)}
    if set(s) - known:
        raise T2VError(f"the record's sampling has unknown fields {sorted(set(s) - known)}; known: {sorted(known)}")
    return FrameSampling(**s)


def source_clip(record: dict) -> tuple[Tensor, float]:
    """The tuning clip, sampled as during tuning -> (float (C, F, H, W) in [-1, 1], its frame rate).

    A random start offset is drawn from a generator seeded with the record's seed, so it is fixed.
    """
    from t2v.data.sampling import sample_clip
    from t2v.data.video_io import read_video

    tuned_dir = Path(record.get("tuned_dir", "."))
    frames, fps = read_video(_resolve(record["video"], tuned_dir))
    sampling = source_sampling(record)
    g = torch.Generator().manual_seed(int(record.get("seed") or 0))
    return sample_clip(frames, fps, sampling, g), sampling.output_fps(fps)  # (C, F, H, W), fps


def inversion_meta(pipe: TextToVideoPipeline, record: dict, steps: int) -> dict[str, Any]:
    """What inverted latents depend on: the clip (bytes), its sampling, the weights, schedule and steps."""
    tuned_dir = Path(record.get("tuned_dir", "."))
    delta = tuned_dir / record.get("delta", DELTA_FILE)
    schedule = {k: v for k, v in pipe.scheduler_config.items() if not k.startswith("_")}
    return {
        "steps": int(steps),
        "prompt": "",
        "guidance_scale": 1.0,
        "video": str(record["video"]),
        "video_sha256": _sha256(_resolve(record["video"], tuned_dir)),
        "sampling": record["sampling"],
        "seed": record.get("seed"),
        "base_model": str(record["base_model"]),
        "delta_sha256": _sha256(delta) if delta.is_file() else None,
        "schedule_sha256": hashlib.sha256(json.dumps(schedule, sort_keys=True, default=str).encode()).hexdigest(),
    }


def inversion_path(record: dict, steps: int) -> Path:
    return Path(record.get("tuned_dir", ".")) / f"inversion-{int(steps)}.safetensors"


@torch.no_grad()
def invert_source(pipe: TextToVideoPipeline, record: dict, steps: int, *, cache: bool = True,
                  progress: bool = True) -> Tensor:
    """DDIM-inverted noise of the source clip -> (1, C, F, h, w), from the cache when it matches.

    The clip (sampled as in the record) is encoded by the VAE (posterior mean), then inverted with
    the empty prompt and no guidance over `steps` DDIM steps (Tune-A-Video). With `cache`, the
    result is kept at `tuned_dir/inversion-<steps>.safetensors`; a cache made with other settings
    (clip, sampling, weights, schedule) is recomputed and replaced.
    """
    from t2v.diffusion.inversion import ddim_invert, load_inversion, save_inversion

    if steps < 1:
        raise T2VError(f"steps must be at least 1, got {steps}")
    meta = inversion_meta(pipe, record, steps) if cache else None
    path = inversion_path(record, steps)
    if cache and path.is_file():
        try:
            return load_inversion(path, meta).to(pipe.device)
        except T2VError as exc:
            log.warning("%s; recomputing", exc)
    video = source_clip(record)[0][None]  # (1, C, F, H, W)
    latents = pipe.encode_video(video).float()  # (1, C, F, h, w)
    empty = pipe.encode_text([""])  # (1, L, D)
    noise = ddim_invert(
        pipe._model_fn(None),
        pipe.scheduler_config,
        latents,
        cond={"encoder_hidden_states": empty},
        num_inference_steps=steps,
        progress=progress,
    )  # (1, C, F, h, w)
    if cache:
        save_inversion(path, noise, meta)
    return noise


def edit(
    pipe: TextToVideoPipeline,
    record: dict,
    prompts: Sequence[str],
    steps: int = 50,
    guidance: float = 12.5,
    *,
    negative_prompt: Optional[str] = None,
    latents: Optional[Tensor] = None,
    cache: bool = True,
    decode_chunk_size: int = 8,
    progress: bool = True,
) -> list[Tensor]:
    """Edited videos, one per prompt, each float (C, F, H, W) in [-1, 1].

    Each prompt is sampled with DDIM (eta = 0, `steps` steps, guidance `guidance`; Tune-A-Video
    uses 12.5) from the source clip's inverted noise (`latents`, or `invert_source` with the cache).
    """
    prompts = list(prompts)
    if not prompts:
        raise T2VError("no edit prompt given; pass at least one --prompt")
    s = source_sampling(record)
    pipe.check_inputs(prompts, s.num_frames, s.height, s.width, steps, "ddim")
    if latents is None:
        latents = invert_source(pipe, record, steps, cache=cache, progress=progress)
    videos = []
    for p in prompts:
        v = pipe(
            [p], negative_prompt=negative_prompt, num_inference_steps=steps, guidance_scale=guidance,
            scheduler="ddim", latents=latents, decode_chunk_size=decode_chunk_size, progress=progress,
        )  # (1, C, F, H, W)
        videos.append(v[0])
    return videos
