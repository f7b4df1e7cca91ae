"""The inflated video U-Net against its 2D parent: identity at init, image_only, training, checkpointing."""

from __future__ import annotations

import dataclasses
import weakref

import pytest
import torch
from einops import rearrange
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from t2v.errors import T2VError
from t2v.models import RECIPES, inflate, vdm_unet
from sd_fixture import TINY_UNET
from unet_refs import clip_batch, per_frame


@pytest.mark.parametrize("name", ["make-a-video", "video-ldm"])
def test_identity_at_init_on_random_clips(unet2d, name):
    model = inflate(unet2d, name)
    x, t, text = clip_batch()
    with torch.no_grad():
        ref = per_frame(unet2d, x, t, text)
        assert (model(x, t, text) - ref).abs().max() < 1e-5
        if name == "make-a-video":  # fps conditioning is zero at init too
            assert (model(x, t, text, fps=torch.tensor([4.0, 24.0])) - ref).abs().max() < 1e-5


def test_tune_a_video_identity_on_a_still_clip(unet2d):
    model = inflate(unet2d, "tune-a-video")
    with torch.no_grad():
        x, t, text = clip_batch(equal_frames=True)
        assert (model(x, t, text) - per_frame(unet2d, x, t, text)).abs().max() < 1e-5
        # On a moving clip ST-Attn mixes frames, so the output differs: the layer is really there.
        x, t, text = clip_batch()
        assert (model(x, t, text) - per_frame(unet2d, x, t, text)).abs().max() > 1e-3


@pytest.mark.parametrize("name", list(RECIPES))
def test_image_only_is_the_2d_model_exactly(unet2d, name):
    model = inflate(unet2d, name)
    for p in model.added_parameters().values():  # even with non-identity temporal layers
        torch.nn.init.normal_(p, std=0.1)
    x, t, text = clip_batch()
    with torch.no_grad():
        ref = per_frame(unet2d, x, t, text)
        assert torch.equal(model(x, t, text, image_only=True), ref)
        assert torch.equal(model(x, t, text, image_only=torch.tensor([True, True])), ref)
        assert not torch.allclose(model(x, t, text), ref, atol=1e-4)


