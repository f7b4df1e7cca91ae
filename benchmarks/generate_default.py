"""Wall time of `t2v generate "a red circle moving right"` with the embedded default model.

Each run is a fresh subprocess (Python start, imports, model load, sampling, H.264 encoding, exit),
so the number is what a user waits for. Prints every run and the median.

    PYTHONPATH=src python benchmarks/generate_default.py [--runs 5] [--threads N] [--flags "--temporal-guidance none"]

`--src DIR` (repeatable) runs t2v from those source trees instead, alternating run by run so that
a drift in the machine's speed hits all of them alike; e.g. against an older commit:

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
    ap.add_argument("--flags", default="", help="more `t2v generate` flags, e.g. '--temporal-guidance none' (the model's defaults otherwise)")
    ap.add_argument("--src", action="append", default=None,
                    help="a source tree to run t2v from (PYTHONPATH=DIR); repeat to compare trees, alternating runs")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    trees = args.src or [None]
    times: dict[str | None, list[float]] = {tree: [] for tree in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for tree in trees:
                run_env = env if tree is None else dict(env, PYTHONPATH=str(Path(tree).resolve()))
                out = Path(tmp) / f"run{i}.mp4"
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "t2v", "generate", args.prompt, "--out", str(out), *args.flags.split()],
                               check=True, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[tree].append(time.perf_counter() - t0)
                label = "" if tree is None else f" [{tree}]"
                print(f"run {i}: {times[tree][-1]:.2f} s ({out.stat().st_size} bytes){label}", flush=True)
    for tree, ts in times.items():
        label = "" if tree is None else f" [{tree}]"
        print(f"median of {args.runs}: {statistics.median(ts):.2f} s (min {min(ts):.2f}, max {max(ts):.2f}){label}")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
