"""Memory and time of one Tune-A-Video training step at the paper's setting, and the longest clip that fits.

Wu et al. 2023 tune on 24 frames at 512 x 512 (64 x 64 latents) with Stable Diffusion 1.5; their
implementation ran out of memory on 24 GB cards. This script builds an SD-1.5-shaped U-Net with random
weights (the cost does not depend on the weights), inflates it with t2v's `tune-a-video` recipe,
trains what the paper trains (to_q of spatial self- and cross-attention + temporal attention) with
AdamW, and measures one step (noise, forward, MSE loss, backward, optimizer step):
1. with and without gradient checkpointing: peak memory (`torch.cuda.max_memory_allocated`: weights,
   gradients, Adam state and activations) and step time (median after warm-up);
2. the largest frame count whose step fits in 24 GB and in 80 GB (doubling, then bisection; a
   budget below the card's memory is enforced with `torch.cuda.set_per_process_memory_fraction`).
   GB = 1e9 bytes of tensors, on purpose below a "24 GB" card's 24 GiB: the CUDA context and the
   allocator's caching need the rest.

    python benchmarks/tune_memory.py                 # on a CUDA GPU: the paper's setting
    python benchmarks/tune_memory.py --small         # reduced shape, any device (CPU: shows the code path)

Precision follows Tune-A-Video's training config: fp16 mixed precision (fp32 weights, fp16 autocast,
loss scaling); `--precision fp32` or `bf16` for others. On CPU, peak memory is a tensor-allocation
counter (allocations minus frees reported by torch's CPU allocator to the profiler) plus the model,
gradient and optimizer bytes held before the step, and a budget "fits" when that peak is under it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import statistics
import sys
import time
from dataclasses import dataclass

import torch

SD15_WIDTHS = (320, 640, 1280, 1280)
SMALL_WIDTHS = (64, 128, 256, 256)
GB = 1e9


@dataclass(frozen=True)
class Setting:
    """One training step's shape: frames of size x size latents, SD-shaped U-Net of `widths`."""

    frames: int = 24
    size: int = 64
    widths: tuple[int, ...] = SD15_WIDTHS
    text_tokens: int = 77
    text_dim: int = 768


def build(setting: Setting, device: torch.device, checkpointing: bool, seed: int = 0):
    """The Tune-A-Video video U-Net (fp32 weights on `device`) with the paper's trainable parameters."""
    from diffusers import UNet2DConditionModel

    from t2v.models import inflate

    torch.manual_seed(seed)
    unet2d = UNet2DConditionModel(
        sample_size=setting.size,
        block_out_channels=setting.widths,
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=setting.text_dim,
        attention_head_dim=8,  # SD 1.5: 8 heads
        norm_num_groups=32 if all(w % 32 == 0 for w in setting.widths) else 8,
    )
    model = inflate(unet2d, "tune-a-video").to(device)
    del unet2d
    model.set_trainable()
    model.train()
    if checkpointing:
        model.enable_gradient_checkpointing()
    return model


class Trainer:
    """One optimizer step of the diffusion loss (eps prediction, uniform timestep) on random latents."""

    def __init__(self, model, device: torch.device, precision: str, setting: Setting) -> None:
        self.model, self.device, self.setting = model, device, setting
        self.opt = torch.optim.AdamW(model.trainable_parameters().values(), lr=3e-5)
        self.autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}[precision]
        if self.autocast_dtype == torch.float16 and device.type != "cuda":
            self.autocast_dtype = torch.bfloat16  # CPU autocast has no fp16 matmuls worth timing
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.autocast_dtype == torch.float16)
        g = torch.Generator().manual_seed(1)
        s = setting
        self.latents = torch.randn(1, 4, s.frames, s.size, s.size, generator=g).to(device)
        self.text = torch.randn(1, s.text_tokens, s.text_dim, generator=g).to(device)

    def step(self) -> None:
        noise = torch.randn_like(self.latents)
        t = torch.randint(0, 1000, (1,), device=self.device)
        noisy = self.latents + noise  # the schedule's scaling does not change the cost
        ctx = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
               else contextlib.nullcontext())
        with ctx:
            pred = self.model(noisy, t, self.text)
            loss = torch.nn.functional.mse_loss(pred.float(), noise)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _held_bytes(trainer: Trainer) -> int:
    """Bytes of weights and optimizer state held between steps (CPU accounting)."""
    n = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    for state in trainer.opt.state.values():
        n += sum(v.numel() * v.element_size() for v in state.values() if torch.is_tensor(v))
    return n


