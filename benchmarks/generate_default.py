"""Wall time of `t2v generate "a red circle moving right"` with the embedded default model.

Each run is a fresh subprocess (Python start, imports, model load, sampling, H.264 encoding, exit),
so the number is what a user waits for. Prints every run and the median, and as a reference for
the machine's speed at the time (it drifts), the median of `python -c "import torch"` run once per round.

    PYTHONPATH=src python benchmarks/generate_default.py [--runs 5] [--threads N] [--flags "--temporal-guidance none"]

`--flags` and `--src DIR` (a source tree to run t2v from) are repeatable: every combination is run,
alternating run by run so that a drift in the machine's speed hits all of them alike. E.g. the
model's default sampling against no skip guidance, or this tree against an older commit:

    PYTHONPATH=src python benchmarks/generate_default.py --flags "" --flags "--temporal-guidance none"
    git worktree add /tmp/old 5dfca41
    python benchmarks/generate_default.py --src src --src /tmp/old/src
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--prompt", default="a red circle moving right")
    ap.add_argument("--threads", type=int, default=None, help="OMP/torch threads (default: torch's own choice)")
    ap.add_argument("--flags", action="append", default=None,
                    help="more `t2v generate` flags, e.g. '--temporal-guidance none' (the model's defaults otherwise); repeat to compare")
    ap.add_argument("--src", action="append", default=None,
                    help="a source tree to run t2v from (PYTHONPATH=DIR); repeat to compare trees, alternating runs")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    variants = [(tree, flags) for tree in (args.src or [None]) for flags in (args.flags or [""])]
    times: dict[tuple[str | None, str], list[float]] = {v: [] for v in variants}
    reference: list[float] = []  # `python -c "import torch"`, once per round: how fast the machine is now

    def label(tree: str | None, flags: str) -> str:
        parts = ([tree] if tree is not None else []) + ([flags] if len(variants) > 1 or flags else [])
        return f" [{' '.join(p or 'defaults' for p in parts)}]" if parts else ""

    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for tree, flags in variants:
                run_env = env if tree is None else dict(env, PYTHONPATH=str(Path(tree).resolve()))
                out = Path(tmp) / f"run{i}.mp4"
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "t2v", "generate", args.prompt, "--out", str(out), *flags.split()],
                               check=True, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[tree, flags].append(time.perf_counter() - t0)
                print(f"run {i}: {times[tree, flags][-1]:.2f} s ({out.stat().st_size} bytes){label(tree, flags)}", flush=True)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import torch"], check=True, env=env)
            reference.append(time.perf_counter() - t0)
    for (tree, flags), ts in times.items():
        print(f"median of {args.runs}: {statistics.median(ts):.2f} s (min {min(ts):.2f}, max {max(ts):.2f}){label(tree, flags)}")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; machine reference, `python -c \"import torch\"`: "
          f"median {statistics.median(reference):.2f} s (min {min(reference):.2f}, max {max(reference):.2f})")


if __name__ == "__main__":
    main()
