"""Wall time of `t2v generate "a red circle moving right"` with the embedded default model.

Each run is a fresh subprocess (Python start, imports, model load, sampling, H.264 encoding), so
the number is what a user waits for. Prints every run and the median.

    PYTHONPATH=src python benchmarks/generate_default.py [--runs 5] [--threads N] [--flags "--temporal-guidance none"]
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
    args = ap.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}.mp4"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "t2v", "generate", args.prompt, "--out", str(out), *args.flags.split()], check=True, env=env,
                           stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
            print(f"run {i}: {times[-1]:.2f} s ({out.stat().st_size} bytes)", flush=True)
    print(f"median of {args.runs}: {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