@pytest.mark.parametrize("name", list(RECIPES))
def test_per_sample_image_only(unet2d, name):
    """VDM joint image+video batches: marked samples get the 2D model, the others the video model."""
    model = inflate(unet2d, name)
    for p in model.added_parameters().values():
        torch.nn.init.normal_(p, std=0.1)
    x, t, text = clip_batch(b=3)
    with torch.no_grad():
        ref, video = per_frame(unet2d, x, t, text), model(x, t, text)
        mixed = model(x, t, text, image_only=torch.tensor([False, True, False]))
    tol = 1e-6 if name == "tune-a-video" else 0.0  # ST-Attn of an image sample: own keys twice
    assert (mixed[1] - ref[1]).abs().max() <= tol
    torch.testing.assert_close(mixed[[0, 2]], video[[0, 2]], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", list(RECIPES))
def test_training_changes_only_trainable_and_keeps_image_only_exact(unet2d, name):
    model = inflate(unet2d, name)
    model.set_trainable()
    trainable = model.trainable_parameters()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(trainable.values(), lr=1e-3)
    fps = torch.tensor([8.0, 12.0])
    for step in range(2):  # step 1 moves the zero-init outputs, step 2 everything behind them
        x, t, text = clip_batch(seed=10 + step)
        loss = (model(x, t, text, fps=fps) - torch.randn_like(x)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(trainable)  # every trained tensor moved; every other one is bit-identical

    x, t, text = clip_batch(seed=99)
    with torch.no_grad():
        out = model(x, t, text, image_only=True)
        assert torch.equal(out, per_frame(model.to_unet2d().eval(), x, t, text))
        if name in ("make-a-video", "video-ldm"):  # 2D frozen: still the original parent exactly
            assert torch.equal(out, per_frame(unet2d, x, t, text))
        assert not torch.allclose(model(x, t, text, fps=fps), out, atol=1e-5)  # temporal layers learned


@pytest.mark.parametrize("frames", [1, 3, 9])
def test_any_frame_count(unet2d, frames):
    model = inflate(unet2d, "video-ldm")
    x, t, text = clip_batch(b=1, f=frames)
    with torch.no_grad():
        assert (model(x, t, text) - per_frame(unet2d, x, t, text)).abs().max() < 1e-5


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_channels_last_input_gives_the_same_gradients(unet2d, name):
    # VAE latents arrive channels-last; video-ldm's 3D-conv backward used to segfault on them.
    model = inflate(unet2d, name)
    model.set_trainable()
    x, t, text = clip_batch(b=2, f=4)
    x_cl = rearrange(rearrange(x, "b c f h w -> (b f) c h w").contiguous(memory_format=torch.channels_last),
                     "(b f) c h w -> b c f h w", b=2)
    assert not x_cl.is_contiguous()
    grads = []
    for inp in (x, x_cl):
        model.zero_grad()
        model(inp, t, text).pow(2).mean().backward()
        # (the fps embedding gets no gradient without fps: None in both runs)
        grads.append([p.grad for p in model.trainable_parameters().values()])
    for a, b in zip(*grads):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-6)
    assert any(a is not None and a.abs().sum() > 0 for a in grads[0])


def test_scalar_timestep_equals_repeated_timestep(unet2d):
    model = inflate(unet2d, "make-a-video")
    x, _, text = clip_batch()
    with torch.no_grad():
        assert torch.equal(model(x, 500, text), model(x, torch.tensor([500, 500]), text))


def test_bad_shapes_are_one_line_errors(unet2d):
    model = inflate(unet2d, "video-ldm")
    x, t, text = clip_batch()
    for call in (
        lambda: model(x[:, :, 0], t, text),
        lambda: model(x, t, text[:1]),
        lambda: model(x, torch.tensor([1, 2, 3]), text),
        lambda: model(x, t, text, image_only=torch.tensor([1, 0])),
    ):
        with pytest.raises(T2VError) as e:
            call()
        assert "\n" not in str(e.value)


def test_vdm_from_scratch_image_only_is_its_2d_parent():
    torch.manual_seed(3)
    from diffusers import UNet2DConditionModel

    parent = UNet2DConditionModel(in_channels=4, out_channels=4, sample_size=8, **TINY_UNET).eval()
    torch.manual_seed(3)
    model = vdm_unet(in_channels=4, out_channels=4, sample_size=8, **TINY_UNET).eval()
    x, t, text = clip_batch()
    with torch.no_grad():
        assert torch.equal(model(x, t, text, image_only=True), per_frame(parent, x, t, text))
    assert model.config.recipe == "vdm" and len(model.added_parameters()) > 0


class PeakLiveBytes(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the mode that are alive at the same time.

    A CPU stand-in for `torch.cuda.max_memory_allocated`: every op output with a new storage is
    counted until that storage is freed (a weakref finalizer on the storage object).
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._ids: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._ids.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                s = t.untyped_storage()
                if id(s) not in self._ids:
                    self._ids.add(id(s))
                    self.live += s.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(s, self._free, id(s), s.nbytes())
        return out


@pytest.mark.parametrize("name", ["video-ldm", "make-a-video"])
def test_gradient_checkpointing_same_gradients_less_memory(unet2d, name):
    model = inflate(unet2d, name)
    for p in model.added_parameters().values():  # non-trivial temporal layers
        torch.nn.init.normal_(p, std=0.05)
    model.set_trainable()
    x, t, text = clip_batch(f=6)
    fps = torch.tensor([8.0, 24.0])

    def grads_and_peak():
        model.zero_grad(set_to_none=True)
        with PeakLiveBytes() as mem:
            model(x, t, text, fps=fps).square().mean().backward()
        return {n: p.grad.clone() for n, p in model.trainable_parameters().items()}, mem.peak

    plain, plain_peak = grads_and_peak()
    model.enable_gradient_checkpointing()
    assert model.is_gradient_checkpointing
    ckpt, ckpt_peak = grads_and_peak()
    assert plain.keys() == ckpt.keys()
    for n in plain:
        torch.testing.assert_close(ckpt[n], plain[n], atol=1e-5, rtol=0)
    print(f"{name}: peak live tensor bytes {plain_peak} plain, {ckpt_peak} checkpointed")
    assert ckpt_peak < 0.8 * plain_peak, (ckpt_peak, plain_peak)


TEXT_LDM = dataclasses.replace(RECIPES["video-ldm"], temporal_cross_attention=True, resblock_kernel=(3, 3, 3))
TIMED_TEXT_LDM = dataclasses.replace(TEXT_LDM, temporal_frame_positions=True)
# Only the temporal resblocks see the text (pooled, with the timestep), not the temporal attention.
CONDITIONED_LDM = dataclasses.replace(RECIPES["video-ldm"], temporal_resblock_condition=True, resblock_kernel=(3, 3, 3))
SCALE_SHIFT_LDM = dataclasses.replace(CONDITIONED_LDM, temporal_resblock_scale_shift=True)
SPACE_TIME_LDM = dataclasses.replace(TIMED_TEXT_LDM, temporal_space_time_attention=True)
PLACED_LDM = dataclasses.replace(TIMED_TEXT_LDM, temporal_resblock_condition=True, temporal_positions=True)


@pytest.mark.parametrize("recipe", [TEXT_LDM, TIMED_TEXT_LDM, CONDITIONED_LDM, SCALE_SHIFT_LDM, SPACE_TIME_LDM, PLACED_LDM],
                         ids=["text", "text+frame-positions", "resblock-condition", "resblock-scale-shift", "space-time",
                              "clip-positions"])
def test_text_aware_temporal_layers_identity_then_per_clip_text(unet2d, tmp_path, recipe):
    """The default model's variant of Video LDM: identity at init, each clip's temporal layers read
    that clip's own text (batching never mixes prompts), and the variant survives save/load."""
    model = inflate(unet2d, recipe)
    assert any("frame_pos" in n for n in model.added_parameters()) == recipe.temporal_frame_positions
    assert ("temporal.pool_query" in model.trainable_parameters()) == recipe.temporal_resblock_condition
    assert any("rel_pos.table" in n for n in model.trainable_parameters()) == recipe.temporal_space_time_attention
    assert any(".positions.proj" in n for n in model.trainable_parameters()) == recipe.temporal_positions
    assert any(".clip_pos.proj" in n for n in model.trainable_parameters()) == recipe.temporal_positions
    x, t, text = clip_batch()
    with torch.no_grad():
        assert (model(x, t, text) - per_frame(unet2d, x, t, text)).abs().max() < 1e-5
        for p in model.added_parameters().values():
            torch.nn.init.normal_(p, std=0.1)
        both = model(x, t, text)
        for i in range(2):
            alone = model(x[i:i + 1], t[i:i + 1], text[i:i + 1])
            torch.testing.assert_close(both[i:i + 1], alone, atol=1e-5, rtol=0)
        swapped = model(x, t, text.flip(0))  # the other clip's prompt changes the temporal path
        assert (swapped - both).abs().max() > 1e-3
        assert torch.equal(model(x, t, text, image_only=True), per_frame(unet2d, x, t, text))
    model.save_pretrained(tmp_path / "unet")
    loaded = type(model).from_pretrained(tmp_path / "unet")
    assert loaded.recipe == recipe
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, text), both, atol=1e-6, rtol=0)  # bit-equal but for SDPA rounding


