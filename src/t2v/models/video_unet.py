"""The video U-Net: a diffusers `UNet2DConditionModel` with a paper's temporal layers put in.

One mechanism for four papers (DESIGN.md): `add_temporal_layers` walks the 2D U-Net once and,
as the recipe says, wraps every spatial conv (Make-A-Video), every residual block (Video LDM) and
every spatial transformer (all four) with its temporal partner, and swaps spatial self-attention
for sparse-causal ST-Attn (Tune-A-Video); text cross-attention computes its keys/values once per
clip (`ClipTextAttnProcessor`). The 2D U-Net's own forward is left untouched: it runs on
frames folded into the batch and the wrappers unfold them (see `video_blocks.py`).

`VideoUNet` is a diffusers `ModelMixin` + `ConfigMixin`, so `save_pretrained` / `from_pretrained`
write and read the diffusers folder layout (config.json + safetensors). Its config holds the
recipe and the 2D U-Net's config, from which the same architecture is rebuilt on load.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Optional, Union

import torch
from diffusers import UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from einops import rearrange
from torch import Tensor, nn

from t2v.errors import T2VError
from t2v.layers import (AlphaMerge, ClipCondition, ClipTextAttnProcessor, SpaceTimeAttention, SparseCausalAttnProcessor,
                        TemporalAttention, TemporalResBlock)
from t2v.models.recipes import Recipe, get_recipe
from t2v.models.video_blocks import FpsTimeEmbedding, FrameContext, Frames, PseudoConv3d, VideoBlock

# Config keys of the 2D U-Net that the video U-Net exposes at the top of its own config.
EXPOSED = ("in_channels", "out_channels", "sample_size", "cross_attention_dim")
_ADDED = re.compile(r"(^|\.)(temporal|merge|fps)\.")
_SPATIAL = re.compile(r"(^|\.)spatial\.")


def is_added(name: str) -> bool:
    """True for a parameter the inflation added (temporal layer, merge, fps embedding)."""
    return _ADDED.search(name) is not None


def parent_name(name: str) -> str:
    """The 2D U-Net's name of a spatial parameter: drop the wrappers' `spatial.` components."""
    return _SPATIAL.sub(r"\1", name)


def time_embed_dim(unet: UNet2DConditionModel) -> int:
    """Width of the 2D U-Net's timestep embedding (the vector its residual blocks take)."""
    embedding = unet.time_embedding
    return getattr(embedding, "spatial", embedding).linear_2.out_features


def add_temporal_layers(unet: UNet2DConditionModel, recipe: Recipe, context: FrameContext) -> None:
    """Insert the recipe's temporal layers into `unet` in place (new layers start as the identity)."""
    # 1. Make-A-Video: a 1D conv over frames after every spatial conv (pseudo-3D conv, Eq. 1).
    if recipe.temporal_conv:
        wrapped: dict[int, PseudoConv3d] = {}  # one wrapper per conv, even if two attributes share it
        for module in list(unet.modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.Conv2d) and child.kernel_size != (1, 1):
                    if id(child) not in wrapped:
                        wrapped[id(child)] = PseudoConv3d(child, context, recipe.temporal_conv_kernel)
                    setattr(module, child_name, wrapped[id(child)])

    blocks = [*unet.down_blocks, *([unet.mid_block] if unet.mid_block is not None else []), *unet.up_blocks]
    for block in blocks:
        # 2. Video LDM: a 3D-conv residual block after every spatial residual block, merged by alpha.
        for i, resnet in enumerate(block.resnets):
            if not isinstance(resnet, ResnetBlock2D):
                continue
            temporal = (
                TemporalResBlock(resnet.out_channels, recipe.resblock_kernel,
                                 embedding_dim=time_embed_dim(unet) if recipe.temporal_resblock_condition else None,
                                 scale_shift=recipe.temporal_resblock_scale_shift,
                                 positions=recipe.temporal_positions)
                if recipe.temporal_resblock else None
            )
            merge = AlphaMerge(recipe.merge_init_alpha) if recipe.alpha_merge and temporal is not None else None
            block.resnets[i] = VideoBlock(resnet, temporal, merge, context)

        # 3. All four: a temporal attention after every spatial transformer (VDM, Make-A-Video,
        #    Tune-A-Video, Video LDM), and Tune-A-Video's ST-Attn in place of spatial self-attention.
        for i, attn in enumerate(getattr(block, "attentions", None) or []):
            if not isinstance(attn, Transformer2DModel):
                continue
            for m in attn.modules():
                if not isinstance(m, BasicTransformerBlock):
                    continue
                if recipe.sparse_causal:
                    m.attn1.set_processor(SparseCausalAttnProcessor(context.attention_frames))
                if m.attn2 is not None and m.attn2.is_cross_attention:
                    # Not a recipe choice, an execution one: text keys/values once per clip, not per frame.
                    m.attn2.set_processor(ClipTextAttnProcessor(context.attention_frames))
            attention_class = SpaceTimeAttention if recipe.temporal_space_time_attention else TemporalAttention
            temporal = (
                attention_class(
                    attn.out_channels, recipe.attention_head_dim, recipe.causal_attention,
                    cross_attention_dim=unet.config.cross_attention_dim if recipe.temporal_cross_attention else None,
                    frame_positions=recipe.temporal_frame_positions,
                    pixel_positions=recipe.temporal_positions,
                )
                if recipe.temporal_attention else None
            )
            merge = AlphaMerge(recipe.merge_init_alpha) if recipe.alpha_merge and temporal is not None else None
            block.attentions[i] = VideoBlock(attn, temporal, merge, context)

    # 4. Make-A-Video: fps conditioning added to the timestep embedding (zero at init).
    if recipe.fps_conditioning:
        unet.time_embedding = FpsTimeEmbedding(
            unet.time_embedding, unet.config.flip_sin_to_cos, unet.config.freq_shift, context
        )


