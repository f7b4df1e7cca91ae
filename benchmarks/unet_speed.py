"""Speed and memory of t2v's video U-Nets against diffusers' video U-Nets of the same size.

Every t2v recipe (vdm, make-a-video, tune-a-video, video-ldm) is inflated from one Stable-Diffusion-
shaped `UNet2DConditionModel` with random weights (the cost does not depend on the weights). The peers:
- ModelScope's `UNet3DConditionModel` (diffusers),
- AnimateDiff's `UNetMotionModel`, built from a `UNet2DConditionModel` + `MotionAdapter` (diffusers),
each built at the parameter count of the t2v model it is compared with (within 10%): the peer's block
widths are searched so that its total parameter count matches (SD layout kept: 4 blocks, the last two
of equal width, 2 layers per block).

All models get the same input: batch 1, 16 frames, 4 x 32 x 32 latents, 77 text tokens of width 768.
Runs are interleaved round-robin in one process (the starting model rotates every round), so a busy
machine slows every model alike and the ratios stay fair; the figures are medians after warm-up.
Peak memory: CUDA `max_memory_allocated`; CPU: a tensor-allocation counter (the running sum of the
allocations and frees that torch's CPU allocator reports to the profiler, its maximum), measured in a
separate untimed run of each model. Both count memory allocated during the call (weights excluded).

    python benchmarks/unet_speed.py                       # CPU default: widths (64, 128, 256, 256)
    python benchmarks/unet_speed.py --device cuda --full  # SD-1.5 widths (320, 640, 1280, 1280)
    python benchmarks/unet_speed.py --markdown            # the table as markdown (BENCHMARKS.md)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import itertools
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

RECIPES = ("vdm", "make-a-video", "tune-a-video", "video-ldm")
PEERS = ("modelscope", "animatediff")
PEER_TITLES = {"modelscope": "ModelScope UNet3DConditionModel", "animatediff": "AnimateDiff UNetMotionModel"}
SMALL_WIDTHS = (64, 128, 256, 256)
FULL_WIDTHS = (320, 640, 1280, 1280)  # Stable Diffusion 1.5
TOLERANCE = 0.10  # the peers' parameter count is within 10% of the t2v model's


@dataclass(frozen=True)
class Setup:
    """The benchmark input, sample (B, C, F, H, W) and text (B, L, D), and the spatial head layout."""

    batch: int = 1
    channels: int = 4
    frames: int = 16
    size: int = 32
    tokens: int = 77
    text_dim: int = 768
    sd15_heads: bool = False  # see sd_config

    def make(self, device: torch.device, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        sample = torch.randn(self.batch, self.channels, self.frames, self.size, self.size, generator=g)
        text = torch.randn(self.batch, self.tokens, self.text_dim, generator=g)
        timestep = torch.full((self.batch,), 500, dtype=torch.long)
        return {"sample": sample.to(device, dtype), "text": text.to(device, dtype), "timestep": timestep.to(device)}


# ------------------------------------------------------------------------------------------------
# Models


def sd_config(widths: tuple[int, ...], setup: Setup) -> dict:
    """`UNet2DConditionModel` arguments in Stable Diffusion's layout at the given block widths.

    setup.sd15_heads: 8 heads per spatial transformer, as SD 1.5 (head width 40/80/160 at SD's widths).
    Otherwise heads 64 wide (32 where the width is not a multiple of 64), as SD 2.x and ModelScope:
    at the narrow CPU widths, 8 heads would be 8 wide, a shape no released model has.
    """
    return dict(
        sample_size=setup.size,
        in_channels=setup.channels,
        out_channels=setup.channels,
        block_out_channels=tuple(widths),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=setup.text_dim,
        # diffusers' historic name: this is the number of heads per block.
        attention_head_dim=8 if setup.sd15_heads else heads(widths),
        norm_num_groups=_groups(widths),
    )


def heads(widths: tuple[int, ...]) -> tuple[int, ...]:
    """Heads per block for 64-wide heads (32-wide where the width is not a multiple of 64)."""
    return tuple(w // math.gcd(64, w) for w in widths)


def _groups(widths: tuple[int, ...]) -> int:
    """GroupNorm groups: 32 as in SD when every width allows it, else the largest power of 2 that does."""
    return math.gcd(32, *widths)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_t2v(recipe: str, widths: tuple[int, ...], setup: Setup, seed: int = 0) -> nn.Module:
    """The recipe's `VideoUNet`, inflated from an SD-shaped 2D U-Net with random weights."""
    from diffusers import UNet2DConditionModel

    from t2v.models import inflate

    torch.manual_seed(seed)
    return inflate(UNet2DConditionModel(**sd_config(widths, setup)), recipe)


def build_modelscope(widths: tuple[int, ...], setup: Setup) -> nn.Module:
    """diffusers' `UNet3DConditionModel` (ModelScope text-to-video) at the given widths.

    ModelScope's published config uses 64-wide attention heads (`attention_head_dim=64`, which
    UNet3DConditionModel reads as the head width); widths that 64 does not divide get 32-wide heads.
    """
    from diffusers import UNet3DConditionModel

    return UNet3DConditionModel(
        sample_size=setup.size,
        in_channels=setup.channels,
        out_channels=setup.channels,
        block_out_channels=tuple(widths),
        layers_per_block=2,
        cross_attention_dim=setup.text_dim,
        attention_head_dim=math.gcd(64, *widths),
        norm_num_groups=_groups(widths),
    )


def _motion_adapter(widths: tuple[int, ...], setup: Setup):
    from diffusers import MotionAdapter

    return MotionAdapter(
        block_out_channels=tuple(widths),
        motion_layers_per_block=2,
        motion_num_attention_heads=8 if setup.sd15_heads else heads(widths),  # AnimateDiff: 8
        motion_norm_num_groups=_groups(widths),
        motion_max_seq_length=max(32, setup.frames),  # AnimateDiff v1-v3 use 32 positions
    )


def build_animatediff(widths: tuple[int, ...], setup: Setup) -> nn.Module:
    """diffusers' `UNetMotionModel` (AnimateDiff): an SD-shaped 2D U-Net + a `MotionAdapter`."""
    from diffusers import UNet2DConditionModel, UNetMotionModel

    return UNetMotionModel.from_unet2d(UNet2DConditionModel(**sd_config(widths, setup)), _motion_adapter(widths, setup))


def _count_peer(peer: str, widths: tuple[int, ...], setup: Setup) -> int:
    """Parameter count of a peer built on the meta device (no memory, a fraction of a second)."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        if peer == "modelscope":
            return n_params(build_modelscope(widths, setup))
        # UNetMotionModel.from_unet2d holds exactly the 2D U-Net's and the adapter's parameters.
        return n_params(UNet2DConditionModel(**sd_config(widths, setup))) + n_params(_motion_adapter(widths, setup))


def match_widths(peer: str, target: int, base: tuple[int, ...], setup: Setup,
                 cache: dict | None = None) -> tuple[tuple[int, ...], int]:
    """Block widths for `peer` whose parameter count is closest to `target` -> (widths, count).

    Widths are multiples of `q` (32, or 64 at SD-1.5 scale), non-decreasing: the first two blocks
    range over [0.5, 1] x base, the third over [0.5, 1.25] x base and the fourth equals the third
    (as in SD) or is one step wider (a finer step in the count). The count grows with the last
    widths, so for each (w0, w1) a bisection finds the closest; among counts within 2% of `target`
    the widths most proportional to `base` win, else the closest count.
    """
    cache = {} if cache is None else cache
    q = 64 if min(base) >= 256 else 32

    def count(w: tuple[int, ...]) -> int:
        key = (peer, w, setup)
        if key not in cache:
            cache[key] = _count_peer(peer, w, setup)
        return cache[key]

    def grid(b: int, lo: float, hi: float) -> list[int]:
        return list(range(max(q, math.ceil(b * lo / q) * q), int(b * hi) // q * q + 1, q))

    candidates: list[tuple[int, ...]] = []
    for w0, w1, step in itertools.product(grid(base[0], 0.5, 1.0), grid(base[1], 0.5, 1.0), (0, q)):
        lasts = [w for w in grid(base[2], 0.5, 1.25) if w >= w1 >= w0]
        if not lasts:
            continue
        shape = lambda i: (w0, w1, lasts[i], lasts[i] + step)  # noqa: E731
        lo, hi = 0, len(lasts) - 1
        while hi - lo > 1:  # bisection: the count grows with the last widths
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if count(shape(mid)) <= target else (lo, mid)
        candidates += [shape(i) for i in {lo, hi}]

    def spread(w: tuple[int, ...]) -> float:
        r = [wi / bi for wi, bi in zip(w, base)]
        return max(r) / min(r)

    def error(w: tuple[int, ...]) -> float:
        return abs(count(w) / target - 1)

    close = [w for w in candidates if error(w) <= 0.02]
    best = min(close, key=lambda w: (spread(w), error(w))) if close else min(candidates, key=error)
    return best, count(best)


# ------------------------------------------------------------------------------------------------
# Timing and memory


@dataclass
class Entry:
    """One model in the benchmark: how to call it and what was measured."""

    name: str
    kind: str  # "t2v" or a peer key
    model: nn.Module
    call: Callable[[], torch.Tensor]
    params: int
    widths: tuple[int, ...]
    build: Callable[[], nn.Module]  # a fresh model of the same architecture (FLOP counting on the meta device)
    matches: tuple[str, ...] = ()  # for peers: the t2v models this one is matched to
    flops: dict[str, float] = dataclasses.field(default_factory=dict)
    breakdown: dict[str, float] = dataclasses.field(default_factory=dict)
    # mode -> clock ("wall" or "cpu") -> seconds per timed run
    times: dict[str, dict[str, list[float]]] = dataclasses.field(
        default_factory=lambda: {m: {"wall": [], "cpu": []} for m in ("forward", "backward")})
    memory: dict[str, float] = dataclasses.field(default_factory=dict)


def chunk_peer_feed_forwards(model: nn.Module) -> int:
    """Give a diffusers peer t2v's CPU feed-forward chunking (`t2v.models.video_blocks.feed_forward_chunk`)
    in its spatial transformers (`Transformer2DModel`; temporal ones keep theirs) -> how many got it.

    diffusers' own `enable_forward_chunking` sets one chunk for every transformer, temporal ones
    included (whose batch is pixels, not frames); this applies the same per-shape rule as t2v, to
    show how much of t2v's lead is that chunking (--peer-ff-chunking).
    """
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.transformers.transformer_2d import Transformer2DModel

    from t2v.models.video_blocks import feed_forward_chunk

    n = 0
    for m in model.modules():
        if type(m) is not Transformer2DModel:
            continue
        blocks = [b for b in m.modules() if isinstance(b, BasicTransformerBlock)]

        def pre(module, args, kwargs, blocks=blocks):
            x = args[0] if args else kwargs["hidden_states"]
            if x.ndim == 4:  # (B*F, C, H, W)
                chunk = feed_forward_chunk(x.shape[0], x.shape[1], x.shape[2] * x.shape[3], x.device)
                for b in blocks:
                    b.set_chunk_feed_forward(chunk, dim=0)

        m.register_forward_pre_hook(pre, with_kwargs=True)
        n += 1
    return n


def make_call(kind: str, model: nn.Module, x: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
    """A no-argument call of `model` on the benchmark input -> (B, C, F, H, W).

    The diffusers peers take the same sample layout; UNetMotionModel wants the text once per frame
    (its pipeline repeats it), so the repeat happens inside the call, as t2v's does inside forward.
    """
    sample, t, text = x["sample"], x["timestep"], x["text"]
    frames = sample.shape[2]
    if kind == "t2v":
        return lambda: model(sample, t, text)
    if kind == "modelscope":
        return lambda: model(sample, t, text, return_dict=False)[0]
    if kind == "animatediff":
        return lambda: model(sample, t, text.repeat_interleave(frames, dim=0), return_dict=False)[0]
    raise ValueError(kind)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_once(entry: Entry, mode: str) -> None:
    """One forward (no_grad, eval) or forward+backward (train mode, every parameter trainable)."""
    model = entry.model
    if mode == "forward":
        model.eval()
        with torch.no_grad():
            entry.call()
        return
    model.train()
    model.zero_grad(set_to_none=True)
    out = entry.call()
    out.float().square().mean().backward()


def timed(entry: Entry, mode: str, device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call.

    CPU time counts only cycles this process ran, so on a shared machine it hardly moves with
    other load (with one intra-op thread; more threads add their spinning to it).
    """
    _sync(device)
    w0, c0 = time.perf_counter(), time.process_time()
    run_once(entry, mode)
    _sync(device)
    return time.perf_counter() - w0, time.process_time() - c0


def peak_memory(entry: Entry, mode: str, device: torch.device) -> float:
    """Bytes allocated at peak during one call, above what was allocated before it."""
    gc.collect()
    if mode == "backward":
        entry.model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run_once(entry, mode)
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run_once(entry, mode)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return float(peak)


def count_flops(entry: Entry, mode: str, setup: Setup) -> float:
    """Floating-point operations of one call: matrix products, convolutions and attention
    (torch.utils.flop_counter; element-wise ops are not counted), on a copy built on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = entry.build()
    x = {k: v.to("meta") for k, v in setup.make(torch.device("cpu"), torch.float32).items()}
    meta = Entry(entry.name, entry.kind, model, make_call(entry.kind, model, x), entry.params, entry.widths, entry.build)
    counter = FlopCounterMode(display=False)
    with counter:
        run_once(meta, mode)
    return float(counter.get_total_flops())


# The layers each video U-Net adds to its 2D parent (class names), for the time breakdown.
TEMPORAL_CLASSES = {
    "t2v": ("TemporalAttention", "TemporalConv", "TemporalResBlock", "AlphaMerge"),
    "modelscope": ("TemporalConvLayer", "TransformerTemporalModel"),
    "animatediff": ("AnimateDiffTransformer3D",),
}


def breakdown(entry: Entry) -> dict[str, float]:
    """CPU seconds of one forward: total, the added temporal layers, Tune-A-Video's ST-Attn
    (sparse-causal attention in place of spatial self-attention), and the rest (the 2D U-Net).

    Module hooks read the process CPU clock around every temporal layer; with one intra-op thread
    that is the layer's own compute, whatever else runs on the machine.
    """
    from t2v.layers import SparseCausalAttnProcessor

    spent = {"temporal": 0.0, "st_attn": 0.0}
    started: dict[int, float] = {}
    handles = []

    def watch(module: nn.Module, key: str) -> None:
        def pre(m, *_):
            started[id(m)] = time.process_time()

        def post(m, *_):
            spent[key] += time.process_time() - started.pop(id(m))

        handles.extend([module.register_forward_pre_hook(pre), module.register_forward_hook(post)])

    for m in entry.model.modules():
        if type(m).__name__ in TEMPORAL_CLASSES[entry.kind]:
            watch(m, "temporal")
        elif isinstance(getattr(m, "processor", None), SparseCausalAttnProcessor):
            watch(m, "st_attn")
    try:
        c0 = time.process_time()
        run_once(entry, "forward")
        total = time.process_time() - c0
    finally:
        for h in handles:
            h.remove()
    return {"total": total, **spent, "rest": total - spent["temporal"] - spent["st_attn"]}


def breakdown_rows(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    head = ["model", "fwd GFLOP", "cpu ms", "added temporal layers ms", "ST-Attn ms", "2D U-Net (rest) ms", "GFLOP/s"]
    out = []
    for e in entries:
        b = e.breakdown
        share = f" ({100 * b['temporal'] / b['total']:.0f}%)"
        gf = e.flops.get("forward")
        out.append([e.name, f"{gf / 1e9:.3g}" if gf else "", f"{b['total'] * 1e3:.0f}",
                    f"{b['temporal'] * 1e3:.0f}{share}", f"{b['st_attn'] * 1e3:.0f}" if b["st_attn"] else "",
                    f"{b['rest'] * 1e3:.0f}", f"{gf / 1e9 / b['total']:.0f}" if gf else ""])
    return head, out


def interleaved(entries: list[Entry], mode: str, runs: int, warmup: int, device: torch.device,
                memory: bool, log: Callable[[str], None]) -> None:
    """`warmup + runs` rounds; each round calls every model once, starting from a rotating model.

    With `memory`, the first warm-up round (or an extra round without warm-up) measures peak memory.
    """
    warmup = max(warmup, int(memory))
    for r in range(warmup + runs):
        start = r % len(entries)
        for e in entries[start:] + entries[:start]:
            if r == 0 and memory:
                e.memory[mode] = peak_memory(e, mode, device)
                continue
            wall, cpu = timed(e, mode, device)
            if r >= warmup:
                e.times[mode]["wall"].append(wall)
                e.times[mode]["cpu"].append(cpu)
        label = "memory + warm-up" if r == 0 and memory else ("warm-up" if r < warmup else f"run {r - warmup + 1}/{runs}")
        log(f"  {mode} {label}: " + ", ".join(
            f"{e.name} {_ms(e.times[mode]['wall'][-1]) + ' (cpu ' + _ms(e.times[mode]['cpu'][-1]) + ')' if r >= warmup else '-'}"
            for e in entries))
    if mode == "backward":
        for e in entries:
            e.model.zero_grad(set_to_none=True)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms"


# ------------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    info = {"torch": torch.__version__, "python": platform.python_version(), "threads": str(torch.get_num_threads())}
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = f"{names[0]} x {len(names)} logical cores" if names else cpu
    except OSError:
        pass
    info["cpu"] = cpu
    return info


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def speedups(entry: Entry, peer: Entry, mode: str, clock: str) -> list[float]:
    """Peer time / t2v time in each interleaved round (both ran in the same round, under the same load)."""
    return [p / t for p, t in zip(peer.times[mode][clock], entry.times[mode][clock])]


def rows(entries: list[Entry], modes: list[str], clock: str) -> tuple[list[str], list[list[str]]]:
    """The table: one row per model; for t2v rows, the speed-up over each peer (> 1: t2v faster).

    Times are medians of wall-clock and of process CPU time; a speed-up is the median over rounds
    of (peer time / t2v time) in the same round, with its range, on `clock`.
    """
    peers = {(e.kind, m): e for e in entries if e.kind != "t2v" for m in e.matches}
    head = ["model", "params (M)", "widths"]
    for m in modes:
        t = "fwd" if m == "forward" else "fwd+bwd"
        head += [f"{t} ms", f"{t} cpu ms", f"{t} GFLOP"] + [f"{t} x vs {p}" for p in PEERS] + [f"{t} peak MiB"]
    out = []
    for e in entries:
        row = [e.name, f"{e.params / 1e6:.2f}", "/".join(map(str, e.widths))]
        for m in modes:
            row += [f"{median(e.times[m]['wall']) * 1e3:.0f}", f"{median(e.times[m]['cpu']) * 1e3:.0f}",
                    f"{e.flops[m] / 1e9:.3g}" if m in e.flops else ""]
            for p in PEERS:
                peer = peers.get((p, e.name)) if e.kind == "t2v" else None
                r = speedups(e, peer, m, clock) if peer is not None else []
                row.append(f"{median(r):.2f} ({min(r):.2f}-{max(r):.2f})" if r else "")
            row.append(f"{e.memory[m] / 2**20:.0f}" if m in e.memory else "")
        out.append(row)
    return head, out


def print_table(head: list[str], body: list[list[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for r in body:
            print("| " + " | ".join(r) + " |")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*head)
    for r in body:
        table.add_row(*r)
    Console(width=max(120, 12 * len(head))).print(table)


# ------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda when available)")
    p.add_argument("--full", action="store_true", help="SD-1.5 widths (320, 640, 1280, 1280); for a GPU")
    p.add_argument("--widths", type=lambda s: tuple(int(w) for w in s.split(",")), default=None,
                   help="block widths of the t2v models, e.g. 64,128,256,256")
    p.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated t2v recipes")
    p.add_argument("--match", choices=["params", "backbone"], default="params",
                   help="params: peers' widths searched to the t2v model's parameter count (within 10%%); "
                        "backbone: peers at the same widths (the same 2D U-Net, made temporal each its own way)")
    p.add_argument("--peers", default=",".join(PEERS), help="comma-separated: modelscope, animatediff")
    p.add_argument("--modes", default="forward,backward", help="forward (no_grad) and/or backward (forward+backward)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=32, help="latent height = width")
    p.add_argument("--runs", type=int, default=None, help="timed forward rounds (default 5 on CPU, 20 on CUDA)")
    p.add_argument("--backward-runs", type=int, default=None, help="timed forward+backward rounds (default 2 / 10)")
    p.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default 1 on CPU, 3 on CUDA)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--channels-last", action="store_true", help="put every model in channels_last memory format")
    p.add_argument("--peer-ff-chunking", action="store_true",
                   help="give the diffusers peers t2v's CPU feed-forward chunking in their spatial transformers")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    p.add_argument("--no-flops", action="store_true", help="skip counting FLOPs (on the meta device, a few seconds)")
    p.add_argument("--no-breakdown", action="store_true",
                   help="skip the CPU forward breakdown (added temporal layers vs the 2D U-Net; CPU only)")
    p.add_argument("--clock", choices=["wall", "cpu", "auto"], default="auto",
                   help="which median the speed-ups use: wall clock, or process CPU time (auto: cpu on a CPU with "
                        "one thread, where it is immune to other load; wall otherwise)")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--json", default=None, help="also write the raw times and memory here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    runs = args.runs or (20 if cuda else 5)
    backward_runs = args.backward_runs or (10 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    dtype = getattr(torch, args.dtype)
    widths = args.widths or (FULL_WIDTHS if args.full else SMALL_WIDTHS)
    setup = Setup(frames=args.frames, size=args.size, sd15_heads=args.full)
    recipes = [r for r in args.recipes.split(",") if r]
    peer_kinds = [p for p in args.peers.split(",") if p]
    modes = [m for m in args.modes.split(",") if m]
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    clock = args.clock if args.clock != "auto" else ("cpu" if not cuda and torch.get_num_threads() == 1 else "wall")
    log(f"machine: {machine()}")
    log(f"input: sample (1, {setup.channels}, {setup.frames}, {setup.size}, {setup.size}), text (1, {setup.tokens}, {setup.text_dim}); "
        f"device {device}, {args.dtype}; t2v widths {widths}")
    x = setup.make(device, dtype)
    entries: list[Entry] = []
    for r in recipes:
        build = functools.partial(build_t2v, r, widths, setup)
        model = build().to(device, dtype)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        entries.append(Entry(r, "t2v", model, make_call("t2v", model, x), n_params(model), widths, build))

    # --match params: one peer per (kind, group of t2v models within 2% of each other's size), each
    # within 10% of every model it is compared with. --match backbone: the peers at the t2v widths.
    cache: dict = {}
    groups: list[list[Entry]] = []
    for e in sorted(entries, key=lambda e: e.params):
        if args.match == "params" and groups and e.params <= groups[-1][0].params * 1.02 or args.match == "backbone" and groups:
            groups[-1].append(e)
        else:
            groups.append([e])
    builders = {"modelscope": build_modelscope, "animatediff": build_animatediff}
    for kind in peer_kinds:
        for group in groups:
            target = round(statistics.mean(e.params for e in group))
            w = match_widths(kind, target, widths, setup, cache)[0] if args.match == "params" else widths
            torch.manual_seed(0)
            build = functools.partial(builders[kind], w, setup)
            model = build().to(device, dtype)
            if args.channels_last:
                model = model.to(memory_format=torch.channels_last)
            if args.peer_ff_chunking:
                log(f"{kind}: t2v's feed-forward chunking in {chunk_peer_feed_forwards(model)} spatial transformers")
            name = f"{kind}@{target / 1e6:.1f}M" if args.match == "params" else f"{kind} (same widths)"
            entry = Entry(name, kind, model, make_call(kind, model, x), n_params(model), w, build,
                          tuple(g.name for g in group))
            for g in group:
                off = entry.params / g.params - 1
                log(f"{kind} vs {g.name}: {entry.params:,} vs {g.params:,} parameters ({off:+.1%}), widths {w}")
                if args.match == "params" and abs(off) > TOLERANCE:
                    raise SystemExit(f"{kind} is {off:+.1%} off {g.name}'s size; widen the search (match_widths)")
            entries.append(entry)

    if not args.no_flops:
        for e in entries:
            for m in modes:
                e.flops[m] = count_flops(e, m, setup)
            log(f"{e.name}: " + ", ".join(f"{m} {e.flops[m] / 1e9:.1f} GFLOP" for m in modes))

    for m in modes:
        n = runs if m == "forward" else backward_runs
        log(f"{m}: {warmup} warm-up + {n} timed rounds over {len(entries)} models, interleaved")
        interleaved(entries, m, n, warmup, device, not args.no_memory, log)
        if m == "forward" and not args.no_breakdown and not cuda:
            log("forward time breakdown (one more call per model, CPU clock, module hooks)")
            for e in entries:
                e.breakdown = breakdown(e)

    what = "CUDA max_memory_allocated" if cuda else "tensor-allocation counter (CPU allocator via torch.profiler)"
    print(f"\nmachine: {', '.join(f'{k} {v}' for k, v in machine().items())}")
    print(f"input: batch 1, {setup.frames} frames, {setup.channels} x {setup.size} x {setup.size} latents, {setup.tokens} text tokens; "
          f"{device}, {args.dtype}; median of {runs} forward / {backward_runs} forward+backward interleaved rounds after {warmup} warm-up")
    print(f"peak memory: {what}, above the weights; GFLOP: matrix products, convolutions and attention "
          f"(torch.utils.flop_counter; element-wise ops not counted)")
    print(f"speed-up 'x vs P' = P's {clock} time / this model's in the same round: median (min-max) over rounds "
          f"(> 1: t2v is faster)" + ("; the peers run t2v's CPU feed-forward chunking (--peer-ff-chunking)" if args.peer_ff_chunking else "") + "\n")
    head, body = rows(entries, modes, clock)
    print_table(head, body, args.markdown)
    if any(e.breakdown for e in entries):
        print("\nwhere one forward's CPU time goes (module hooks on the layers each model adds to its 2D parent):\n")
        print_table(*breakdown_rows([e for e in entries if e.breakdown]), args.markdown)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "args": vars(args) | {"widths": list(widths)},
                       "models": [{"name": e.name, "kind": e.kind, "params": e.params, "widths": list(e.widths),
                                   "matches": list(e.matches), "times": e.times, "memory": e.memory,
                                   "flops": e.flops, "breakdown": e.breakdown} for e in entries]},
                      f, indent=1)


if __name__ == "__main__":
    main()
