"""A from-scratch factorized space-time U-Net for Video Diffusion Models.

Ho et al. 2022, "Video Diffusion Models", Sec. 3: the 2D U-Net's convolutions become space-only
3D convolutions (1x3x3, i.e. the 2D conv on every frame) and every spatial attention is followed by
a temporal attention over frames with relative positions. That is exactly the `vdm` recipe applied
to a freshly initialised 2D U-Net, so VDM is built by the same inflation as the other papers.
Joint image-video training masks the temporal attention of image samples (`image_only` per sample).
"""

from __future__ import annotations

from typing import Any

from diffusers import UNet2DConditionModel

from t2v.models.inflate import inflate
from t2v.models.video_unet import VideoUNet


def vdm_unet(**unet2d_kwargs: Any) -> VideoUNet:
    """A randomly initialised VDM video U-Net; `unet2d_kwargs` are `UNet2DConditionModel` arguments."""
    return inflate(UNet2DConditionModel(**unet2d_kwargs), "vdm")
