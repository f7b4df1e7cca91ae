"""A small 3D-convolution patch discriminator for clips (Video LDM's temporal decoder fine-tuning).

Blattmann et al. 2023 (Sec. 3.1.1 and appendix) fine-tune the decoder against "a (patch-wise)
temporal discriminator built from 3D convolutions". No public repository ships it, so this is
hand-written after PatchGAN (Isola et al. 2017) with the 2D convs made 3D: each output logit judges
one space-time patch of the clip.
"""

from __future__ import annotations

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn


class VideoDiscriminator(ModelMixin, ConfigMixin):
    """(B, 3, F, H, W) in [-1, 1] -> patch logits (B, 1, F', H / 2^layers, W / 2^layers).

    `layers` stride-(1, 2, 2) convs of kernel (3, 4, 4) with `channels`, doubling per layer
    (GroupNorm + LeakyReLU 0.2 between), then a (3, 3, 3) conv to one logit per patch.
    """

    @register_to_config
    def __init__(self, in_channels: int = 3, channels: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        c_in = in_channels
        for i in range(layers):
            c_out = channels * 2**i
            mods.append(nn.Conv3d(c_in, c_out, (3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1)))
            if i > 0:
                mods.append(nn.GroupNorm(min(8, c_out), c_out))
            mods.append(nn.LeakyReLU(0.2))
            c_in = c_out
        mods.append(nn.Conv3d(c_in, 1, 3, padding=1))
        self.net = nn.Sequential(*mods)

    def forward(self, video: Tensor) -> Tensor:
        return self.net(video)  # (B, 1, F, H', W')
