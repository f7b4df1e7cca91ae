"""Text-to-video generation end to end, with where the time goes.

Stages, in the order a user meets them: process start (interpreter, then the imports of torch,
diffusers, transformers and t2v), loading the model folder, text encoding, denoising (every step:
the U-Net forward, guidance included, and the sampler's update), VAE decoding, writing the video.
The pipeline is `t2v.pipelines.TextToVideoPipeline`, the same one `t2v generate` runs.

    python benchmarks/generate.py                          # the embedded default model
    python benchmarks/generate.py --model DIR --steps 25   # any t2v model folder
    python benchmarks/generate.py --tiny                   # a tiny random model built here (no download)
    python benchmarks/generate.py --runs 3                 # 3 videos in one process: first call vs steady state

`--tiny` writes a Stable-Diffusion-shaped folder with random weights (tests/sd_fixture.py) and
inflates it (`t2v.models.inflate_folder`), to show the code path on any machine; its timings say
nothing about a real model.
"""

from __future__ import annotations

import os
import time

_SCRIPT_START = time.perf_counter()  # before the heavy imports


def _process_age() -> float | None:
    """Seconds since this process started (Linux /proc), i.e. the interpreter's own start-up so far."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


_AGE_AT_START = _process_age()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from t2v.cli import startup_imports  # noqa: E402

with startup_imports(freeze=True):  # as `t2v generate` imports (no collection while importing)
    import torch

    import t2v.pipelines  # noqa: F401  (all of the library a generate call needs)
    from t2v.data.video_io import write_video
    from t2v.errors import T2VError
    from t2v.models.temporal_vae import TemporalAutoencoder
    from t2v.pipelines import TextToVideoPipeline
    from t2v.pipelines.model_folder import default_model_dir

_IMPORTED = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]


class Stopwatch:
    """Wall-clock intervals, synchronising CUDA so that GPU work is counted where it happens."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.marks: dict[str, float] = {}
        self.unet_calls: list[tuple[float, float, bool]] = []  # (start, end, image_only) of every U-Net forward

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def wrap(self, obj, name: str) -> None:
        """Time every call of `obj.name` as the stage `name` (the last call wins)."""
        fn = getattr(obj, name)

        def timed(*args, **kwargs):
            t0 = self.now()
            out = fn(*args, **kwargs)
            self.marks[f"{name}:start"], self.marks[f"{name}:end"] = t0, self.now()
            return out

        setattr(obj, name, timed)

    def hook_unet(self, unet: torch.nn.Module) -> None:
        """Time every U-Net forward; image_only = True for skip guidance's weak calls (temporal layers skipped)."""
        start: list[float] = []
        unet.register_forward_pre_hook(lambda m, args: start.append(self.now()))
        unet.register_forward_hook(
            lambda m, args, kwargs, out: self.unet_calls.append((start.pop(), self.now(), kwargs.get("image_only") is True)),
            with_kwargs=True)


