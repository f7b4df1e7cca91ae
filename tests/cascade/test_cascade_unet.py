"""The conditional stages' network and conditions, against references: explicit loops and the inner
video U-Net, diffusers' own forward process, hand-computed embeddings."""

from __future__ import annotations

import pytest
import torch
from cascade_helpers import PIXEL_SCHEDULE, tiny_unet
from diffusers import DDPMScheduler
from diffusers.models.embeddings import TimestepEmbedding, Timesteps

from t2v.errors import T2VError
from t2v.models.cascade_unet import NULL_TEXT_WIDTH, LevelTimeEmbedding
from t2v.pipelines.cascade import (
    augment_condition,
    interpolated_length,
    interpolation_condition,
    keyframe_mask,
    place_keyframes,
    upsample,
)


@pytest.mark.parametrize("factor", [2, 4])
def test_keyframes_placed_and_masked_like_a_loop(factor):
    keys = torch.randn(2, 3, 4, 8, 8)
    clip, known = place_keyframes(keys, factor)
    f = interpolated_length(4, factor)
    assert clip.shape == (2, 3, f, 8, 8) and f == 3 * factor + 1
    cond = interpolation_condition(clip, known)
    assert cond.shape == (2, 4, f, 8, 8)
    for t in range(f):  # reference: frame by frame
        if t % factor == 0:
            assert known[t] and torch.equal(cond[:, :3, t], keys[:, :, t // factor])
            assert torch.equal(cond[:, 3, t], torch.ones(2, 8, 8))
        else:
            assert not known[t] and torch.equal(cond[:, :, t], torch.zeros(2, 4, 8, 8))


def test_condition_of_a_full_clip_zeroes_unknown_frames():
    video = torch.randn(1, 3, 9, 4, 4)
    cond = interpolation_condition(video, keyframe_mask(9, 4))
    assert torch.equal(cond[:, :3, [0, 4, 8]], video[:, :, [0, 4, 8]])
    assert cond[:, :3, [1, 2, 3, 5, 6, 7]].abs().sum() == 0
    assert cond[:, 3].sum() == 3 * 16


def test_interpolation_unet_is_the_video_unet_on_the_concatenation():
    unet = tiny_unet("interpolate")
    assert unet.video.config.in_channels == 2 * 3 + 1 and unet.video.config.out_channels == 3
    x, cond = torch.randn(2, 3, 5, 16, 16), torch.randn(2, 4, 5, 16, 16)
    t = torch.tensor([10, 700])
    with torch.no_grad():
        out = unet(x, t, cond)
        ref = unet.video(torch.cat([x, cond], 1), t, torch.zeros(2, 1, NULL_TEXT_WIDTH))
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    with pytest.raises(T2VError, match="condition must have shape"):
        unet(x, t, cond[:, :3])


def test_every_frame_of_the_condition_reaches_every_output_frame_nearby():
    # The temporal residual blocks mix frames: the known frame 0 changes the prediction of frame 2.
    unet = tiny_unet("interpolate")
    x, cond = torch.randn(1, 3, 5, 16, 16), torch.randn(1, 4, 5, 16, 16)
    cond2 = cond.clone()
    cond2[:, :3, 0] += 1
    with torch.no_grad():
        a, b = unet(x, 500, cond), unet(x, 500, cond2)
    assert (a[:, :, 2] - b[:, :, 2]).abs().max() > 1e-4


def test_noise_level_reaches_the_time_embedding():
    unet = tiny_unet("upscale")
    emb = unet.video.unet.time_embedding
    assert isinstance(emb, LevelTimeEmbedding)
    x, cond, t = torch.randn(2, 3, 3, 16, 16), torch.randn(2, 3, 3, 16, 16), torch.tensor([100, 100])
    captured = {}
    emb.register_forward_hook(lambda m, i, o: captured.update(inp=i[0], out=o))
    with torch.no_grad():
        a = unet(x, t, cond, noise_level=torch.tensor([0.0, 0.5]))
        # Reference: the spatial timestep embedding plus diffusers' Timesteps + TimestepEmbedding of 1000 * level.
        level = torch.tensor([0.0, 0.5]).repeat_interleave(3)  # (B*F,)
        proj = Timesteps(emb.level.linear_1.in_features, True, 0)(level * 1000)
        ref = emb.spatial(captured["inp"]) + emb.level(proj)
        torch.testing.assert_close(captured["out"], ref)
        b = unet(x, t, cond, noise_level=torch.tensor([0.3, 0.5]))
    assert (a[0] - b[0]).abs().max() > 1e-5  # sample 0's level changed: its prediction changed
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=1e-6)  # sample 1's did not


def test_level_embedding_is_zero_at_init_and_learns():
    unet = tiny_unet("upscale", randomize_zero_init=False)
    x, cond = torch.randn(1, 3, 2, 16, 16), torch.randn(1, 3, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(unet(x, 5, cond, noise_level=0.0), unet(x, 5, cond, noise_level=0.9), rtol=0, atol=0)
    unet(x, 5, cond, noise_level=0.9).pow(2).mean().backward()
    assert unet.video.unet.time_embedding.level.linear_2.weight.grad.abs().max() > 0


def test_level_is_required_exactly_where_it_is_an_input():
    up, it = tiny_unet("upscale"), tiny_unet("interpolate")
    with pytest.raises(T2VError, match="needs noise_level"):
        up(torch.randn(1, 3, 2, 16, 16), 5, torch.randn(1, 3, 2, 16, 16))
    with pytest.raises(T2VError, match="takes no noise level"):
        it(torch.randn(1, 3, 2, 16, 16), 5, torch.randn(1, 4, 2, 16, 16), noise_level=0.1)


def test_augmentation_is_diffusers_forward_process():
    sched = DDPMScheduler.from_config(PIXEL_SCHEDULE)
    x, noise = torch.randn(3, 3, 2, 8, 8), torch.randn(3, 3, 2, 8, 8)
    level = torch.tensor([0.0, 0.25, 1.0])
    out = augment_condition(sched.alphas_cumprod, x, level, noise)
    torch.testing.assert_close(out[0], x[0], rtol=0, atol=0)  # level 0: untouched
    steps = torch.tensor([250, 999])  # round(level * 999)
    torch.testing.assert_close(out[1:], sched.add_noise(x[1:], noise[1:], steps), rtol=1e-5, atol=1e-6)
    with pytest.raises(T2VError, match=r"in \[0, 1\]"):
        augment_condition(sched.alphas_cumprod, x, torch.tensor([0.1, 0.2, 1.5]), noise)


def test_upsample_is_bilinear_per_frame():
    v = torch.randn(2, 3, 4, 5, 6)
    up = upsample(v, 2)
    for f in range(4):
        ref = torch.nn.functional.interpolate(v[:, :, f], scale_factor=2, mode="bilinear", align_corners=False)
        torch.testing.assert_close(up[:, :, f], ref)


def test_save_and_load_round_trip(tmp_path):
    from t2v.pipelines.cascade import CascadeStage, save_stage

    unet = tiny_unet("upscale")
    save_stage(tmp_path / "sr", unet, dict(PIXEL_SCHEDULE), {"noise_level": 0.2})
    stage = CascadeStage.from_pretrained(tmp_path / "sr", "upscale")
    assert stage.defaults["noise_level"] == 0.2 and stage.scheduler_config["prediction_type"] == "v_prediction"
    x, cond = torch.randn(1, 3, 2, 16, 16), torch.randn(1, 3, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(stage.unet(x, 9, cond, noise_level=0.2), unet(x, 9, cond, noise_level=0.2), rtol=0, atol=0)
    with pytest.raises(T2VError, match="not interpolate"):
        CascadeStage.from_pretrained(tmp_path / "sr", "interpolate")
    with pytest.raises(T2VError, match="no unet/config.json"):
        CascadeStage.from_pretrained(tmp_path, "upscale")


def naive_blend(video: torch.Tensor, known: list[int]) -> torch.Tensor:
    """Reference: a loop over frames, nearest known frames on each side."""
    out = video.clone()
    for t in range(video.shape[2]):
        if t in known:
            continue
        a = max([k for k in known if k < t], default=None)
        b = min([k for k in known if k > t], default=None)
        if a is None or b is None:
            out[:, :, t] = video[:, :, a if b is None else b]
        else:
            w = (t - a) / (b - a)
            out[:, :, t] = (1 - w) * video[:, :, a] + w * video[:, :, b]
    return out


@pytest.mark.parametrize("known", [[0, 4, 8], [0, 2, 4, 6, 8], [1, 2, 7], [3]])
def test_blend_neighbours_matches_a_loop(known):
    from t2v.pipelines.cascade import blend_neighbours

    video = torch.randn(2, 3, 9, 4, 4)
    mask = torch.zeros(9, dtype=torch.bool)
    mask[known] = True
    torch.testing.assert_close(blend_neighbours(video, mask), naive_blend(video, known))


def test_residual_stages_add_their_reference(tmp_path):
    from t2v.pipelines.cascade import CascadeStage, blend_neighbours, interpolate, save_stage, upsample, upscale

    for task in ("interpolate", "upscale"):
        unet = tiny_unet(task)
        save_stage(tmp_path / task / "plain", unet, dict(PIXEL_SCHEDULE))
        unet.register_to_config(residual=True)
        save_stage(tmp_path / task / "residual", unet, dict(PIXEL_SCHEDULE))
    keys = torch.rand(1, 3, 3, 16, 16) * 0.5 - 0.25
    plain = CascadeStage.from_pretrained(tmp_path / "interpolate" / "plain", "interpolate")
    res = CascadeStage.from_pretrained(tmp_path / "interpolate" / "residual", "interpolate")
    assert res.unet.config.residual and not plain.unet.config.get("residual", False)
    a, b = interpolate(plain, keys, 2, steps=2), interpolate(res, keys, 2, steps=2)
    known = torch.arange(5) % 2 == 0
    clip = torch.zeros(1, 3, 5, 16, 16)
    clip[:, :, known] = keys
    # On the frames made, where the plain sample is not clamped: residual = plain sample + blend.
    expected = (a + blend_neighbours(clip, known)).clamp(-1, 1)
    ok = (a.abs() < 0.999) & ~known.view(1, 1, 5, 1, 1)
    assert ok.sum() > 1000
    torch.testing.assert_close(b[ok], expected[ok], rtol=0, atol=1e-5)
    torch.testing.assert_close(b[:, :, known], keys, rtol=0, atol=0)
    video = torch.rand(1, 3, 2, 8, 8) * 0.5 - 0.25
    plain = CascadeStage.from_pretrained(tmp_path / "upscale" / "plain", "upscale")
    res = CascadeStage.from_pretrained(tmp_path / "upscale" / "residual", "upscale")
    a, b = upscale(plain, video, steps=2), upscale(res, video, steps=2)
    ok = a.abs() < 0.999
    torch.testing.assert_close(b[ok], (a + upsample(video, 2)).clamp(-1, 1)[ok], rtol=0, atol=1e-5)


def test_warm_start_widens_temporal_kernels_without_changing_the_output():
    from cascade_helpers import TINY

    from t2v.models.cascade_unet import CascadeUNet, warm_start

    trained = tiny_unet("interpolate")  # temporal kernels (3, 1, 1), every weight random
    wide = CascadeUNet(task="interpolate", **{**TINY, "resblock_kernel": (3, 3, 3)}).eval()
    widened = warm_start(wide, trained)
    assert widened and all(name.endswith("weight") for name in widened)
    x, cond = torch.randn(2, 3, 5, 16, 16), torch.randn(2, 4, 5, 16, 16)
    t = torch.tensor([999, 10])
    with torch.no_grad():
        torch.testing.assert_close(wide(x, t, cond), trained(x, t, cond), rtol=0, atol=1e-5)
    w = wide.state_dict()[widened[0]]  # trained taps at the centre, zeros around
    torch.testing.assert_close(w[:, :, :, 1, 1], trained.state_dict()[widened[0]][:, :, :, 0, 0], rtol=0, atol=0)
    assert w[:, :, :, 0].abs().sum() == 0 and w[:, :, :, :, 2].abs().sum() == 0
    with pytest.raises(T2VError, match="norm_num_groups"):
        warm_start(CascadeUNet(task="interpolate", **{**TINY, "norm_num_groups": 2}), trained)
    with pytest.raises(T2VError, match="only a temporal kernel may grow"):
        warm_start(tiny_unet("interpolate"), CascadeUNet(task="interpolate", **{**TINY, "resblock_kernel": (3, 3, 3)}))