def measure(setting: Setting, device: torch.device, checkpointing: bool, precision: str, steps: int,
            warmup: int) -> dict:
    """Peak memory (bytes) and step times (s) of one configuration; raises torch.cuda.OutOfMemoryError."""
    trainer = Trainer(build(setting, device, checkpointing), device, precision, setting)
    try:
        for _ in range(warmup):
            trainer.step()
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            trainer.step()
            _sync(device)
            peak = torch.cuda.max_memory_allocated(device)
        else:
            from torch.profiler import ProfilerActivity, profile

            held = _held_bytes(trainer)
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                trainer.step()
            live = top = 0
            for e in sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                            key=lambda e: e.start_ns()):
                live += e.nbytes()
                top = max(top, live)
            peak = held + top
        times = []
        for _ in range(steps):
            _sync(device)
            t0 = time.perf_counter()
            trainer.step()
            _sync(device)
            times.append(time.perf_counter() - t0)
        return {"frames": setting.frames, "checkpointing": checkpointing, "peak_bytes": peak,
                "step_s": statistics.median(times) if times else float("nan"), "times": times}
    finally:
        del trainer
        _free(device)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def fits(setting: Setting, device: torch.device, checkpointing: bool, precision: str, budget: float,
         log) -> bool:
    """Does one step of `setting` fit in `budget` bytes? (CUDA: the caller caps the allocator at the budget.)"""
    try:
        r = measure(setting, device, checkpointing, precision, steps=0, warmup=1)
    except torch.cuda.OutOfMemoryError:
        r = None
    if r is None:  # outside the except block, so that the traceback's tensors can be freed
        _free(device)
        log(f"    {setting.frames} frames: out of memory")
        return False
    ok = r["peak_bytes"] <= budget
    log(f"    {setting.frames} frames: peak {r['peak_bytes'] / GB:.2f} GB -> {'fits' if ok else 'over'}")
    return ok


