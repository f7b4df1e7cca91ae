"""Inflation of 2D U-Nets into video U-Nets, one recipe per paper; autoencoders; I3D/C3D.

Public API of the video U-Net (issue 4):
- `inflate(unet2d, recipe) -> VideoUNet`; `vdm_unet(**unet2d_kwargs) -> VideoUNet`;
- `RECIPES`, `Recipe`, `get_recipe(name)`;
- `load_unet2d(folder)`, `load_video_unet(folder)`, `inflate_folder(source, recipe, out)`.
"""

from t2v.models.inflate import inflate, inflate_folder, load_unet2d, load_video_unet
from t2v.models.recipes import RECIPES, Recipe, get_recipe
from t2v.models.temporal_vae import TemporalAutoencoder
from t2v.models.vdm import vdm_unet
from t2v.models.video_unet import VideoUNet

__all__ = [
    "RECIPES",
    "Recipe",
    "TemporalAutoencoder",
    "VideoUNet",
    "get_recipe",
    "inflate",
    "inflate_folder",
    "load_unet2d",
    "load_video_unet",
    "vdm_unet",
]
