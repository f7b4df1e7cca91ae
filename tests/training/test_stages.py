"""The stages as configs of one loop, checked against what each must (not) change.

image -> video: the image stage writes a 2D model folder; the video stage inflates it with
Make-A-Video and trains only the recipe's parameters: the 2D parent inside the result is the image
model bit for bit. VDM joint training: with every sample an image, the temporal layers get no
gradient and stay at their initial values while the spatial ones train. Latent space through a
VAE with Video LDM; gradient checkpointing gives the same weights as without; accumulation counts
optimizer steps; bf16 autocast runs on CPU.
"""

from __future__ import annotations

import glob
import json

import pytest
import torch
from safetensors.torch import load_file

from sd_fixture import make_tiny_sd
from t2v.data.video_io import read_video
from t2v.errors import T2VError
from t2v.models import load_unet2d, load_video_unet
from t2v.pipelines import TextToVideoPipeline
from t2v.training.checkpoint import checkpoint_name
from t2v.training.loop import train
from t2v.training.parts import build_parts
from training_helpers import safetensors_equal, tiny_config

# Parts and noise schedule from model.pretrained (tiny_test.yaml builds fresh ones and sets a schedule).
FROM_FOLDER = {"model.unet": None, "model.text_encoder": None, "diffusion.prediction_type": None,
               "diffusion.beta_schedule": None, "diffusion.beta_start": None, "diffusion.beta_end": None,
               "diffusion.num_train_timesteps": None}


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """The image stage, 6 steps, v-prediction, samples at step 6."""
    out = tmp_path_factory.mktemp("image")
    torch.set_num_threads(1)
    config = tiny_config(out, max_steps=6, **{"diffusion.prediction_type": "v_prediction", "logging.sample_every": 6,
                                              "logging.sample_steps": 2, "logging.every": 2, "checkpoint.every": 0})
    return out, train(config)