class VideoUNet(ModelMixin, ConfigMixin):
    """A text-to-image U-Net made temporal by a paper's recipe; input and output (B, C, F, H, W).

    Build it with `t2v.models.inflate(unet2d, recipe)` (pretrained 2D weights, temporal layers at
    identity) or `t2v.models.vdm_unet(**unet2d_kwargs)` (from scratch). `unet2d` is the 2D U-Net's
    config without the exposed keys; `recipe_spec` (a `Recipe.to_dict()`) overrides the named recipe.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        recipe: str = "vdm",
        in_channels: int = 4,
        out_channels: int = 4,
        sample_size: Optional[Union[int, tuple[int, int]]] = None,
        cross_attention_dim: Union[int, tuple[int, ...]] = 1280,
        unet2d: Optional[dict[str, Any]] = None,
        recipe_spec: Optional[dict[str, Any]] = None,
    ) -> None:
        super().__init__()
        self.recipe = Recipe.from_dict(recipe_spec) if recipe_spec else get_recipe(recipe)
        if self.recipe.temporal_resblock_condition and not self.recipe.temporal_resblock:
            raise T2VError("recipe option temporal_resblock_condition needs temporal_resblock: true")
        if self.recipe.temporal_resblock_scale_shift and not self.recipe.temporal_resblock_condition:
            raise T2VError("recipe option temporal_resblock_scale_shift needs temporal_resblock_condition: true")
        if self.recipe.temporal_space_time_attention and not self.recipe.temporal_attention:
            raise T2VError("recipe option temporal_space_time_attention needs a recipe with temporal attention")
        self.unet = UNet2DConditionModel.from_config(self.unet2d_config)
        self._frames = FrameContext()
        add_temporal_layers(self.unet, self.recipe, self._frames)
        if self.recipe.temporal_resblock_condition:
            # Named `temporal` so that the recipe's TEMPORAL pattern trains it and `is_added` knows it.
            self.temporal = ClipCondition(self.unet.config.cross_attention_dim, time_embed_dim(self.unet))

    @property
    def unet2d_config(self) -> dict[str, Any]:
        """The full config of the 2D parent U-Net."""
        cfg = dict(self.config.unet2d or {})
        cfg.update({k: self.config[k] for k in EXPOSED})
        return cfg

    # ------------------------------------------------------------------------------------------
    def forward(
        self,
        sample: Tensor,
        timestep: Union[Tensor, float, int],
        encoder_hidden_states: Tensor,
        fps: Optional[Tensor] = None,
        image_only: Union[bool, Tensor] = False,
    ) -> Tensor:
        """Predict for a batch of clips.

        sample: (B, C, F, H, W); timestep: scalar or (B,); encoder_hidden_states: (B, L, D), one per
        clip; fps: optional (B,) frame rates (used by recipes with fps conditioning);
        image_only: True skips every temporal layer (the 2D U-Net per frame, exactly); a (B,) bool
        tensor skips them for the marked samples only (VDM joint image-video batches).
        Returns (B, C_out, F, H, W).
        """
        if sample.ndim != 5:
            raise T2VError(f"sample must be a video batch (B, C, F, H, W); got shape {tuple(sample.shape)}")
        b, _, f, _, _ = sample.shape
        if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[0] != b:
            raise T2VError(
                f"encoder_hidden_states must be (B, L, D) with B = {b} (one per clip); got {tuple(encoder_hidden_states.shape)}"
            )
        frames = Frames(num_frames=f, fps=self._fps(fps, b, sample.device), text=encoder_hidden_states,
                        **self._image_only(image_only, b, sample.device))

        timestep = torch.as_tensor(timestep, device=sample.device)
        if timestep.ndim == 0:
            timestep = timestep.expand(b * f)  # (B*F,)
        elif timestep.shape == (b,):
            timestep = timestep.repeat_interleave(f)  # (B*F,)
        else:
            raise T2VError(f"timestep must be a scalar or (B,) with B = {b}; got shape {tuple(timestep.shape)}")

        # Contiguous frames: a channels-last input (VAE latents are) propagates through the 2D convs
        # and made the 3D-conv backward of video-ldm's temporal resblocks crash (torch 2.13, CPU).
        x = rearrange(sample, "b c f h w -> (b f) c h w").contiguous()
        text = encoder_hidden_states.repeat_interleave(f, dim=0)  # (B*F, L, D)
        if self.recipe.temporal_resblock_condition and not frames.skip:
            frames = replace(frames, emb=self._clip_condition(frames, timestep, encoder_hidden_states, x.dtype))
        with self._frames.bind(frames):
            out = self.unet(x, timestep, text, return_dict=False)[0]  # (B*F, C_out, H, W)
        return rearrange(out, "(b f) c h w -> b c f h w", b=b)

    def _clip_condition(self, frames: Frames, timestep: Tensor, text: Tensor, dtype: torch.dtype) -> Tensor:
        """(B, E): the 2D U-Net's own timestep embedding (fps included) of each clip + pooled text.

        One row per clip (every frame of a clip has its timestep): the fps embedding, if any, reads
        the bound frames, here bound as clips of one frame so that it also gives B rows."""
        with self._frames.bind(replace(frames, num_frames=1)):
            return self.temporal(self.unet.time_embedding(self.unet.time_proj(timestep[:: frames.num_frames]).to(dtype)), text)

    @staticmethod
    def _image_only(image_only: Union[bool, Tensor], b: int, device: torch.device) -> dict[str, Any]:
        if isinstance(image_only, bool):
            return {"skip": image_only, "keep": None}
        mask = torch.as_tensor(image_only, device=device)
        if mask.dtype != torch.bool or mask.shape != (b,):
            raise T2VError(f"image_only must be a bool or a (B,) bool tensor with B = {b}; got {mask.dtype} {tuple(mask.shape)}")
        if bool(mask.all()):
            return {"skip": True, "keep": None}
        return {"skip": False, "keep": None if not bool(mask.any()) else ~mask}

    def _fps(self, fps: Optional[Tensor], b: int, device: torch.device) -> Optional[Tensor]:
        if fps is None or not self.recipe.fps_conditioning:
            return None
        fps = torch.as_tensor(fps, device=device, dtype=torch.float32)
        if fps.ndim == 0:
            fps = fps.expand(b)
        if fps.shape != (b,):
            raise T2VError(f"fps must be a scalar or (B,) with B = {b}; got shape {tuple(fps.shape)}")
        return fps

    # ------------------------------------------------------------------------------------------
    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """Name -> parameter for every parameter the recipe trains (e.g. `AdamW(d.values())`)."""
        patterns = [re.compile(p) for p in self.recipe.trainable]
        return {n: p for n, p in self.named_parameters() if any(r.search(n) for r in patterns)}

    def set_trainable(self) -> None:
        """requires_grad = True for the recipe's trainable parameters, False for all others."""
        train = self.trainable_parameters()
        for n, p in self.named_parameters():
            p.requires_grad_(n in train)

    def added_parameters(self) -> dict[str, nn.Parameter]:
        """Name -> parameter for everything the inflation added (temporal layers, merges, fps)."""
        return {n: p for n, p in self.named_parameters() if is_added(n)}

    def _set_gradient_checkpointing(self, enable: bool = True, gradient_checkpointing_func: Any = None) -> None:
        # Checkpoint each wrapped block (2D module + temporal layer together); diffusers' block-level
        # checkpointing stays off so that nothing is checkpointed twice.
        for m in self.modules():
            if isinstance(m, VideoBlock):
                m.gradient_checkpointing = enable

    # ------------------------------------------------------------------------------------------
    def load_unet2d_weights(self, unet2d: UNet2DConditionModel) -> None:
        """Copy a 2D U-Net's weights into the spatial parts (its config must match `unet2d_config`)."""
        source = unet2d.state_dict()
        target = {k: v for k, v in self.unet.state_dict().items() if not is_added(k)}
        names = {k: parent_name(k) for k in target}
        differ = sorted(set(names.values()) ^ set(source))
        if differ:
            raise T2VError(f"the 2D U-Net's weights do not match its config (first differing names: {differ[:3]})")
        self.unet.load_state_dict({k: source[names[k]] for k in target}, strict=False)

    def to_unet2d(self) -> UNet2DConditionModel:
        """The 2D parent: a `UNet2DConditionModel` with the current spatial weights (temporal layers dropped)."""
        unet2d = UNet2DConditionModel.from_config(self.unet2d_config)
        sd = {parent_name(k): v for k, v in self.unet.state_dict().items() if not is_added(k)}
        unet2d.load_state_dict(sd, strict=True)
        unet2d.to(device=self.device)
        return unet2d if unet2d.dtype == self.dtype else unet2d.to(dtype=self.dtype)
