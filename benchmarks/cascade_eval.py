"""Measure the cascade's stages on clips training never saw; prints markdown tables (docs/cascade.md).

    PYTHONPATH=src python benchmarks/cascade_eval.py [--sections interp,sr,decoder,cascade] [--clips 16]
        [--stages DIR] [--model DIR] [--steps N] [--seed 9001] [--real-vae DIR --real-decoder DIR] [--json out.json]

- interp: 29-frame ShapesWorld clips at 64x64 (data seed 9001; the stages trained on seeds 11-13).
  Keyframes every 4th frame (8 -> 29), every 2nd (15 -> 29) and 2x then 2x (8 -> 15 -> 29). PSNR
  and SSIM of the frames made (the keyframes are excluded: they are copied) against the true
  frames, beside linear blending of the two neighbouring keyframes; and the oracle's centroid track
  of the whole result against the true clip's (px at 64).
- sr: 8-frame windows rendered at 64 and at 128 (the same scene); PSNR / SSIM against the true 128
  rendering of the model at its default augmentation level and at 0, beside bicubic and bilinear.
- decoder: reconstruction PSNR and flicker (mean |e[t+1] - e[t]| of the error) of the temporal
  decoder against the per-frame decoder (its image VAE), on 16-frame ShapesWorld clips and on the
  last 16 frames of each shared real video (resized and center-cropped to 64x64); plus the temporal
  decoder with its temporal layers skipped (what fine-tuning alone did). The shipped pair is the
  ShapesWorld autoencoder; `--real-vae DIR --real-decoder DIR` adds a pair trained on the real
  videos' earlier frames (tools/cascade/real_autoencoder.py).
- cascade: the ShapesWorld oracle on 16 combinations (every 11th held-in + the 8 held-out), 1 seed:
  the base model (16 frames), and the cascade (8 keyframes -> 29 frames -> 128x128).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from t2v.data.shapes import HELD_IN, HELD_OUT, ShapesWorldDataset
from t2v.data.shapes_windows import ShapesWindows
from t2v.data.video_io import to_uint8_frames
from t2v.metrics.reconstruction import flicker, psnr, ssim, track_error
from t2v.pipelines.cascade import (
    CascadeStage,
    blend_neighbours,
    interpolate,
    keyframe_mask,
    load_temporal_decoder,
    place_keyframes,
    upscale,
)


def _mean(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else math.nan


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def blend(keyframes: torch.Tensor, factor: int) -> torch.Tensor:
    """Linear blending of neighbouring keyframes: (B, C, N, H, W) -> (B, C, (N-1)k+1, H, W)."""
    return blend_neighbours(*place_keyframes(keyframes, factor))


# ------------------------------------------------------------------------------------------------
def eval_interp(stage: CascadeStage, clips: int, seed: int, steps: int | None) -> tuple[str, dict]:
    ds = ShapesWorldDataset(clips, seed=seed, size=64, num_frames=29, include_held_out=True)
    true = torch.stack([ds[i]["video"] for i in range(clips)])  # (N, 3, 29, 64, 64)
    rows, data = [], {}
    for name, factors, stride in (("4 (8 -> 29)", [4], 4), ("2 (15 -> 29)", [2], 2), ("2x2 (8 -> 15 -> 29)", [2, 2], 4)):
        keys = true[:, :, ::stride]
        t0 = time.perf_counter()
        video = keys
        for k in factors:
            video = torch.cat([interpolate(stage, video[i : i + 8], k, steps=steps, seed=i) for i in range(0, clips, 8)])
        secs = time.perf_counter() - t0
        blended = blend(keys, stride)
        made = [f for f in range(29) if not keyframe_mask(29, stride)[f]]
        res = {}
        for method, out in (("model", video), ("blend", blended)):
            res[method] = {
                "psnr": _mean([psnr(out[i][:, made], true[i][:, made]) for i in range(clips)]),
                "ssim": _mean([ssim(out[i][:, made], true[i][:, made]) for i in range(clips)]),
                "track": _mean([track_error(out[i], true[i]) for i in range(clips)]),
                "track_made": _mean([track_error(out[i], true[i], made) for i in range(clips)]),
            }
        data[name] = {**res, "seconds_per_clip": secs / clips}
        m, b_ = res["model"], res["blend"]
        rows.append([name, f"{m['psnr']:.2f}", f"{b_['psnr']:.2f}", f"{m['psnr'] - b_['psnr']:+.2f}", f"{m['ssim']:.3f}",
                     f"{b_['ssim']:.3f}", f"{m['track']:.2f}", f"{m['track_made']:.2f}", f"{b_['track']:.2f}", f"{secs / clips:.1f}"])
    header = ["factor", "PSNR model", "PSNR blend", "gain dB", "SSIM model", "SSIM blend", "track err model (all)",
              "track err model (made)", "track err blend", "s/clip"]
    return _table(f"Interpolation, {clips} ShapesWorld clips (seed {seed}), made frames only; track error px at 64", header, rows), data


def eval_sr(stage: CascadeStage, clips: int, seed: int, steps: int | None) -> tuple[str, dict]:
    ds = ShapesWindows(clips, seed=seed, size=64, window=8, clip_frames=(16, 29), scale=2, include_held_out=True)
    lo = torch.stack([ds[i]["video"] for i in range(clips)])  # (N, 3, 8, 64, 64)
    hi = torch.stack([ds[i]["video_hi"] for i in range(clips)])  # (N, 3, 8, 128, 128)
    frames = rearrange(lo, "b c f h w -> (b f) c h w")
    results = {}
    for mode in ("bicubic", "bilinear"):
        up = F.interpolate(frames, scale_factor=2, mode=mode, align_corners=False).clamp(-1, 1)
        results[mode] = rearrange(up, "(b f) c h w -> b c f h w", b=clips)
    default = float(stage.defaults["noise_level"])
    # (level, self-ensemble): the plain sample at the folder's level and at 0, then averaged over 4 and 8 flips.
    runs = [(default, 1)] + ([(0.0, 1)] if default != 0.0 else []) + [(default, 4), (default, 8)]
    secs = {}
    for lvl, n in runs:
        name = f"model, level {lvl:g}" + (f", self-ensemble {n}" if n > 1 else "")
        t0 = time.perf_counter()
        results[name] = torch.cat([upscale(stage, lo[i : i + 4], noise_level=lvl, steps=steps, seed=i, self_ensemble=n)
                                   for i in range(0, clips, 4)])
        secs[name] = (time.perf_counter() - t0) / clips
    rows, data = [], {}
    for name, out in results.items():
        p = _mean([psnr(out[i], hi[i]) for i in range(clips)])
        s = _mean([ssim(out[i], hi[i]) for i in range(clips)])
        # What `t2v upscale` writes: 8-bit frames (the writer's own rounding), as SR papers score them.
        written = torch.stack([as_written(out[i]) for i in range(clips)])
        p8 = _mean([psnr(written[i], hi[i]) for i in range(clips)])
        s8 = _mean([ssim(written[i], hi[i]) for i in range(clips)])
        t = _mean([track_error(out[i], hi[i]) for i in range(clips)])
        data[name] = {"psnr": p, "ssim": s, "psnr_8bit": p8, "ssim_8bit": s8, "track": t}
        rows.append([name, f"{p:.2f}", f"{s:.4f}", f"{p8:.2f}", f"{s8:.4f}", f"{t:.2f}", f"{secs[name]:.1f}" if name in secs else "-"])
    return _table(f"Super-resolution 64 -> 128, {clips} ShapesWorld windows of 8 frames (seed {seed}), against the true 128 rendering",
                  ["method", "PSNR", "SSIM", "PSNR 8-bit", "SSIM 8-bit", "track err (px at 64)", "s/clip"], rows), data


def as_written(clip: torch.Tensor) -> torch.Tensor:
    """(C, F, H, W) in [-1, 1] -> the same clip quantised to the 8-bit frames the video writer encodes."""
    return rearrange(to_uint8_frames(clip), "f h w c -> c f h w").float() / 127.5 - 1.0


REAL_EVAL_FRAMES = 16  # the last frames of each shared real video: never trained on (tools/cascade/real_autoencoder.py)


def real_frames(path: Path, size: int = 64) -> torch.Tensor:
    """Every frame of a video, resized and center-cropped to size x size -> (3, F, size, size) in [-1, 1]."""
    from t2v.data.sampling import resize_center_crop
    from t2v.data.video_io import read_video

    frames, _ = read_video(str(path))
    x = resize_center_crop(frames.permute(0, 3, 1, 2).float(), size, size)  # (F, 3, size, size)
    return rearrange((x / 127.5 - 1).clamp(-1, 1), "f c h w -> c f h w")


def real_clips(folder: Path, first: bool = False) -> dict[str, torch.Tensor]:
    """name -> (3, 16, 64, 64): the last REAL_EVAL_FRAMES frames of each shared real video (`first`:
    the first ones instead, frames the real-footage autoencoder and decoder trained on)."""
    paths = sorted(glob.glob(str(folder / "*.mp4")))
    if not paths:
        raise SystemExit(f"no videos in {folder}: pass --assets (the shared assets folder) or set T2V_ASSETS")
    span = slice(0, REAL_EVAL_FRAMES) if first else slice(-REAL_EVAL_FRAMES, None)
    return {Path(p).stem: real_frames(Path(p))[:, span] for p in paths}


@torch.no_grad()
def eval_decoder(pairs: dict[str, tuple[Path, Path | None, list[torch.Tensor]]]) -> tuple[str, dict]:
    """pairs: set name -> (image VAE folder, temporal decoder folder (None: shipped), clips (3, F, H, W))."""
    from diffusers import AutoencoderKL

    rows, data, loaded = [], {}, {}
    for set_name, (vae_dir, decoder_dir, videos) in pairs.items():
        if (vae_dir, decoder_dir) not in loaded:  # sets that share an autoencoder load it once
            loaded[vae_dir, decoder_dir] = (load_temporal_decoder(decoder_dir), AutoencoderKL.from_pretrained(vae_dir).eval())
        temporal, image_vae = loaded[vae_dir, decoder_dir]

        def per_frame(x: torch.Tensor, image_vae=image_vae) -> torch.Tensor:  # (3, F, 64, 64) -> same, the image VAE
            z = image_vae.encode(rearrange(x, "c f h w -> f c h w")).latent_dist.mode()
            return rearrange(image_vae.decode(z).sample.clamp(-1, 1), "f c h w -> c f h w")

        res = {}
        for method, fn in (
            ("per-frame decoder (image VAE)", per_frame),
            ("temporal decoder", lambda x, m=temporal: m(x[None]).clamp(-1, 1)[0]),
            ("temporal decoder, temporal layers skipped", lambda x, m=temporal: m(x[None], image_only=True).clamp(-1, 1)[0]),
        ):
            outs = [fn(v) for v in videos]
            res[method] = {"psnr": _mean([psnr(o, v) for o, v in zip(outs, videos)]),
                           "flicker": _mean([flicker(o, v) for o, v in zip(outs, videos)])}
        base = res["per-frame decoder (image VAE)"]
        for method, r in res.items():
            rows.append([set_name, method, f"{r['psnr']:.2f}", f"{r['psnr'] - base['psnr']:+.2f}", f"{r['flicker']:.5f}",
                         f"{100 * (1 - r['flicker'] / base['flicker']):.1f}%"])
        data[set_name] = res
    return _table("Temporal decoder: reconstruction (encoder frozen)", ["clips", "decoder", "PSNR", "vs per-frame",
                                                                       "flicker", "flicker reduction"], rows), data


def eval_cascade(model: Path | None, stages: Path | None, steps: int | None) -> tuple[str, dict]:
    from t2v.metrics.shapes_eval import evaluate_shapes
    from t2v.pipelines import TextToVideoPipeline
    from t2v.pipelines.cascade import CascadePipeline

    combos = list(HELD_IN[::11]) + list(HELD_OUT)
    folders = {} if stages is None else {"interpolator": stages / "interpolate", "upscaler": stages / "upscale",
                                         "decoder": stages / "vae_temporal"}
    base = TextToVideoPipeline.from_pretrained(model)
    cascade = CascadePipeline.from_pretrained(model, **folders)
    runs = {
        "base model, 16 frames 64x64": lambda p, s: base(p, seed=s, progress=False),
        "base model, 8 keyframes (its own vae/)": lambda p, s: base(p, num_frames=8, seed=s, progress=False),
        "cascade: 8 keyframes -> 29 frames -> 128x128": lambda p, s: cascade(p, seed=s, stage_steps=steps),
    }
    rows, data = [], {}
    for name, gen in runs.items():
        t0 = time.perf_counter()
        scores, _ = evaluate_shapes(gen, seeds=1, batch_size=8, combinations=combos)
        secs = (time.perf_counter() - t0) / len(combos)
        data[name] = {**scores, "seconds_per_clip": secs}
        for group in ("held_in", "held_out"):
            g = scores[group]
            rows.append([name, group.replace("_", "-"), str(g["n"]), *(f"{100 * g[m]:.1f}%" for m in
                         ("color", "shape", "direction", "all_three")), f"{g['consistency']:.3f}", f"{secs:.1f}"])
    return _table("ShapesWorld oracle, 16 combinations x 1 seed (clip j: seed j)", ["model", "set", "clips", "color", "shape",
                  "direction", "all-three", "consistency", "s/clip"], rows), data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="interp,sr,decoder,cascade")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--seed", type=int, default=9001)
    ap.add_argument("--stages", type=Path, default=None, help="folder with interpolate/, upscale/, vae_temporal/ (default: shipped)")
    ap.add_argument("--model", type=Path, default=None, help="base model folder (default: the shipped default model)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps of the stages (default: each folder's)")
    ap.add_argument("--assets", type=Path, default=Path(os.environ.get("T2V_ASSETS", "../shared/assets")))
    ap.add_argument("--real-vae", type=Path, default=None, help="decoder section: an image VAE trained on the real clips' "
                    "earlier frames (tools/cascade/real_autoencoder.py), measured with --real-decoder on their last 16")
    ap.add_argument("--real-decoder", type=Path, default=None, help="the temporal decoder trained from --real-vae")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if (args.real_vae is None) != (args.real_decoder is None):
        raise SystemExit("--real-vae and --real-decoder go together")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sub = (lambda n: None) if args.stages is None else (lambda n: args.stages / n)
    report = {}
    for section in args.sections.split(","):
        t0 = time.perf_counter()
        if section == "interp":
            text, data = eval_interp(CascadeStage.from_pretrained(sub("interpolate"), "interpolate"), args.clips, args.seed, args.steps)
        elif section == "sr":
            text, data = eval_sr(CascadeStage.from_pretrained(sub("upscale"), "upscale"), args.clips, args.seed, args.steps)
        elif section == "decoder":
            from t2v.pipelines.cascade import default_stage_dir

            # The per-frame decoder: the image VAE the decoder stage was fine-tuned from (the default
            # model's own vae/ is that fine-tuned temporal decoder since session 10).
            vae = args.model / "vae" if args.model else default_stage_dir("image_vae")
            ds = ShapesWorldDataset(args.clips, seed=args.seed, size=64, num_frames=16, include_held_out=True)
            real = list(real_clips(args.assets / "videos").values())
            pairs = {f"ShapesWorld ({args.clips} clips, seed {args.seed})": (vae, sub("vae_temporal"), [ds[i]["video"] for i in range(args.clips)]),
                     "real, last 16 frames (5 clips), ShapesWorld autoencoder": (vae, sub("vae_temporal"), real)}
            if args.real_vae is not None:
                pairs["real, last 16 frames (5 clips), real-footage autoencoder"] = (args.real_vae, args.real_decoder, real)
                seen = list(real_clips(args.assets / "videos", first=True).values())
                pairs["real, first 16 frames (trained on), real-footage autoencoder"] = (args.real_vae, args.real_decoder, seen)
            text, data = eval_decoder(pairs)
        elif section == "cascade":
            text, data = eval_cascade(args.model, args.stages, args.steps)
        else:
            raise SystemExit(f"unknown section {section!r}")
        report[section] = data
        print(text + f"\n({section}: {time.perf_counter() - t0:.0f} s)\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
