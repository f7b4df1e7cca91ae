"""A model folder whose vae/ is a `TemporalAutoencoder` (Video LDM's temporally fine-tuned decoder, as
Stable Video Diffusion's vae/ is diffusers' AutoencoderKLTemporalDecoder): it loads through the generic
pipeline, encodes exactly as its image VAE, decodes each clip in one call, and training from it keeps it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from diffusers import AutoencoderKL

from t2v.models import TemporalAutoencoder
from t2v.pipelines import TextToVideoPipeline
from t2v.pipelines.model_folder import folder_vae_factor, load_model_folder, read_image_vae_config


def _with_temporal_vae(src, dst, perturb: bool):
    folder = shutil.copytree(src, dst)
    model = TemporalAutoencoder.from_vae(AutoencoderKL.from_pretrained(folder / "vae"))
    if perturb:  # the temporal layers start as the identity; make them matter
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in model.temporal_parameters().values():
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    shutil.rmtree(folder / "vae")
    model.save_pretrained(folder / "vae")
    return folder


@pytest.fixture(scope="module")
def temporal_folder(video_model, tmp_path_factory):
    return _with_temporal_vae(video_model, tmp_path_factory.mktemp("tvae") / "model", perturb=True)


def test_identity_temporal_decoder_samples_the_image_models_video(video_model, tmp_path):
    """At init (temporal layers = identity) the folder generates what the AutoencoderKL folder does."""
    kw = dict(num_frames=4, num_inference_steps=2, seed=5, progress=False)
    plain = TextToVideoPipeline.from_pretrained(video_model)(["a red circle"], **kw)
    same = TextToVideoPipeline.from_pretrained(_with_temporal_vae(video_model, tmp_path / "m", perturb=False))(["a red circle"], **kw)
    torch.testing.assert_close(same, plain, rtol=0, atol=1e-5)


def test_encodes_as_the_image_vae_and_decodes_whole_clips(temporal_folder, video_model):
    pipe, plain = TextToVideoPipeline.from_pretrained(temporal_folder), TextToVideoPipeline.from_pretrained(video_model)
    assert isinstance(pipe.vae, TemporalAutoencoder) and pipe.vae_factor == plain.vae_factor == 2
    assert read_image_vae_config(temporal_folder)["latent_channels"] == 4 and folder_vae_factor(temporal_folder) == 2
    video = torch.rand(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    latents = pipe.encode_video(video)
    torch.testing.assert_close(latents, plain.encode_video(video), rtol=0, atol=0)  # the same frozen encoder

    scale = pipe.vae.scaling_factor
    full = pipe.decode_latents(latents)
    with torch.no_grad():
        reference = pipe.vae.decode(latents / scale).clamp(-1, 1)  # both clips in one call of the model itself
        frame_by_frame = pipe.vae.to_vae().decode(latents.transpose(1, 2).flatten(0, 1) / scale).sample
    torch.testing.assert_close(full, reference, rtol=0, atol=1e-5)
    assert full.shape == (2, 3, 4, 16, 16)
    torch.testing.assert_close(pipe.decode_latents(latents[1:]), full[1:], rtol=0, atol=1e-5)  # clips independent

    skipped = pipe.decode_latents(latents, image_only=True)  # the ablation: the image decoder frame by frame
    frame_by_frame = frame_by_frame.clamp(-1, 1).unflatten(0, (2, 4)).transpose(1, 2)
    torch.testing.assert_close(skipped, frame_by_frame, rtol=0, atol=1e-5)
    assert (full - skipped).abs().max() > 1e-2  # the (perturbed) temporal layers do change the decode


def test_wrong_latent_channels_named(temporal_folder, tmp_path):
    from t2v.errors import T2VError

    folder = shutil.copytree(temporal_folder, tmp_path / "m")
    cfg = json.loads((folder / "vae" / "config.json").read_text())
    cfg["vae_config"]["latent_channels"] = 8
    (folder / "vae" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(T2VError, match=r"vae: .* has 8 latent channels but the U-Net takes 4") as e:
        load_model_folder(folder)
    assert "\n" not in str(e.value)


def test_training_uses_its_image_vae_and_exports_the_temporal_one(temporal_folder, tmp_path):
    from t2v.training.export import write_model_folder
    from t2v.training.parts import _image_vae, find_vae

    assert find_vae(temporal_folder) == (temporal_folder / "vae", "TemporalAutoencoder")
    vae, folder = _image_vae(*find_vae(temporal_folder))
    assert isinstance(vae, AutoencoderKL) and folder == temporal_folder / "vae"
    temporal = TemporalAutoencoder.from_pretrained(temporal_folder / "vae")
    for name, p in vae.encoder.state_dict().items():
        assert torch.equal(p, temporal.vae.encoder.state_dict()[name])
    assert find_vae(tmp_path) is None  # no config.json: neither kind

    parts = load_model_folder(temporal_folder)
    out = write_model_folder(tmp_path / "out", unet=parts.unet, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer,
                             schedule=dict(parts.scheduler_config), vae=vae, vae_folder=folder)
    assert json.loads((out / "model_index.json").read_text())["vae"] == ["t2v.models", "TemporalAutoencoder"]
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == \
        (temporal_folder / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert isinstance(load_model_folder(out).vae, TemporalAutoencoder)