def largest_frames(setting: Setting, device: torch.device, checkpointing: bool, precision: str, budget: float,
                   limit: int, log) -> int:
    """The largest frame count whose training step fits in `budget` bytes (0: not even one frame).

    From `setting.frames`: doubling while it fits (halving while it does not), then bisection.
    """
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, budget / total), device)
    try:
        ok = lambda f: fits(dataclasses.replace(setting, frames=f), device, checkpointing, precision, budget, log)  # noqa: E731
        lo, hi, f = 0, None, setting.frames  # lo fits (0: none yet), hi does not (None: none yet)
        while hi is None:  # 1. double
            if not ok(f):
                hi = f
            elif f >= limit:
                log(f"    stopped at the search limit of {limit} frames")
                return f
            else:
                lo, f = f, min(2 * f, limit)
        while lo == 0:  # 2. halve, if even the first count did not fit
            if hi == 1:
                return 0
            f = hi // 2
            lo, hi = (f, hi) if ok(f) else (0, f)
        while hi - lo > 1:  # 3. bisect
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
        return lo
    finally:
        if device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0, device)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cuda, cuda:N, cpu, or auto (cuda when available)")
    p.add_argument("--small", action="store_true",
                   help="reduced shape (widths 64/128/256/256, 8 frames of 16x16 latents): runs anywhere, shows the code path")
    p.add_argument("--frames", type=int, default=None, help="frames of the measured step (default 24; --small 8)")
    p.add_argument("--size", type=int, default=None, help="latent size (default 64 = 512 px; --small 16)")
    p.add_argument("--precision", choices=["fp16", "bf16", "fp32"], default="fp16",
                   help="fp16/bf16: mixed precision (fp32 weights, autocast); Tune-A-Video trained with fp16")
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--budgets", default=None, help="memory budgets in GB for the frame search (default 24,80; --small 0.3)")
    p.add_argument("--no-search", action="store_true", help="skip the largest-frame-count search")
    p.add_argument("--search-limit", type=int, default=None, help="stop doubling here (default 1024; --small 64)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the figures here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type != "cuda" and not args.small:
        print("error: the paper's setting (24 frames at 64x64 latents, an SD-1.5-shaped U-Net) needs a CUDA GPU "
              "(no GPU found); run with --small for a reduced shape that shows the code path on this device",
              file=sys.stderr)
        raise SystemExit(2)
    if args.threads:
        torch.set_num_threads(args.threads)
    setting = Setting(frames=args.frames or (8 if args.small else 24), size=args.size or (16 if args.small else 64),
                      widths=SMALL_WIDTHS if args.small else SD15_WIDTHS)
    budgets = [float(b) for b in (args.budgets or ("0.3" if args.small else "24,80")).split(",")]
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    what = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "tensor-allocation counter + held weights/state"
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    log(f"device {device} ({gpu}), torch {torch.__version__}, precision {args.precision}; {setting}")
    if device.type != "cuda" and args.precision == "fp16":
        log("(CPU: fp16 mixed precision runs as bf16 autocast)")

    results = []
    for ckpt in (True, False):
        log(f"step, gradient checkpointing {'on' if ckpt else 'off'}:")
        try:
            r = measure(setting, device, ckpt, args.precision, args.steps, args.warmup)
            log(f"  peak {r['peak_bytes'] / GB:.2f} GB, step {r['step_s']:.3f} s")
        except torch.cuda.OutOfMemoryError:
            r = {"frames": setting.frames, "checkpointing": ckpt, "peak_bytes": float("nan"), "step_s": float("nan"),
                 "oom": True}
        if r.get("oom"):
            _free(device)
            log("  out of memory")
        results.append(r)

    searches = []
    if not args.no_search:
        for budget in budgets:
            for ckpt in (True, False):
                log(f"largest frame count in {budget:g} GB, checkpointing {'on' if ckpt else 'off'}:")
                limit = args.search_limit or (64 if args.small else 1024)
                n = largest_frames(setting, device, ckpt, args.precision, budget * GB, limit, log)
                searches.append({"budget_gb": budget, "checkpointing": ckpt, "frames": n})

    print(f"\nTune-A-Video training step: {setting.frames} frames x {setting.size}x{setting.size} latents "
          f"({setting.size * 8}x{setting.size * 8} px), U-Net widths {setting.widths}, precision {args.precision}; "
          f"{gpu}, torch {torch.__version__}")
    print(f"peak memory: {what}\n")
    print("| gradient checkpointing | peak memory (GB) | step time (s) |\n|---|---|---|")
    for r in results:
        peak = "out of memory" if r.get("oom") else f"{r['peak_bytes'] / GB:.2f}"
        step = "" if r.get("oom") else f"{r['step_s']:.3f}"
        print(f"| {'on' if r['checkpointing'] else 'off'} | {peak} | {step} |")
    if searches:
        print(f"\n| budget (GB) | gradient checkpointing | largest frame count at {setting.size}x{setting.size} latents |"
              "\n|---|---|---|")
        for s in searches:
            print(f"| {s['budget_gb']:g} | {'on' if s['checkpointing'] else 'off'} | {s['frames']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": gpu, "torch": torch.__version__, "setting": setting.__dict__,
                       "precision": args.precision, "steps": results, "largest_frames": searches}, f, indent=1)


if __name__ == "__main__":
    main()
