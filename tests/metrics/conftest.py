"""Video files for the metric tests, written and read with PyAV directly.

`t2v.data.video_io` (another area) is the library's reader; until it is in this checkout, the
`video_io` fixture puts a minimal PyAV reader with its signature in its place, for tests only.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch


def write_mp4(path: Path, frames: np.ndarray, fps: int = 8) -> Path:
    """uint8 (F, H, W, 3) -> an H.264 mp4 (H, W even)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps, 1))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def pyav_read(path: Path) -> tuple[torch.Tensor, float]:
    """(uint8 (F, H, W, 3), fps), the signature of t2v.data.video_io.read_video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        fps = float(stream.average_rate or 0)
    return torch.from_numpy(np.stack(frames)), fps


@pytest.fixture
def video_io(monkeypatch):
    """The reader the library will use; a PyAV shim while t2v.data.video_io is not in this checkout."""
    try:
        return importlib.import_module("t2v.data.video_io").read_video
    except ImportError:
        shim = types.ModuleType("t2v.data.video_io")
        shim.read_video = pyav_read
        monkeypatch.setitem(sys.modules, "t2v.data.video_io", shim)
        return pyav_read


def moving_square_video(seed: int, frames: int = 10, size: tuple[int, int] = (32, 48), color=None) -> np.ndarray:
    """A square moving over a plain background: uint8 (F, H, W, 3), different per seed."""
    rng = np.random.RandomState(seed)
    h, w = size
    bg = rng.randint(0, 256, size=3)
    fg = np.array(color) if color is not None else rng.randint(0, 256, size=3)
    out = np.empty((frames, h, w, 3), np.uint8)
    out[:] = bg
    y, x = rng.randint(0, h - 8), rng.randint(0, w - 24)
    for t in range(frames):
        out[t, y : y + 8, x + 2 * t : x + 2 * t + 8] = fg
    return out


@pytest.fixture
def square_video():
    """`moving_square_video` as a fixture (test modules here are not a package)."""
    return moving_square_video


@pytest.fixture
def mp4_writer():
    """`write_mp4` as a fixture."""
    return write_mp4


def calibrate_batch_norms(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Set every batch norm's statistics to those of one batch (a random network's activations
    otherwise shrink layer by layer to denormal floats: slow, and features near zero)."""
    bns = [m for m in model.modules() if hasattr(m, "moving_mean")]
    for m in bns:
        m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(x)
    for m in bns:
        m.momentum = 0.01
    return model.eval()


@pytest.fixture(scope="session")
def random_i3d():
    """A random-weight I3D with batch-norm statistics calibrated on 8x32x32 noise clips."""
    from t2v.models.i3d import I3D

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    return calibrate_batch_norms(I3D(), torch.rand(4, 3, 8, 32, 32, generator=g) * 2 - 1)


def _tiny_tokenizer():
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c + "</w>"] = len(vocab)
    vocab["at</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[("a", "t</w>")])


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A random CLIPModel (32x32 images), its tokenizer and a CLIP preprocessor config."""
    from transformers import CLIPConfig, CLIPModel

    d = tmp_path_factory.mktemp("tiny-clip")
    tok = _tiny_tokenizer()
    torch.manual_seed(0)
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(d)
    tok.save_pretrained(d)
    (d / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32},
        "do_resize": True, "do_center_crop": True, "do_rescale": True, "do_normalize": True, "resample": 3,
        "rescale_factor": 1 / 255, "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    }))
    return d