def build_tiny(folder: Path, recipe: str) -> Path:
    """A tiny SD-shaped folder with random weights, inflated with `recipe` (tests/sd_fixture.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from sd_fixture import make_tiny_sd

    from t2v.models import inflate_folder

    return inflate_folder(make_tiny_sd(folder / "sd"), recipe, folder / "video")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the embedded default model)")
    p.add_argument("--tiny", action="store_true", help="build a tiny random model folder here and time that")
    p.add_argument("--recipe", default="video-ldm", help="recipe of the --tiny model")
    p.add_argument("--prompt", default="a red circle moving to the right")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="default: the model's (as `t2v generate`)")
    p.add_argument("--guidance", type=float, default=None, help="default: the model's (as `t2v generate`)")
    p.add_argument("--runs", type=int, default=1,
                   help="generate this many videos in the one process (seed 0, 1, ...); run 1 includes first-call costs")
    p.add_argument("--scheduler", default=None, help="ddim, dpm++, euler, ddpm (default: the model's)")
    p.add_argument("--decode-chunk-size", type=int, default=8)
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"], help="default: the folder's")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", type=Path, default=None, help="video file to write (default: a temporary .mp4)")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype) if args.dtype else None
    tmp = tempfile.TemporaryDirectory()
    if args.tiny:
        t0 = time.perf_counter()
        model = build_tiny(Path(tmp.name), args.recipe)
        print(f"built a tiny random {args.recipe} model in {time.perf_counter() - t0:.1f} s: {model}", file=sys.stderr)
    else:
        try:
            model = args.model or default_model_dir()
        except T2VError as e:
            raise SystemExit(f"error: {e}; or run with --tiny to time a tiny random model") from None
    out = args.out or Path(tmp.name) / "video.mp4"

    sw = Stopwatch(device)
    t_load = sw.now()
    pipe = TextToVideoPipeline.from_pretrained(model, device=device, dtype=dtype)
    t_loaded = sw.now()
    sw.wrap(pipe, "encode_text")
    sw.wrap(pipe, "decode_latents")
    sw.hook_unet(pipe.unet)
    steps = args.steps if args.steps is not None else pipe.generation_defaults["num_inference_steps"]
    guidance = args.guidance if args.guidance is not None else pipe.generation_defaults["guidance_scale"]

    runs: list[dict[str, float]] = []  # per run: stage -> seconds
    per_step: list[list[float]] = []  # per run: U-Net seconds of every guided call
    per_skip: list[list[float]] = []  # per run: U-Net seconds of every skip-guidance call (temporal layers skipped)
    for i in range(args.runs):
        sw.unet_calls.clear()
        t_call = sw.now()
        video = pipe([args.prompt], num_frames=args.frames, height=args.height, width=args.width,
                     num_inference_steps=steps, guidance_scale=guidance, scheduler=args.scheduler, seed=i,
                     decode_chunk_size=args.decode_chunk_size, progress=False)  # (1, 3, F, H, W)
        t_called = sw.now()
        write_video(out, video[0], 8.0)
        t_written = sw.now()
        m = sw.marks
        unet = [b - a for a, b, weak in sw.unet_calls if not weak]
        skip = [b - a for a, b, weak in sw.unet_calls if weak]
        sampling = m["decode_latents:start"] - m["encode_text:end"]
        per_step.append(unet)
        per_skip.append(skip)
        runs.append({
            "text": m["encode_text:end"] - m["encode_text:start"],
            "unet": sum(unet),
            **({"skip": sum(skip)} if skip else {}),
            "sampler": sampling - sum(unet) - sum(skip),
            "decode": m["decode_latents:end"] - m["decode_latents:start"],
            "rest": (t_called - t_call) - (m["decode_latents:end"] - m["encode_text:start"]),
            "write": t_written - t_called,
        })
        print(f"run {i + 1}/{args.runs}: {t_written - t_call:.2f} s", file=sys.stderr, flush=True)

    age = _AGE_AT_START or 0.0
    once = {"start": age, "imports": _IMPORTED - _SCRIPT_START, "load": t_loaded - t_load}
    n_unet = len(per_step[0])
    names = {
        "start": "process start (interpreter)",
        "imports": "imports (torch, diffusers, transformers, t2v)",
        "load": "load model folder",
        "text": "text encoding (prompt + negative, once)",
        "unet": f"denoising: U-Net, {n_unet} calls",
        "skip": f"denoising: U-Net without temporal layers (skip guidance), {len(per_skip[0])} calls",
        "sampler": "denoising: sampler, noise, guidance mix",
        "decode": ("to pixels (no VAE)" if pipe.vae is None else "temporal VAE decoding (a clip a call)"
                   if isinstance(pipe.vae, TemporalAutoencoder) else f"VAE decoding ({args.decode_chunk_size} frames a call)"),
        "rest": "rest of the pipeline call",
        "write": f"writing {out.suffix}",
    }
    names = {k: v for k, v in names.items() if k in once or k in runs[0]}  # "skip" only with skip guidance
    first = once | runs[0]
    total = sum(first.values())  # process start to the first video written (tiny-model build excluded)
    later = runs[1:]
    h, w = video.shape[-2:]

    print(f"\nmodel: {model} ({type(pipe.unet).__name__}, recipe {pipe.unet.recipe.name}, "
          f"{sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.1f}M U-Net parameters)")
    print(f"request: 1 video, {args.frames} frames, {h}x{w} px, {steps} steps, guidance {guidance}; "
          f"{device}, {pipe.dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads; {args.runs} run(s) in one process")
    steady = [s for u in per_step for s in u[1:]]  # every U-Net call but the very first of each run
    print(f"U-Net per call: median {statistics.median(steady or per_step[0]):.3f} s, first call {per_step[0][0]:.3f} s, "
          f"min {min(steady or per_step[0]):.3f} s, max {max(steady or per_step[0]):.3f} s"
          + (" (guidance: conditional and unconditional in one batched call)" if guidance != 1.0 else "") + "\n")
    head = ["stage", "run 1 (s)", "run 1 share"] + ([f"runs 2-{args.runs}: median (min-max) s" if len(later) > 1 else "run 2 (s)"] if later else [])
    rows = []
    for key, name in names.items():
        row = [name, f"{first[key]:.3f}", f"{100 * first[key] / total:.1f}%"]
        if later:
            xs = [r[key] for r in later] if key in runs[0] else []
            row.append(f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})" if xs else "(once)")
        rows.append(row)
    tot_later = [sum(r.values()) for r in later]
    rows.append(["total, process start to video written" + (" (tiny-model build excluded)" if args.tiny else ""),
                 f"{total:.3f}", "100%"] + ([f"{statistics.median(tot_later):.3f} ({min(tot_later):.3f}-{max(tot_later):.3f}) per video"]
                                             if later else []))
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(*head)
        for r in rows:
            table.add_row(*r)
        Console(width=130).print(table)
    if args.json:
        args.json.write_text(json.dumps({"once": once, "runs": runs, "unet_per_step": per_step, "unet_skip_per_step": per_skip,
                                         "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))
    tmp.cleanup()


if __name__ == "__main__":
    main()