def test_image_stage_writes_a_2d_model_folder(image_run):
    out, result = image_run
    model = out / "model"
    assert result.output == model and result.step == 6
    unet = load_unet2d(model)
    assert unet.config.in_channels == 3 and unet.config.sample_size == 16
    sched = json.loads((model / "scheduler" / "scheduler_config.json").read_text())
    assert sched["_class_name"] == "DDIMScheduler" and sched["prediction_type"] == "v_prediction"
    assert (sched["beta_schedule"], sched["beta_start"], sched["beta_end"]) == ("linear", 0.0001, 0.02)
    tok = json.loads((model / "tokenizer" / "tokenizer_config.json").read_text())
    assert tok["model_max_length"] == 16  # model.text_encoder.max_length
    index = json.loads((model / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"] and "vae" not in index and not (model / "vae").exists()


def test_image_stage_logs_scalars_and_samples(image_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, result = image_run
    events = EventAccumulator(glob.glob(str(out / "logs" / "events.*"))[0])
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "train/grad_norm", "train/it_per_s", "data/skipped"} <= set(tags["scalars"])
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [2, 4, 6]
    # The logged value is the mean loss of the steps since the last log.
    assert losses[-1].value == pytest.approx(sum(result.losses[4:6]) / 2, rel=1e-6)
    lrs = [e.value for e in events.Scalars("train/lr")]
    assert lrs == pytest.approx([1e-3 * 2 / 5, 1e-3 * 4 / 5, 1e-3])  # linear warmup over 5 steps, then constant
    assert tags["images"] == ["samples"]
    frames, _ = read_video(out / "samples" / f"step-{6:08d}.mp4")
    assert frames.shape[0] == 1 and frames.shape[-1] == 3  # one frame (image stage), captions under 2 samples


@pytest.fixture(scope="module")
def video_run(image_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("video")
    config = tiny_config(out, stage="video", max_steps=3, **FROM_FOLDER, **{
        "model.pretrained": str(image_run[0] / "model"), "model.recipe": "make-a-video", "checkpoint.every": 3})
    return out, train(config)


def test_video_stage_trains_only_the_recipes_parameters(image_run, video_run):
    out, result = video_run
    video = load_video_unet(out / "model")
    assert video.recipe.name == "make-a-video"
    parent = load_unet2d(image_run[0] / "model").state_dict()
    assert all(torch.equal(v, parent[k]) for k, v in video.to_unet2d().state_dict().items())
    # The raw weights in the last checkpoint: the recipe's parameters moved, nothing else did.
    trained = load_file(str(out / "checkpoints" / checkpoint_name(3) / "model.safetensors"))
    from t2v.models import inflate

    init = inflate(load_unet2d(image_run[0] / "model"), "make-a-video")
    init_sd, recipe = init.state_dict(), set(init.trainable_parameters())
    changed = {k for k, v in trained.items() if not torch.equal(v, init_sd[k])}
    assert changed and changed <= recipe
    assert len(changed) > 0.5 * len(recipe)
    te, te_image = (load_file(str(p / "model" / "text_encoder" / "model.safetensors")) for p in (out, image_run[0]))
    assert all(torch.equal(te[k], te_image[k]) for k in te)  # frozen in the video stage


def test_video_model_folder_loads_in_the_pipeline(video_run):
    pipe = TextToVideoPipeline.from_pretrained(video_run[0] / "model")
    assert pipe.scheduler_config["prediction_type"] == "v_prediction"  # inherited from the image stage
    video = pipe(["a red circle moving right"], num_frames=4, num_inference_steps=2, progress=False)
    assert video.shape == (1, 3, 4, 16, 16) and torch.isfinite(video).all()


def test_vdm_image_samples_leave_temporal_layers_untouched(tmp_path):
    # image_fraction 1: every sample is F independent frames with temporal attention masked.
    out = tmp_path / "run"
    config = tiny_config(out, stage="video", max_steps=3, **{
        "model.recipe": "vdm", "data.num_frames": 4, "data.batch_size": 2, "data.image_fraction": 1.0,
        "optim.weight_decay": 0.0, "checkpoint.every": 3})
    train(config)
    trained = load_file(str(out / "checkpoints" / checkpoint_name(3) / "model.safetensors"))
    torch.manual_seed(config.seed)
    init = build_parts(config).unet.state_dict()
    temporal = [k for k in init if ".temporal." in k]
    spatial = [k for k in init if ".temporal." not in k]
    assert temporal
    assert all(torch.equal(trained[k], init[k]) for k in temporal)
    assert sum(not torch.equal(trained[k], init[k]) for k in spatial) > 0.9 * len(spatial)


def test_latent_video_ldm_from_a_stable_diffusion_folder(tmp_path):
    sd = make_tiny_sd(tmp_path / "sd", latent=True)
    out = tmp_path / "run"
    config = tiny_config(out, stage="video", max_steps=2, **FROM_FOLDER, **{
        "model.pretrained": str(sd), "model.recipe": "video-ldm", "data.num_frames": 4, "data.batch_size": 2,
        "checkpoint.every": 0})
    result = train(config)
    model = result.output
    assert (model / "vae" / "config.json").is_file()
    sched = json.loads((model / "scheduler" / "scheduler_config.json").read_text())
    assert (sched["beta_schedule"], sched["beta_end"]) == ("scaled_linear", 0.012)  # the SD folder's schedule
    pipe = TextToVideoPipeline.from_pretrained(model)
    assert pipe.unet.recipe.name == "video-ldm" and pipe.vae is not None
    video = pipe(["a red circle"], num_frames=4, num_inference_steps=2, progress=False)
    assert video.shape == (1, 3, 4, 16, 16)  # 8x8 latents, VAE factor 2


def test_gradient_checkpointing_gives_the_same_weights(tmp_path):
    runs = {}
    for flag in (False, True):
        out = tmp_path / f"gc-{flag}"
        train(tiny_config(out, stage="video", max_steps=2, **{
            "model.recipe": "make-a-video", "data.num_frames": 4, "data.batch_size": 2,
            "model.gradient_checkpointing": flag, "checkpoint.every": 2}))
        runs[flag] = out / "checkpoints" / checkpoint_name(2) / "model.safetensors"
    equal, diff = safetensors_equal(runs[False], runs[True])
    assert equal, diff  # recomputation runs the same kernels on the same inputs: bit-equal on CPU


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    out = tmp_path / "run"
    train(tiny_config(out, max_steps=3, gradient_accumulation=2, **{"checkpoint.every": 3}))
    ck = out / "checkpoints" / checkpoint_name(3)
    state = json.loads((ck / "state.json").read_text())
    assert state["stream"]["batch"] == 6  # 2 batches per optimizer step
    assert torch.load(ck / "scheduler.bin", weights_only=False)["last_epoch"] == 3
    assert torch.load(ck / "custom_checkpoint_0.pkl", weights_only=False)["optimization_step"] == 3


def test_bf16_autocast_on_cpu(tmp_path):
    result = train(tiny_config(tmp_path / "run", max_steps=2, mixed_precision="bf16", **{"checkpoint.every": 0}))
    assert result.step == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    assert load_unet2d(result.output).dtype == torch.float32  # master weights and the saved model stay fp32


def test_fp16_on_a_cpu_is_a_one_line_error(tmp_path):
    from t2v.errors import T2VError

    with pytest.raises(T2VError, match="fp16 needs a GPU"):
        train(tiny_config(tmp_path / "run", mixed_precision="fp16"))


def test_recipe_options_change_the_inflated_layers(tmp_path):
    sd = make_tiny_sd(tmp_path / "sd", latent=True)
    config = tiny_config(tmp_path / "run", stage="video", max_steps=1, **FROM_FOLDER, **{
        "model.pretrained": str(sd), "model.recipe": "video-ldm", "data.num_frames": 4, "data.batch_size": 1,
        "checkpoint.every": 0, "model.recipe_options": {"temporal_cross_attention": True, "temporal_frame_positions": True,
                                 "temporal_resblock_condition": True, "resblock_kernel": [3, 3, 3]}})
    model = train(config).output
    unet = TextToVideoPipeline.from_pretrained(model).unet
    assert unet.recipe.temporal_cross_attention and unet.recipe.temporal_frame_positions and unet.recipe.resblock_kernel == (3, 3, 3)
    shapes = {n: p.shape for n, p in unet.named_parameters()}
    assert any(n.endswith("temporal.to_kv_text.weight") for n in shapes)
    assert "temporal.pool_query" in shapes and any(n.endswith("temporal.emb_proj.weight") for n in shapes)
    assert all(s[2:] == (3, 3, 3) for n, s in shapes.items() if n.endswith("temporal.conv1.weight"))


def test_recipe_options_add_layers_to_a_trained_video_model(video_run, tmp_path):
    """Options on a trained video U-Net's folder continue it with the added layers (zero positions: the
    same function until trained), instead of being ignored; options that would drop or reshape its
    trained weights are a one-line error."""
    folder = video_run[0] / "model"
    trained = load_video_unet(folder)
    config = tiny_config(tmp_path / "run", stage="video", **FROM_FOLDER, **{
        "model.pretrained": str(folder), "model.recipe": "make-a-video", "model.recipe_options": {"temporal_positions": True}})
    unet = build_parts(config).unet
    assert unet.recipe.temporal_positions and not trained.recipe.temporal_positions
    new = unet.state_dict()
    added = set(new) - set(trained.state_dict())
    assert added and all(".clip_pos.proj." in k for k in added)
    assert all(torch.equal(new[k], v) for k, v in trained.state_dict().items())
    x, text = torch.randn(1, trained.config.in_channels, 3, 8, 8), torch.randn(1, 5, trained.config.cross_attention_dim)
    with torch.no_grad():
        torch.testing.assert_close(unet(x, 500, text), trained(x, 500, text), atol=1e-6, rtol=0)
    assert build_parts(tiny_config(tmp_path / "same", stage="video", **FROM_FOLDER, **{
        "model.pretrained": str(folder), "model.recipe": "make-a-video"})).unet.recipe == trained.recipe
    with pytest.raises(T2VError, match="options may only add layers") as e:
        build_parts(tiny_config(tmp_path / "bad", stage="video", **FROM_FOLDER, **{
            "model.pretrained": str(folder), "model.recipe": "make-a-video", "model.recipe_options": {"temporal_conv_kernel": 5}}))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("options, fragment", [
    ({"resblock_kernel": [3, 2, 2]}, "three odd sizes"),
    ({"temporal_cross_atention": True}, "'model.recipe_options.temporal_cross_attention'"),
])
def test_bad_recipe_options_are_one_line_errors(tmp_path, options, fragment):
    sd = make_tiny_sd(tmp_path / "sd", latent=True)
    with pytest.raises(T2VError) as e:
        config = tiny_config(tmp_path / "run", stage="video", max_steps=1, **FROM_FOLDER, **{
            "model.pretrained": str(sd), "model.recipe": "video-ldm", "model.recipe_options": options})
        train(config)
    assert fragment in str(e.value) and "\n" not in str(e.value)
