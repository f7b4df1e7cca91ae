"""Training configs: YAML presets map field for field onto the dataclasses; unknown keys name the
nearest valid key; --set overrides; bad values are one-line errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from t2v.errors import T2VError
from t2v.training.config import TrainConfig, apply_overrides, config_from_dict, config_to_dict, load_config
from training_helpers import ROOT, TINY, run_t2v

PRESETS = sorted((ROOT / "configs").rglob("*.yaml"))


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_presets_map_field_for_field(preset):
    # Every value written in the YAML is the value of the same-named dataclass field.
    raw = yaml.safe_load(preset.read_text())
    config = load_config(preset)
    assert isinstance(config, TrainConfig)
    typed = _leaves(config_to_dict(config))
    for key, value in _leaves(raw).items():
        expect = float(value) if isinstance(typed[key], float) and isinstance(value, (int, str)) else value
        assert typed[key] == expect, key


def test_the_four_presets_exist():
    assert {p.stem for p in PRESETS} >= {"shapes_image", "shapes_video", "tiny_test", "webvid_video"}


@pytest.mark.parametrize(
    "key, nearest",
    [("optim.lrr", "optim.lr"), ("max_step", "max_steps"), ("data.batchsize", "data.batch_size"),
     ("model.unet.block_out_channel", "model.unet.block_out_channels"), ("ema.decy", "ema.decay")],
)
def test_unknown_key_names_the_nearest(key, nearest):
    data = yaml.safe_load(TINY.read_text())
    node = data
    *path, last = key.split(".")
    for p in path:
        node = node.setdefault(p, {})
    node[last] = 1
    with pytest.raises(T2VError) as e:
        config_from_dict(data)
    msg = str(e.value)
    assert "\n" not in msg
    assert repr(key) in msg and repr(nearest) in msg


def test_unknown_key_in_set_names_the_nearest():
    with pytest.raises(T2VError, match=r"'optim\.warmup_step'.*'optim\.warmup_steps'"):
        apply_overrides({}, ["optim.warmup_step=3"])


def test_set_overrides_parse_yaml_values(tmp_path):
    c = load_config(TINY, ["optim.lr=3e-4", "data.batch_size=2", "model.vae=null", "logging.sample_prompts=[a cat, a dog]",
                           f"output_dir={tmp_path}", "diffusion.snr_gamma=5"])
    assert c.optim.lr == pytest.approx(3e-4) and isinstance(c.optim.lr, float)  # YAML 1.1 reads 3e-4 as a string
    assert c.data.batch_size == 2 and c.model.vae is None and c.diffusion.snr_gamma == 5.0
    assert c.logging.sample_prompts == ("a cat", "a dog")
    assert c.output_dir == str(tmp_path)
    # Untouched values stay those of the file.
    assert c.data.height == yaml.safe_load(TINY.read_text())["data"]["height"]


@pytest.mark.parametrize(
    "override, fragment",
    [("data.batch_size=two", "'data.batch_size' must be an integer"),
     ("optim.lr=fast", "'optim.lr' must be a number"),
     ("stage=audio", "stage must be one of"),
     ("model.unet=3", "'model.unet' must be a section"),
     ("data.caption_dropout=1.5", "caption_dropout must be in [0, 1)"),
     ("model.recipe=vdm", "image stage trains a 2D U-Net"),
     ("diffusion.timestep_distribution=lognormal", "timestep_distribution must be uniform or logit_normal"),
     ("diffusion.logit_std=0", "logit_std must be positive"),
     ("data.random_crop=[0.8, 0.5]", "crop_scale (data.random_crop) must be [lo, hi] with 0 < lo <= hi <= 1"),
     ("data.random_crop=[0.5]", "crop_scale (data.random_crop) must be [lo, hi]"),
     ("optim", "--set takes key.sub=value")],
)
def test_bad_values_are_one_line_errors(override, fragment):
    with pytest.raises(T2VError) as e:
        load_config(TINY, [override])
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_random_crop_and_flip_reach_the_frame_sampling(tmp_path):
    from t2v.training.datasets import frame_sampling

    c = load_config(TINY, ["stage=video", "model.recipe=video-ldm", f"data.dataset={tmp_path}", "data.random_crop=[0.5, 1]", "data.hflip=true"])
    s = frame_sampling(c)
    assert s.crop_scale == (0.5, 1.0) and s.hflip
    with pytest.raises(T2VError, match="random_crop, data.hflip and data.camera_pan are for video files"):
        load_config(TINY, ["data.dataset=shapes", "data.hflip=true"])
    c = load_config(TINY, ["stage=video", "model.recipe=video-ldm", f"data.dataset={tmp_path}", "data.random_crop=[0.8, 0.9]", "data.camera_pan=0.25"])
    assert frame_sampling(c).camera_pan == 0.25
    with pytest.raises(T2VError, match=r"camera_pan \(data.camera_pan\) moves the random crop window"):
        load_config(TINY, ["stage=video", f"data.dataset={tmp_path}", "data.camera_pan=0.25"])


def test_config_is_frozen():
    c = load_config(TINY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.optim.lr = 1.0  # type: ignore[misc]


def test_cli_unknown_key_is_one_line_and_exit_2(tmp_path):
    r = run_t2v("train", str(TINY), "--set", "optim.learning_rate=1", "--set", f"output_dir={tmp_path}")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and "did you mean 'optim.lr'" in lines[0], r.stderr


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(T2VError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: image\nmodel: [unclosed\n")
    with pytest.raises(T2VError, match="not valid YAML at line"):
        load_config(bad)


@pytest.mark.slow
def test_shapes_presets_run_end_to_end(tmp_path):
    # The two ShapesWorld presets as shipped (their real model sizes), a couple of small steps each:
    # the video stage starts from the image stage's output folder.
    from t2v.pipelines import TextToVideoPipeline
    from t2v.training.loop import train

    small = ["max_steps=2", "data.batch_size=2", "checkpoint.every=0", "logging.sample_every=0", "logging.progress=false"]
    image = train(load_config(ROOT / "configs" / "shapes_image.yaml", small + [f"output_dir={tmp_path / 'image'}"]))
    video = train(load_config(ROOT / "configs" / "shapes_video.yaml",
                              small + [f"output_dir={tmp_path / 'video'}", f"model.pretrained={image.output}"]))
    pipe = TextToVideoPipeline.from_pretrained(video.output)
    assert pipe.unet.recipe.name == "make-a-video" and pipe.vae is None
    assert pipe.tokenizer.model_max_length == 16 and pipe.default_size == (32, 32)
    clip = pipe(["a red circle moving right"], num_frames=8, num_inference_steps=2, progress=False)
    assert clip.shape == (1, 3, 8, 32, 32)