def test_text_aware_temporal_layers_checkpointing_same_gradients(unet2d):
    model = inflate(unet2d, TEXT_LDM)
    for p in model.added_parameters().values():
        torch.nn.init.normal_(p, std=0.05)
    model.set_trainable()
    x, t, text = clip_batch(f=4)

    def grads():
        model.zero_grad(set_to_none=True)
        model(x, t, text).square().mean().backward()
        return {n: p.grad.clone() for n, p in model.trainable_parameters().items()}

    plain = grads()
    assert any("to_kv_text" in n for n in plain)
    model.enable_gradient_checkpointing()
    ckpt = grads()
    for n in plain:
        torch.testing.assert_close(ckpt[n], plain[n], atol=1e-5, rtol=0)


def test_conditioned_resblocks_see_timestep_and_attended_text(unet2d):
    """The resblock condition is the 2D U-Net's own timestep embedding plus the pooled text: the
    timestep of a clip changes its temporal path, and the pooling starts as the mean of the tokens."""
    model = inflate(unet2d, CONDITIONED_LDM)
    x, t, text = clip_batch()
    cond = model.temporal
    torch.testing.assert_close(cond.pool(text), text.mean(dim=1))
    with torch.no_grad():
        for p in model.added_parameters().values():
            torch.nn.init.normal_(p, std=0.1)
        base = model(x, t, text)
        other_t = model(x, t + 100, text)
        assert (other_t - base).abs().max() > 1e-3
        # Pooling weights follow the query: a query along one token's state favours that token.
        cond.pool_query.copy_(text[0, 2] * 50)
        weights = (text[0] @ cond.pool_query / text.shape[-1] ** 0.5).softmax(0)
        torch.testing.assert_close(cond.pool(text[:1])[0], (weights[:, None] * text[0]).sum(0))
        assert weights.argmax() == 2


