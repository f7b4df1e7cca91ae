"""ST-Attn's shortcut for frames 0 and 1 (their keys [frame 0, frame 0] taken once) against the naive gather."""

from __future__ import annotations

import pytest
import torch

from t2v.layers import SparseCausalAttnProcessor
from test_sparse_causal import make_attn, naive_st_attn


@pytest.mark.parametrize("frames", [2, 3, 6])
def test_any_frame_count_equals_naive_gather(frames):
    attn = make_attn()
    attn.set_processor(SparseCausalAttnProcessor(frames))
    x = torch.randn(3 * frames, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), naive_st_attn(attn, x, frames), atol=1e-5, rtol=1e-5)


def test_gradients_equal_naive_gather():
    attn, frames = make_attn(), 4
    x = torch.randn(2 * frames, 5, 16)
    grads = []
    for run in (lambda: SparseCausalAttnProcessor(frames)(attn, x), lambda: naive_st_attn(attn, x, frames)):
        attn.zero_grad()
        run().square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in attn.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and {"to_q.weight", "to_k.weight", "to_v.weight"} <= grads[0].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], atol=1e-4, rtol=1e-4)


def test_mixed_batch_image_clips_attend_to_themselves():
    attn, frames = make_attn(), 4
    x = torch.randn(3 * frames, 5, 16)
    keep = torch.tensor([True, False, True])
    with torch.no_grad():
        y = SparseCausalAttnProcessor(lambda: (frames, keep))(attn, x)
        video = naive_st_attn(attn, x, frames)
        image = naive_st_attn(attn, x, 1)  # every frame its own clip: keys [x_i, x_i]
    torch.testing.assert_close(y[:frames], video[:frames], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y[frames:2 * frames], image[frames:2 * frames], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y[2 * frames:], video[2 * frames:], atol=1e-5, rtol=1e-5)
