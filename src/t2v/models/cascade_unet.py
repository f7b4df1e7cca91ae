"""The video U-Net of the cascade's conditional stages: frame interpolation and super-resolution.

Both stages are the same network, a 2D diffusers `UNet2DConditionModel` inflated with the
`cascade` recipe (a 3D-conv residual block after every spatial residual block, everything
trains), whose input is the noisy clip concatenated along channels with a condition clip:

  interpolate  Make-A-Video's frame interpolation network (Singer et al. 2022, Sec. 3.3, "masked
               frame interpolation") and Video LDM's interpolation model (Blattmann et al. 2023,
               Sec. 3.2): condition = (known frames, unknown frames zeroed; a 1-channel mask that
               is 1 on known frames), so in_channels = 2C + 1.
  upscale      Make-A-Video's SR_l^t (Singer et al. 2022, Sec. 3.3) after SR3 / Imagen (Saharia et
               al. 2022): condition = the bilinearly upsampled low-resolution clip with Gaussian
               noise augmentation; the augmentation level is an input, embedded like a timestep
               and added to the timestep embedding (last layer zero at init). in_channels = 2C.

The stages carry no text: the condition (the keyframes, the low-resolution clip) holds what the
prompt asked for. The U-Net still receives a (B, 1, D) zero text tensor, which its blocks without
cross-attention ignore.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator, Optional

import torch
from diffusers import UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from t2v.errors import T2VError
from t2v.models.inflate import inflate
from t2v.models.recipes import ALL, Recipe
from t2v.models.video_blocks import scalar_embedding

TASKS = ("interpolate", "upscale")
NULL_TEXT_WIDTH = 8  # width of the unused (B, 1, D) text tensor
LEVEL_SCALE = 1000.0  # a level in [0, 1] is embedded like a timestep in [0, 1000]

# The recipe as data: Video LDM's 3D-conv residual blocks (no merge: trained from scratch) and
# nothing else; the whole network trains.
CASCADE_RECIPE = Recipe(
    name="cascade",
    paper="Singer et al. 2022 (Make-A-Video) interpolation / super-resolution; Blattmann et al. 2023 (Video LDM)",
    temporal_resblock=True,
    trainable=(ALL,),
)


class LevelTimeEmbedding(nn.Module):
    """Timestep embedding + MLP(sinusoid(1000 * level)): the noise-augmentation level as an input.

    Imagen / Make-A-Video condition their super-resolution networks on the augmentation level;
    here it enters like Make-A-Video's fps: embedded as a timestep (diffusers `Timesteps` +
    `TimestepEmbedding`) and added; the MLP's last layer is zero at init. The level of each frame,
    (B*F,), is set by `CascadeUNet.forward` for the duration of its call.
    """

    def __init__(self, spatial: TimestepEmbedding, flip_sin_to_cos: bool, freq_shift: float) -> None:
        super().__init__()
        self.spatial = spatial
        self.level_proj, self.level = scalar_embedding(spatial, flip_sin_to_cos, freq_shift)
        self.current: Optional[Tensor] = None  # (B*F,) levels in [0, 1] during a forward pass

    def forward(self, sample: Tensor, condition: Optional[Tensor] = None) -> Tensor:
        """sample: (B*F, D_in) sinusoidal timestep features -> (B*F, D) embedding."""
        emb = self.spatial(sample, condition)
        if self.current is None:
            raise RuntimeError("LevelTimeEmbedding ran without a level (call CascadeUNet, not its inner U-Net)")
        return emb + self.level(self.level_proj(self.current * LEVEL_SCALE).to(emb.dtype))


class CascadeUNet(ModelMixin, ConfigMixin):
    """A conditional video U-Net for `task` interpolate or upscale; input and output (B, C, F, H, W).

    channels: C of the clips (3 for pixels); block_out_channels / layers_per_block /
    norm_num_groups: the 2D U-Net (down blocks without attention, one mid resnet); resblock_kernel:
    the temporal residual blocks' 3D kernel; level_embedding: take the noise-augmentation level as
    an input (the upscale stage); residual: what the stage's diffusion generates is the clip minus a
    reference computed from the condition (`t2v.pipelines.cascade.reference`: the linear blend of
    the neighbouring keyframes, or the upsampled clip) rather than the clip itself; the network
    does not change, only its target (SRDiff, Li et al. 2022, diffuses such a residual for
    super-resolution); residual_scale: the residual is diffused times this factor, so that it has
    about the spread the noise schedule assumes (as a VAE's scaling_factor does for latents: a
    residual of std 0.05-0.09 left unscaled sat at "predict zero" for hundreds of steps).
    """

    @register_to_config
    def __init__(
        self,
        task: str = "interpolate",
        channels: int = 3,
        sample_size: int = 64,
        block_out_channels: tuple[int, ...] = (32, 64),
        layers_per_block: int = 1,
        norm_num_groups: int = 8,
        resblock_kernel: tuple[int, int, int] = (3, 1, 1),
        level_embedding: bool = False,
        residual: bool = False,
        residual_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise T2VError(f"unknown cascade task {task!r}; choose one of {', '.join(TASKS)}")
        del residual, residual_scale  # read from the config by the pipeline and the training code
        n = len(block_out_channels)
        unet2d = UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=channels + self.condition_channels_for(task, channels),
            out_channels=channels,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            down_block_types=("DownBlock2D",) * n,
            up_block_types=("UpBlock2D",) * n,
            mid_block_type="UNetMidBlock2D",
            norm_num_groups=norm_num_groups,
            cross_attention_dim=NULL_TEXT_WIDTH,
        )
        recipe = replace(CASCADE_RECIPE, resblock_kernel=tuple(resblock_kernel))
        self.video = inflate(unet2d, recipe)  # (B, C_in, F, H, W) -> (B, C, F, H, W)
        if level_embedding:
            u = self.video.unet
            u.time_embedding = LevelTimeEmbedding(u.time_embedding, u.config.flip_sin_to_cos, u.config.freq_shift)

    @staticmethod
    def condition_channels_for(task: str, channels: int) -> int:
        """Channels of the condition clip: known frames + mask (interpolate), the upsampled clip (upscale)."""
        return channels + 1 if task == "interpolate" else channels

    @property
    def condition_channels(self) -> int:
        return self.condition_channels_for(self.config.task, self.config.channels)

    @contextmanager
    def _level(self, level: Optional[Tensor], b: int, f: int, device: torch.device) -> Iterator[None]:
        emb = self.video.unet.time_embedding
        if not isinstance(emb, LevelTimeEmbedding):
            if level is not None:
                raise T2VError("this stage takes no noise level (it was built without level_embedding)")
            yield
            return
        if level is None:
            raise T2VError("this stage needs noise_level, the augmentation level of its condition (0 = none)")
        level = torch.as_tensor(level, device=device, dtype=torch.float32)
        level = level.expand(b) if level.ndim == 0 else level
        if level.shape != (b,):
            raise T2VError(f"noise_level must be a scalar or (B,) with B = {b}; got shape {tuple(level.shape)}")
        emb.current = level.repeat_interleave(f)  # (B*F,)
        try:
            yield
        finally:
            emb.current = None

    def forward(self, sample: Tensor, timestep: Tensor, condition: Tensor, noise_level: Optional[Tensor] = None) -> Tensor:
        """sample: noisy clip (B, C, F, H, W); timestep: scalar or (B,); condition: (B, C_cond, F, H, W);
        noise_level: scalar or (B,) in [0, 1] (upscale only). Returns (B, C, F, H, W)."""
        b, c, f, h, w = sample.shape
        if condition.shape != (b, self.condition_channels, f, h, w):
            raise T2VError(
                f"the {self.config.task} condition must have shape {(b, self.condition_channels, f, h, w)}; "
                f"got {tuple(condition.shape)}"
            )
        x = torch.cat([sample, condition.to(sample.dtype)], dim=1)  # (B, C + C_cond, F, H, W)
        null_text = sample.new_zeros(b, 1, NULL_TEXT_WIDTH)  # (B, 1, D): no cross-attention reads it
        with self._level(noise_level, b, f, sample.device):
            return self.video(x, timestep, null_text)  # (B, C, F, H, W)


def warm_start(net: CascadeUNet, trained: CascadeUNet) -> list[str]:
    """Copy a trained stage's weights into `net` (same task and layout); returns the names of the 3D
    kernels that were widened.

    `net` may have larger (odd) temporal-resblock kernels than `trained`, e.g. (3, 3, 3) where the
    trained stage had (3, 1, 1): the trained taps go to the centre of the new kernel and the rest is
    zero, so with 'same' padding `net` computes exactly what `trained` did, and fine-tuning starts
    from it (the way inflation starts a video model from an image model). Any other difference is a
    one-line T2VError naming it."""
    for key in ("task", "channels", "block_out_channels", "layers_per_block", "norm_num_groups", "level_embedding",
                "residual", "residual_scale"):
        a, b = net.config.get(key), trained.config.get(key)
        if (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            raise T2VError(f"model.pretrained is a stage with {key} = {b}, but the config asks for {a}; "
                           f"set cascade.{key} to {b} (only resblock_kernel may grow)")
    state, widened = trained.state_dict(), []
    own = net.state_dict()
    for name, value in own.items():
        src = state[name]
        if src.shape != value.shape:
            grow = [n - o for n, o in zip(value.shape[2:], src.shape[2:])]
            if value.ndim != 5 or value.shape[:2] != src.shape[:2] or any(g < 0 or g % 2 for g in grow):
                raise T2VError(f"{name} has shape {tuple(src.shape)} in model.pretrained and {tuple(value.shape)} here; "
                               "only a temporal kernel may grow, by an even number of taps per axis")
            centred = torch.zeros_like(value)
            centred[(slice(None), slice(None), *(slice(g // 2, g // 2 + o) for g, o in zip(grow, src.shape[2:])))] = src
            src, _ = centred, widened.append(name)
        own[name] = src.to(value.dtype)
    net.load_state_dict(own)
    return widened
