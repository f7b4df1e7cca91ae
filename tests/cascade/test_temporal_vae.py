"""Video LDM's temporal decoder: identity at init against the image decoder, image_only after
training, weights round trips; the video discriminator and the losses against closed forms."""

from __future__ import annotations

import pytest
import torch
from cascade_helpers import tiny_vae
from diffusers import AutoencoderKL
from einops import rearrange

from t2v.errors import T2VError
from t2v.models.temporal_vae import TemporalAutoencoder
from t2v.models.video_discriminator import VideoDiscriminator
from t2v.pipelines.cascade import default_stage_dir
from t2v.training.cascade import hinge_d_loss, reconstruction_loss


def per_frame_decode(vae: AutoencoderKL, z: torch.Tensor) -> torch.Tensor:
    """Reference: the image decoder on every frame."""
    frames = [vae.decode(z[:, :, f]).sample for f in range(z.shape[2])]  # each (B, 3, H, W)
    return torch.stack(frames, dim=2)


def test_identity_at_init_with_the_shipped_vae():
    vae = AutoencoderKL.from_pretrained(default_stage_dir("image_vae")).eval()
    model = TemporalAutoencoder.from_vae(vae).eval()
    video = torch.rand(1, 3, 5, 64, 64) * 2 - 1
    with torch.no_grad():
        z = model.encode(video)  # (1, 4, 5, 16, 16)
        ref_z = rearrange(vae.encode(rearrange(video, "b c f h w -> (b f) c h w")).latent_dist.mode(), "(b f) c h w -> b c f h w", b=1)
        torch.testing.assert_close(z, ref_z, rtol=0, atol=1e-6)
        torch.testing.assert_close(model.decode(z), per_frame_decode(vae, z), rtol=0, atol=1e-5)


def trained(model: TemporalAutoencoder) -> TemporalAutoencoder:
    """Move every temporal parameter away from its identity init, as training would."""
    with torch.no_grad():
        for p in model.temporal_parameters().values():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def test_image_only_is_the_image_decoder_after_training():
    vae = tiny_vae()
    model = trained(TemporalAutoencoder.from_vae(vae)).eval()
    z = torch.randn(2, 4, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.decode(z, image_only=True), per_frame_decode(vae, z), rtol=0, atol=1e-5)
        assert (model.decode(z) - per_frame_decode(vae, z)).abs().max() > 1e-3  # the temporal layers act


def test_temporal_layers_mix_frames():
    model = trained(TemporalAutoencoder.from_vae(tiny_vae())).eval()
    z = torch.randn(1, 4, 4, 8, 8)
    z2 = z.clone()
    z2[:, :, 0] += 1.0
    with torch.no_grad():
        a, b = model.decode(z), model.decode(z2)
    assert (a[:, :, 1] - b[:, :, 1]).abs().max() > 1e-4  # frame 0's latent changes frame 1's pixels


def test_added_parameters_and_2d_round_trip(tmp_path):
    vae = tiny_vae()
    model = trained(TemporalAutoencoder.from_vae(vae))
    names = list(model.temporal_parameters())
    assert names and all(".temporal." in n or ".merge." in n for n in names)
    assert all(n.startswith("vae.decoder.") for n in names)
    for k, v in vae.state_dict().items():
        torch.testing.assert_close(model.to_vae().state_dict()[k], v, rtol=0, atol=0)
    model.save_pretrained(tmp_path / "tv")
    back = TemporalAutoencoder.from_pretrained(tmp_path / "tv").eval()
    z = torch.randn(1, 4, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(back.decode(z), model.eval().decode(z), rtol=0, atol=0)


def test_latent_noise_is_added_in_scaled_units_before_decoding():
    vae = tiny_vae()
    vae.register_to_config(scaling_factor=0.5)
    model = trained(TemporalAutoencoder.from_vae(vae)).eval()
    video = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    noise = torch.randn(2, 4, 4, 8, 8)
    with torch.no_grad():
        z = model.encode(video)
        torch.testing.assert_close(model(video, latent_noise=noise), model.decode(z + noise / 0.5), rtol=0, atol=0)
        torch.testing.assert_close(model(video, latent_noise=torch.zeros_like(noise)), model(video), rtol=0, atol=0)
        assert (model(video, latent_noise=noise) - model(video)).abs().max() > 1e-3


def test_bad_latents_are_one_line_errors():
    model = TemporalAutoencoder.from_vae(tiny_vae())
    with pytest.raises(T2VError, match="decode takes latents"):
        model.decode(torch.randn(1, 3, 2, 8, 8))
    with pytest.raises(T2VError, match="AutoencoderKL"):
        TemporalAutoencoder.from_vae(torch.nn.Linear(2, 2))


def test_discriminator_sees_space_time_patches():
    d = VideoDiscriminator(channels=8, layers=3)
    out = d(torch.randn(2, 3, 4, 32, 32))
    assert out.shape == (2, 1, 4, 4, 4)
    # A change in frame 0 reaches the logits of frame 1 (3D kernels), not only frame 0's.
    x = torch.randn(1, 3, 4, 32, 32)
    y = x.clone()
    y[:, :, 0] += 1
    with torch.no_grad():
        assert (d(x)[:, :, 1] - d(y)[:, :, 1]).abs().max() > 0


def test_losses_against_closed_forms():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0, 0.5])
    # relu(1 - real): 0, 0.5, 2 -> mean 2.5/3; relu(1 + fake): 0, 1, 1.5 -> mean 2.5/3
    torch.testing.assert_close(hinge_d_loss(real, fake), torch.tensor(5.0 / 3))
    recon, video = torch.zeros(1, 1, 3, 1, 1), torch.tensor([0.0, 1.0, 3.0]).view(1, 1, 3, 1, 1)
    # |e| mean 4/3, e^2 mean 10/3; frame differences of e = (0, -1, -3): (-1, -2) -> mean 1.5
    torch.testing.assert_close(reconstruction_loss(recon, video), torch.tensor(14.0 / 3))
    torch.testing.assert_close(reconstruction_loss(recon, video, temporal_weight=2.0), torch.tensor(14.0 / 3 + 3.0))
