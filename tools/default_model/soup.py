"""Issue 7: average the U-Net weights of model folders fine-tuned from one start (a uniform "model soup",
Wortsman et al. 2022), written as a new model folder.

    PYTHONPATH=src python tools/default_model/soup.py OUT MODEL_A MODEL_B [MODEL_C ...]

The folders must share the U-Net's configuration and every tensor name and shape (runs of
`mean_targets.py` from the same model do: only their temporal layers and alphas differ). OUT gets
MODEL_A's other parts (text encoder, tokenizer, VAE, scheduler, model_index.json) and the averaged
U-Net, in MODEL_A's dtype. Prints how many tensors were identical in all (the frozen 2D ones).
Written by hand: a weighted mean of safetensors files is a few lines, no library call does it.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("models", type=Path, nargs="+")
    a = ap.parse_args()
    if len(a.models) < 2:
        raise SystemExit("give at least two model folders to average")
    configs = [{k: v for k, v in json.loads((m / "unet" / "config.json").read_text()).items() if not k.startswith("_")}
               for m in a.models]  # "_name_or_path" and the versions differ between runs
    if any(c != configs[0] for c in configs[1:]):
        raise SystemExit("the U-Net configs differ: only folders fine-tuned from one model can be averaged")
    sds = [load_file(m / WEIGHTS) for m in a.models]
    for m, sd in zip(a.models[1:], sds[1:]):
        if {k: v.shape for k, v in sd.items()} != {k: v.shape for k, v in sds[0].items()}:
            raise SystemExit(f"{m}'s U-Net tensors differ in names or shapes from {a.models[0]}'s")
    shutil.copytree(a.models[0], a.out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.pt"))
    avg = {k: (sum(sd[k].float() for sd in sds) / len(sds)).to(sds[0][k].dtype).contiguous() for k in sds[0]}
    save_file(avg, a.out / WEIGHTS)
    same = sum(all(sd[k].equal(sds[0][k]) for sd in sds) for k in sds[0])
    print(f"{a.out}: {len(avg)} tensors averaged over {len(sds)} folders, {same} identical in all")


if __name__ == "__main__":
    main()
