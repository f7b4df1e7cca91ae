"""The model contract with a real diffusers U-Net passed as is: output unwrapping, loss gradients, CFG."""

from __future__ import annotations

import pytest
import torch
from analytic_denoiser import SCHEDULE
from diffusers import DDPMScheduler, UNet2DConditionModel

from t2v.diffusion.denoiser import predict
from t2v.diffusion.loss import diffusion_loss
from t2v.diffusion.sampling import sample
from t2v.diffusion.schedulers import make_scheduler


@pytest.fixture(scope="module")
def unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8,
    )


def test_predict_unwraps_diffusers_outputs(unet):
    x, ctx = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 16)
    with torch.no_grad():
        ref = unet(x, torch.tensor([10, 500]), encoder_hidden_states=ctx).sample
        out = predict(unet, x, torch.tensor([10, 500]), {"encoder_hidden_states": ctx})
        scalar_t = predict(unet, x, torch.tensor(10), {"encoder_hidden_states": ctx})
        ref_10 = unet(x, torch.tensor([10, 10]), encoder_hidden_states=ctx).sample
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(scalar_t, ref_10, rtol=0, atol=0)  # a scalar t is broadcast to (B,)


def test_loss_trains_every_parameter(unet):
    sch = DDPMScheduler.from_config(SCHEDULE)
    x0 = torch.randn(2, 4, 8, 8)
    out = diffusion_loss(unet, sch, x0, {"encoder_hidden_states": torch.randn(2, 5, 16)},
                         generator=torch.Generator().manual_seed(0), snr_gamma=5.0)
    unet.zero_grad()
    out.loss.backward()
    grads = [p.grad for p in unet.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0
    unet.zero_grad()


def test_guided_sampling_with_a_unet_is_seeded(unet):
    cond = {"encoder_hidden_states": torch.randn(2, 5, 16)}
    uncond = {"encoder_hidden_states": torch.zeros(2, 5, 16)}

    def run(seed, scale):
        return sample(unet, make_scheduler("dpm++", SCHEDULE), shape=(2, 4, 8, 8), cond=cond, uncond=uncond,
                      guidance_scale=scale, num_inference_steps=4, generator=torch.Generator().manual_seed(seed),
                      progress=False)

    assert torch.equal(run(0, 7.5), run(0, 7.5))
    assert not torch.equal(run(0, 7.5), run(1, 7.5))
    assert not torch.equal(run(0, 7.5), run(0, 1.0))  # guidance changes the result
