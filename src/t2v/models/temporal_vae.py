"""Video LDM's temporally fine-tuned autoencoder: an image AutoencoderKL whose decoder gets temporal layers.

Blattmann et al. 2023 ("Align your Latents", Sec. 3.1.1): the per-frame decoder of a latent image
model flickers on video, so temporal layers are added to the decoder and it is fine-tuned on clips
with a video (3D-conv) discriminator while the encoder stays frozen (the latent space the diffusion
model was trained in does not move). Here the same glue as the video U-Net does it: every
`ResnetBlock2D` of the decoder (mid block and up blocks) is wrapped in a `VideoBlock` with a 3D-conv
`TemporalResBlock` and an `AlphaMerge`; both start as the identity (last conv zero, and
`alpha * z + (1 - alpha) * z = z`), so before training the model decodes exactly as the image decoder
does frame by frame, and `image_only=True` skips the temporal layers at any time.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from diffusers import AutoencoderKL
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from einops import rearrange
from torch import Tensor, nn

from t2v.errors import T2VError
from t2v.layers import AlphaMerge, TemporalResBlock
from t2v.models.video_blocks import FrameContext, Frames, VideoBlock
from t2v.models.video_unet import is_added, parent_name


def image_vae_config(vae: Any) -> Mapping[str, Any]:
    """The image autoencoder's config of an `AutoencoderKL` or a `TemporalAutoencoder` (its `vae_config`):
    scaling_factor, shift_factor, latent_channels, block_out_channels."""
    return vae.vae.config if isinstance(vae, TemporalAutoencoder) else vae.config


def _plain_config(vae: AutoencoderKL) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vae.config.items() if not k.startswith("_")}


class TemporalAutoencoder(ModelMixin, ConfigMixin):
    """An `AutoencoderKL` (config `vae_config`) with temporal 3D-conv residual blocks in its decoder.

    `encode(video)` and `decode(latents)` work on clips (B, C, F, H, W); latents are the VAE's own
    (unscaled: multiply by `scaling_factor` for a diffusion model's space, as pipelines do).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        vae_config: Optional[dict[str, Any]] = None,
        resblock_kernel: tuple[int, int, int] = (3, 3, 3),
        merge_init_alpha: float = 0.5,
    ) -> None:
        super().__init__()
        if vae_config is None:
            raise T2VError("TemporalAutoencoder needs the AutoencoderKL config (build it with TemporalAutoencoder.from_vae)")
        self.vae = AutoencoderKL.from_config(vae_config)
        self._frames = FrameContext()
        dec = self.vae.decoder
        for block in [dec.mid_block, *dec.up_blocks]:
            for i, resnet in enumerate(block.resnets):
                if isinstance(resnet, ResnetBlock2D):
                    temporal = TemporalResBlock(resnet.out_channels, tuple(resblock_kernel))
                    block.resnets[i] = VideoBlock(resnet, temporal, AlphaMerge(merge_init_alpha), self._frames)

    @classmethod
    def from_vae(cls, vae: AutoencoderKL, **kwargs: Any) -> "TemporalAutoencoder":
        """The image VAE's weights with new temporal layers at identity (on the VAE's device and dtype)."""
        if not isinstance(vae, AutoencoderKL):
            raise T2VError(f"TemporalAutoencoder.from_vae expects a diffusers AutoencoderKL, got {type(vae).__name__}")
        model = cls(vae_config=_plain_config(vae), **kwargs)
        source = vae.state_dict()
        target = {k: parent_name(k) for k in model.vae.state_dict() if not is_added(k)}
        if set(target.values()) != set(source):
            raise T2VError("the AutoencoderKL's weights do not match its config")
        model.vae.load_state_dict({k: source[v] for k, v in target.items()}, strict=False)
        model.to(device=vae.device)
        return model if model.dtype == vae.dtype else model.to(dtype=vae.dtype)

    def to_vae(self) -> AutoencoderKL:
        """The image AutoencoderKL with the current 2D weights (temporal layers dropped)."""
        vae = AutoencoderKL.from_config(self.config.vae_config)
        vae.load_state_dict({parent_name(k): v for k, v in self.vae.state_dict().items() if not is_added(k)})
        return vae.to(device=self.device, dtype=self.dtype)

    # ------------------------------------------------------------------------------------------
    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def shift_factor(self) -> float:
        return float(self.vae.config.get("shift_factor") or 0.0)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def factor(self) -> int:
        """Pixels per latent pixel along each side."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def temporal_parameters(self) -> dict[str, nn.Parameter]:
        """Name -> parameter of the added temporal layers and merges."""
        return {n: p for n, p in self.named_parameters() if is_added(n)}

    def decoder_parameters(self) -> dict[str, nn.Parameter]:
        """Name -> parameter of the whole decoder side (post_quant_conv, decoder, temporal layers)."""
        return {n: p for n, p in self.named_parameters() if n.startswith(("vae.decoder.", "vae.post_quant_conv."))}

    def _set_gradient_checkpointing(self, enable: bool = True, gradient_checkpointing_func: Any = None) -> None:
        for m in self.modules():
            if isinstance(m, VideoBlock):
                m.gradient_checkpointing = enable

    # ------------------------------------------------------------------------------------------
    def encode(self, video: Tensor, sample: bool = False, generator: Optional[torch.Generator] = None) -> Tensor:
        """Pixels (B, 3, F, H, W) in [-1, 1] -> latents (B, C, F, h, w): the posterior mean (or a sample)."""
        if video.ndim != 5:
            raise T2VError(f"encode takes a video batch (B, 3, F, H, W); got shape {tuple(video.shape)}")
        b = video.shape[0]
        frames = rearrange(video, "b c f h w -> (b f) c h w").contiguous().to(self.dtype)
        dist = self.vae.encode(frames).latent_dist
        z = dist.sample(generator=generator) if sample else dist.mode()  # (B*F, C, h, w)
        return rearrange(z, "(b f) c h w -> b c f h w", b=b).contiguous()

    def decode(self, latents: Tensor, image_only: bool = False) -> Tensor:
        """Latents (B, C, F, h, w) -> pixels (B, 3, F, H, W) (not clamped). All F frames go through
        one decoder call (the temporal layers see the whole clip); `image_only` = the image decoder."""
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise T2VError(
                f"decode takes latents (B, {self.latent_channels}, F, h, w); got shape {tuple(latents.shape)}"
            )
        b, _, f, _, _ = latents.shape
        z = rearrange(latents, "b c f h w -> (b f) c h w").contiguous().to(self.dtype)
        with self._frames.bind(Frames(num_frames=f, skip=image_only)):
            x = self.vae.decode(z).sample  # (B*F, 3, H, W)
        return rearrange(x, "(b f) c h w -> b c f h w", b=b)

    def decode_scaled(self, latents: Tensor, image_only: bool = False) -> Tensor:
        """`decode` of latents in a diffusion model's units ((z - shift_factor) * scaling_factor, what
        pipelines encode to and sample) -> pixels (B, 3, F, H, W) (not clamped)."""
        z = latents.to(self.device, self.dtype) / self.scaling_factor + self.shift_factor
        return self.decode(z, image_only=image_only)

    def forward(self, video: Tensor, image_only: bool = False, latent_noise: Optional[Tensor] = None) -> Tensor:
        """Reconstruct a clip (B, 3, F, H, W) through the posterior mean -> (B, 3, F, H, W).

        `latent_noise` (same shape as the latents, in the diffusion model's scaled units) is added to
        the posterior mean before decoding: training the decoder on perturbed latents, so that it also
        decodes a diffusion model's imperfect ones."""
        z = self.encode(video)
        if latent_noise is not None:
            z = z + latent_noise.to(z.dtype) / self.scaling_factor
        return self.decode(z, image_only=image_only)
