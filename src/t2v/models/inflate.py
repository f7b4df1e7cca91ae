"""Inflate a text-to-image U-Net (a diffusers `UNet2DConditionModel`, as in every Stable Diffusion
folder) into a `VideoUNet` with a paper's recipe, and load / write whole model folders.

The inflated model holds the 2D weights unchanged and the recipe's temporal layers at identity, so
before training it returns exactly what the 2D model returns frame by frame.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Union

from diffusers import UNet2DConditionModel

from t2v.errors import T2VError
from t2v.models.recipes import Recipe, get_recipe
from t2v.models.video_unet import EXPOSED, VideoUNet

WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.bin.index.json",
)


def inflate(unet2d: UNet2DConditionModel, recipe: Union[str, Recipe]) -> VideoUNet:
    """A `VideoUNet` with `unet2d`'s weights and `recipe`'s temporal layers (identity at init).

    The result is on `unet2d`'s device and dtype; call `set_trainable()` before training.
    """
    rec = get_recipe(recipe)
    if not isinstance(unet2d, UNet2DConditionModel):
        raise T2VError(f"inflate expects a diffusers UNet2DConditionModel, got {type(unet2d).__name__}")
    cfg = {k: v for k, v in unet2d.config.items() if not k.startswith("_")}
    video = VideoUNet(
        recipe=rec.name,
        **{k: cfg.pop(k) for k in EXPOSED},
        unet2d=cfg,
        recipe_spec=rec.to_dict(),
    )
    video.load_unet2d_weights(unet2d)
    video.to(device=unet2d.device)
    return video if video.dtype == unet2d.dtype else video.to(dtype=unet2d.dtype)


def _unet_dir(folder: Path, class_name: str) -> Path:
    """`folder/unet` or `folder` itself, whichever holds a diffusers model of `class_name`."""
    expected = (
        f"expected a diffusers {class_name} folder (config.json with _class_name {class_name} and "
        f"{WEIGHT_FILES[0]}), or a model folder with it in unet/"
    )
    folder = Path(folder)
    if not folder.is_dir():
        raise T2VError(f"{folder} is not a folder; {expected}")
    for cand in (folder / "unet", folder):
        cfg = cand / "config.json"
        if not cfg.is_file():
            continue
        try:
            name = json.loads(cfg.read_text()).get("_class_name")
        except (json.JSONDecodeError, AttributeError):
            raise T2VError(f"{cfg} is not valid JSON; {expected}") from None
        if name != class_name:
            what = f"a {name}" if name else "no _class_name"
            raise T2VError(f"{cfg} has {what}, not {class_name}; {expected}")
        if not any((cand / w).is_file() for w in WEIGHT_FILES):
            raise T2VError(f"{cand} has no weights; {expected}")
        return cand
    raise T2VError(f"{folder} has no config.json (nor unet/config.json); {expected}")


def load_unet2d(folder: Union[str, Path]) -> UNet2DConditionModel:
    """The `UNet2DConditionModel` of a Stable Diffusion folder (`unet/` subfolder) or of a U-Net folder."""
    return UNet2DConditionModel.from_pretrained(_unet_dir(Path(folder), "UNet2DConditionModel"))


def load_video_unet(folder: Union[str, Path]) -> VideoUNet:
    """The `VideoUNet` of a t2v model folder (`unet/` subfolder) or of a video U-Net folder."""
    return VideoUNet.from_pretrained(_unet_dir(Path(folder), "VideoUNet"))


def inflate_folder(source: Union[str, Path], recipe: Union[str, Recipe], out: Union[str, Path],
                   overwrite: bool = False) -> Path:
    """Inflate the U-Net of a Stable Diffusion folder and write a full model folder to `out`.

    `out/unet` holds the `VideoUNet`; every other part of `source` (text_encoder, tokenizer,
    scheduler, vae, ...) is copied, and model_index.json names the video U-Net. Returns `out`.
    """
    rec = get_recipe(recipe)
    source, out = Path(source), Path(out)
    unet2d = load_unet2d(source)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise T2VError(f"{out} exists and is not empty; choose a new folder or pass --overwrite")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    video = inflate(unet2d, rec)
    video.save_pretrained(out / "unet")

    is_pipeline_folder = (source / "unet").is_dir()
    if is_pipeline_folder:
        for part in sorted(source.iterdir()):
            if part.name in ("unet", "model_index.json"):
                continue
            if part.is_dir():
                shutil.copytree(part, out / part.name)
            else:
                shutil.copy2(part, out / part.name)
    index_path = source / "model_index.json"
    index = json.loads(index_path.read_text()) if is_pipeline_folder and index_path.is_file() else {}
    index["unet"] = ["t2v.models", "VideoUNet"]
    index["_t2v_recipe"] = rec.name
    index["_t2v_inflated_from"] = str(source)
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return out