def test_resblock_condition_needs_resblocks(unet2d):
    recipe = dataclasses.replace(RECIPES["vdm"], temporal_resblock_condition=True)
    with pytest.raises(T2VError, match="temporal_resblock_condition needs temporal_resblock"):
        inflate(unet2d, recipe)
    with pytest.raises(T2VError, match="temporal_resblock_scale_shift needs temporal_resblock_condition"):
        inflate(unet2d, dataclasses.replace(RECIPES["video-ldm"], temporal_resblock_scale_shift=True))
    with pytest.raises(T2VError, match="temporal_space_time_attention needs a recipe with temporal attention"):
        inflate(unet2d, dataclasses.replace(RECIPES["make-a-video"], temporal_attention=False, temporal_space_time_attention=True))


def test_scale_shift_resblock_against_its_formula():
    """y = x + conv2(SiLU(GN2(conv1(SiLU(GN1(x)))) * (1 + scale) + shift)), (scale, shift) = W emb."""
    from t2v.layers import TemporalResBlock

    torch.manual_seed(0)
    block = TemporalResBlock(8, (3, 3, 3), groups=4, embedding_dim=6, scale_shift=True)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x, emb = torch.randn(2, 8, 4, 5, 5), torch.randn(2, 6)
    scale, shift = (emb @ block.emb_proj.weight.T + block.emb_proj.bias).chunk(2, dim=1)
    act = torch.nn.functional.silu
    h = block.conv1(act(block.norm1(x)))
    h = block.norm2(h) * (1 + scale[:, :, None, None, None]) + shift[:, :, None, None, None]
    torch.testing.assert_close(block(x, emb=emb), x + block.conv2(act(h)))


def test_resblock_condition_is_the_per_frame_embedding_of_each_clip_fps_included(unet2d):
    """The per-clip condition is computed on one row per clip; it equals the 2D U-Net's own timestep
    embedding of the clip's frames (fps embedding included), pooled text added."""
    from t2v.models.video_blocks import Frames

    model = inflate(unet2d, dataclasses.replace(CONDITIONED_LDM, fps_conditioning=True))
    for p in model.added_parameters().values():
        torch.nn.init.normal_(p, std=0.1)
    x, t, text = clip_batch()
    f = x.shape[2]
    frames = Frames(num_frames=f, fps=torch.tensor([4.0, 12.0]), text=text, skip=False, keep=None)
    with torch.no_grad():
        with model._frames.bind(frames):
            per_frame_temb = model.unet.time_embedding(model.unet.time_proj(t.repeat_interleave(f)))  # (B*F, E)
        reference = model.temporal(per_frame_temb[::f], text)
        torch.testing.assert_close(model.temporal(per_frame_temb[1::f], text), reference, atol=1e-6, rtol=0)  # frames of a clip agree (float rounding)
        fps_free = model.temporal(model.unet.time_embedding.spatial(model.unet.time_proj(t)), text)
        assert (reference - fps_free).abs().max() > 1e-3  # the fps embedding is in it
        torch.testing.assert_close(model._clip_condition(frames, t.repeat_interleave(f), text, torch.float32), reference,
                                   atol=1e-6, rtol=0)
