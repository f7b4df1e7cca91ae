"""One recipe per paper, written as data: where temporal layers go and which parameters train.

Every recipe inflates the same thing, a diffusers `UNet2DConditionModel` (DESIGN.md, "One
mechanism, four papers"). Parameter names of an inflated model follow one convention, which the
`trainable` regular expressions rely on: a wrapped 2D module is called `spatial`, an added temporal
layer `temporal`, a Video LDM merge `merge` and the fps embedding `fps`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from t2v.errors import T2VError

TEMPORAL = r"(^|\.)temporal\."
MERGE = r"(^|\.)merge\."
FPS = r"(^|\.)fps\."
ALL = r"."


@dataclass(frozen=True)
class Recipe:
    """Where temporal layers go in a 2D U-Net and which parameters train.

    temporal_conv: a 1D conv over frames after every spatial conv with a spatial kernel (k > 1).
    temporal_attention: a temporal attention after every spatial transformer (`Transformer2DModel`).
    temporal_resblock: a 3D-conv residual block after every spatial residual block.
    alpha_merge: merge each temporal layer's output with its input as `alpha*z + (1-alpha)*temporal(z)`.
    sparse_causal: spatial self-attention (`attn1`) becomes Tune-A-Video's sparse-causal ST-Attn.
    fps_conditioning: an fps embedding added to the timestep embedding (zero at init).
    causal_attention: temporal attention sees frames <= i only.
    temporal_cross_attention: temporal attention also attends to the text (zero-init output); off in
      the papers' recipes, on in the embedded default model (docs/default_model.md says why).
    temporal_frame_positions: temporal attention also sees each frame's place in the clip, f / (F - 1),
      through a learned projection of sinusoids (absolute time, as Video LDM's and AnimateDiff's
      position encodings; identity at init because the attention's output projection is zero).
    temporal_resblock_condition: the temporal resblocks take a per-clip vector, the timestep embedding
      plus an attention-pooled text embedding (as SDXL adds pooled text to the timestep embedding),
      added after their first 3D conv; off in the papers' recipes (their temporal resblocks take
      the timestep only), on in the embedded default model so that the layers that move content
      between frames know which way (docs/default_model.md).
    temporal_space_time_attention: the temporal attention attends over all frames and pixels of the
      clip (F*H*W tokens) with a learned 3D relative position bias and, with temporal_cross_attention,
      per-head gates from the pooled text (`t2v.layers.SpaceTimeAttention`); for small latent grids.
    temporal_positions: the temporal resblocks and attentions also see each token's place in the clip,
      (frame, row, column), through a learned projection of sinusoids (`t2v.layers.positions`); the
      papers' temporal layers are the same at every pixel, so they cannot put content where a prompt
      says it starts and ends (docs/default_model.md, session 6).
    trainable: regular expressions (`re.search`) on parameter names; a match trains.
    """

    name: str
    paper: str
    temporal_conv: bool = False
    temporal_attention: bool = False
    temporal_resblock: bool = False
    alpha_merge: bool = False
    sparse_causal: bool = False
    fps_conditioning: bool = False
    causal_attention: bool = False
    temporal_cross_attention: bool = False
    temporal_frame_positions: bool = False
    temporal_resblock_condition: bool = False
    temporal_resblock_scale_shift: bool = False
    temporal_space_time_attention: bool = False
    temporal_positions: bool = False
    trainable: tuple[str, ...] = ()
    temporal_conv_kernel: int = 3
    resblock_kernel: tuple[int, int, int] = (3, 1, 1)
    attention_head_dim: int = 64
    merge_init_alpha: float = 0.5

    def to_dict(self) -> dict:
        """Plain JSON-able values (stored in the video U-Net's config.json)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise T2VError(f"unknown recipe fields {unknown}; known fields: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            name="vdm",
            paper="Ho et al. 2022, Video Diffusion Models",
            temporal_attention=True,
            trainable=(ALL,),
        ),
        Recipe(
            name="make-a-video",
            paper="Singer et al. 2022, Make-A-Video",
            temporal_conv=True,
            temporal_attention=True,
            fps_conditioning=True,
            trainable=(TEMPORAL, FPS),
        ),
        Recipe(
            name="tune-a-video",
            paper="Wu et al. 2023, Tune-A-Video",
            temporal_attention=True,
            sparse_causal=True,
            trainable=(TEMPORAL, r"(^|\.)attn[12]\.to_q\."),
        ),
        Recipe(
            name="video-ldm",
            paper="Blattmann et al. 2023, Align your Latents (Video LDM)",
            temporal_attention=True,
            temporal_resblock=True,
            alpha_merge=True,
            trainable=(TEMPORAL, MERGE),
        ),
    ]
}


def get_recipe(recipe: "str | Recipe") -> Recipe:
    """A `Recipe` by name (or the recipe itself); an unknown name raises a T2VError listing the valid ones."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise T2VError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    return RECIPES[recipe]
