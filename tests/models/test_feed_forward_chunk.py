"""CPU feed-forward chunking of the wrapped spatial transformers: exact, and chunks that divide the batch."""

from __future__ import annotations

import pytest
import torch

import t2v.models.video_blocks as video_blocks
from t2v.models import inflate
from t2v.models.video_blocks import feed_forward_chunk
from unet_refs import clip_batch, per_frame


def test_chunk_size_rule():
    cpu = torch.device("cpu")
    # 2 MiB of GEGLU output per chunk: 64 channels -> 1024 rows, 128 -> 512, 256 -> 256.
    assert feed_forward_chunk(16, 64, 32 * 32, cpu) == 1
    assert feed_forward_chunk(16, 128, 16 * 16, cpu) == 2
    assert feed_forward_chunk(16, 256, 8 * 8, cpu) == 4
    assert feed_forward_chunk(24, 128, 16 * 16, cpu) == 2
    assert feed_forward_chunk(15, 256, 8 * 8, cpu) == 3  # the largest divisor of the batch below 4
    assert feed_forward_chunk(4, 256, 8 * 8, cpu) is None  # the whole batch fits: no chunking
    assert feed_forward_chunk(16, 64, 32 * 32, torch.device("meta")) is None  # CPU only
    for batch in range(1, 40):
        chunk = feed_forward_chunk(batch, 64, 24 * 24, cpu)
        assert chunk is None or (batch % chunk == 0 and chunk * 24 * 24 * 64 * 32 <= 2 * video_blocks.FF_CHUNK_BYTES)


@pytest.mark.parametrize("name", ["vdm", "tune-a-video"])
def test_chunked_feed_forward_is_exact(unet2d, name, monkeypatch):
    model = inflate(unet2d, name)
    for p in model.added_parameters().values():
        torch.nn.init.normal_(p, std=0.1)
    x, t, text = clip_batch(b=2, f=3)
    seen = []

    def record(*args):
        seen.append(args)
        return 1 if args[-1].type == "cpu" else None

    with torch.no_grad():
        monkeypatch.setattr(video_blocks, "feed_forward_chunk", lambda *args: None)
        whole = model(x, t, text)
        whole_image = model(x, t, text, image_only=True)
        monkeypatch.setattr(video_blocks, "feed_forward_chunk", record)  # one frame at a time
        chunked = model(x, t, text)
        chunked_image = model(x, t, text, image_only=True)
        ref = per_frame(unet2d, x, t, text)
    assert seen and all(args[0] == 2 * 3 for args in seen)  # asked with B*F frames
    assert torch.equal(chunked, whole)
    assert torch.equal(chunked_image, whole_image) and torch.equal(chunked_image, ref)
