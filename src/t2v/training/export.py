"""Write a trained model as a diffusers-layout folder that t2v loads with no special case.

```
MODEL/
  unet/           UNet2DConditionModel (image stage) or VideoUNet (video stage)
  text_encoder/   CLIPTextModel
  tokenizer/      CLIPTokenizer files
  scheduler/      DDIMScheduler config: the training noise schedule and prediction_type
  vae/            AutoencoderKL, latent models only
  model_index.json
```
`load_unet2d` / `load_video_unet` / `TextToVideoPipeline.from_pretrained` read it as is. The
folder is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

import diffusers
from diffusers import DDIMScheduler

from t2v.models import VideoUNet


def write_model_folder(out: Path, *, unet: Any, text_encoder: Any, tokenizer: Any, schedule: dict[str, Any],
                       vae: Optional[Any] = None, base_index: Optional[dict[str, Any]] = None,
                       extra: Optional[dict[str, Any]] = None, vae_folder: Optional[Path] = None) -> Path:
    """Save every part to `out` (replacing an older folder there); returns `out`.

    `schedule` is the training noise-schedule config (saved as a DDIM sampler's config, so `ddim`
    is the folder's default sampler); `base_index` is the pretrained folder's model_index.json,
    kept except for the entries written here; `extra` adds `_t2v_*` keys (e.g. the training stage).
    `vae_folder`: a TemporalAutoencoder folder that `vae` is the frozen image VAE of; it is copied as
    vae/ instead (training never changes the VAE, so the temporal decoder goes on with the model).
    """
    out = Path(out)
    tmp = out.with_name(f".tmp-{out.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    unet.save_pretrained(tmp / "unet", safe_serialization=True)
    text_encoder.save_pretrained(tmp / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(tmp / "tokenizer")
    DDIMScheduler.from_config(schedule).save_pretrained(tmp / "scheduler")
    index = {k: v for k, v in (base_index or {}).items() if k not in ("vae", "unet")}
    index.update({
        "_class_name": index.get("_class_name", "StableDiffusionPipeline" if vae is not None else "TextToVideoPipeline"),
        "_diffusers_version": diffusers.__version__,
        "unet": ["t2v.models", "VideoUNet"] if isinstance(unet, VideoUNet) else ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"],
    })
    if isinstance(unet, VideoUNet):
        index["_t2v_recipe"] = unet.recipe.name
    if vae_folder is not None:
        shutil.copytree(vae_folder, tmp / "vae")
        index["vae"] = ["t2v.models", "TemporalAutoencoder"]
    elif vae is not None:
        vae.save_pretrained(tmp / "vae", safe_serialization=True)
        index["vae"] = ["diffusers", "AutoencoderKL"]
    index.update(extra or {})
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    old = out.with_name(f".old-{out.name}")
    if out.exists():
        if old.exists():
            shutil.rmtree(old)
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out
