"""I3D: DeepMind's 230 variables one to one, TF 'SAME' semantics, and the two weight files users have."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from t2v.errors import T2VError
from t2v.models.i3d import (
    I3D,
    MaxPoolSame,
    from_deepmind_names,
    from_pytorch_i3d,
    load_i3d,
    num_deepmind_numbers,
    same_padding,
    to_deepmind_names,
    to_pytorch_i3d,
)


def _deepmind_list(assets) -> dict[str, tuple[int, ...]]:
    lines = (assets / "i3d" / "rgb_imagenet_variables.txt").read_text().splitlines()
    assert lines[0] == "230 variables"
    out = {}
    for line in lines[1:]:
        m = re.fullmatch(r"(\S+) \(([\d, ]*)\)", line)
        out[m.group(1)] = tuple(int(s) for s in m.group(2).replace(" ", "").split(",") if s)
    return out


def _randomised(model: I3D, seed: int = 0) -> I3D:
    """Random batch-norm statistics and offsets, so that a mis-mapped tensor shows in the output."""
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    for k, v in sd.items():
        if k.endswith("moving_mean") or k.endswith("beta"):
            v.copy_(torch.randn(v.shape, generator=g) * 0.1)
        elif k.endswith("moving_variance"):
            v.copy_(torch.rand(v.shape, generator=g) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> I3D:
    torch.manual_seed(0)
    return _randomised(I3D())


def test_names_and_shapes_are_deepminds_230_variables(model, assets):
    reference = _deepmind_list(assets)
    ours = {k: tuple(v.shape) for k, v in to_deepmind_names(model.state_dict()).items()}
    assert len(reference) == 230
    assert sorted(set(reference) - set(ours)) == []  # missing
    assert sorted(set(ours) - set(reference)) == []  # extra
    assert {k: v for k, v in ours.items() if reference[k] != v} == {}  # mis-shaped
    assert sum(math.prod(s) for s in reference.values()) == 12_704_544
    assert num_deepmind_numbers(model) == 12_704_544


def test_deepmind_layout_round_trip_is_exact(model):
    sd = model.state_dict()
    back = from_deepmind_names({k: v.numpy() for k, v in to_deepmind_names(sd).items()})
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    # TF kernels are (t, h, w, in, out): the first conv's (7, 7, 7, 3, 64)
    w = to_deepmind_names(sd)["RGB/inception_i3d/Conv3d_1a_7x7/conv_3d/w"]
    assert torch.equal(w[1, 2, 3, 0, 5], sd["Conv3d_1a_7x7.conv_3d.weight"][5, 0, 1, 2, 3])


def test_same_padding_is_tensorflows():
    # TF: out = ceil(n / s), total pad = max((out - 1) * s + k - n, 0), the extra cell after.
    for n in range(1, 40):
        for k in (1, 2, 3, 7):
            for s in (1, 2):
                out = math.ceil(n / s)
                total = max((out - 1) * s + k - n, 0)
                assert same_padding(n, k, s) == (total // 2, total - total // 2)


def test_max_pool_padding_never_wins():
    # All-negative input: a zero-padded pool would return 0 at the borders; TF's 'SAME' does not.
    x = -torch.rand(1, 1, 3, 5, 5) - 1
    y = MaxPoolSame((3, 3, 3), (1, 1, 1))(x)
    ref = torch.empty_like(x)
    for t in range(3):
        for i in range(5):
            for j in range(5):
                ref[0, 0, t, i, j] = x[0, 0, max(t - 1, 0) : t + 2, max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].max()
    assert torch.equal(y, ref)


def test_forward_16x224_gives_logits_and_pool(model):
    x = torch.rand(1, 3, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        trunk = model.trunk(x)
        logits, pool = model(x), model.features(x, "pool")
    assert trunk.shape == (1, 1024, 2, 7, 7)  # DeepMind's 2x7x7 'VALID' pool covers it exactly
    assert logits.shape == (1, 400) and pool.shape == (1, 1024)
    torch.testing.assert_close(pool, trunk.mean(dim=(2, 3, 4)))
    conv = model.Logits.Conv3d_0c_1x1.conv_3d
    ref = F.conv3d(trunk.mean(dim=(2, 3, 4), keepdim=True), conv.weight, conv.bias).flatten(1)
    torch.testing.assert_close(logits, ref)


def test_smaller_clips_run(model):
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 16, 112, 112)).shape == (2, 400)
        assert model.features(torch.zeros(1, 3, 8, 64, 64), "pool").shape == (1, 1024)


def _pytorch_i3d_names() -> set[str]:
    """pytorch-i3d's state dict keys, enumerated from its module structure (pytorch_i3d.py)."""
    units = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"]
    for m in ["Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "Mixed_5b", "Mixed_5c"]:
        units += [f"{m}.{b}" for b in ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")]
    names = {f"{u}.{leaf}" for u in units for leaf in ("conv3d.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")}
    return names | {"logits.conv3d.weight", "logits.conv3d.bias"}


def test_pytorch_i3d_state_dict_round_trip(model, tmp_path):
    sd = to_pytorch_i3d(model.state_dict())
    assert set(sd) == _pytorch_i3d_names()
    path = tmp_path / "rgb_imagenet.pt"
    torch.save(sd, path)
    loaded = load_i3d(path)
    x = torch.rand(1, 3, 8, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(loaded.features(x, "pool"), model.features(x, "pool"))


def test_pytorch_i3d_batch_norm_scale_is_folded(model):
    sd = to_pytorch_i3d(model.state_dict())
    gamma = torch.rand(64) + 0.5
    sd["Conv3d_1a_7x7.bn.weight"] = gamma
    ours = from_pytorch_i3d(sd)
    x = torch.randn(2, 64, 3, 4, 4)
    m, v, b = sd["Conv3d_1a_7x7.bn.running_mean"], sd["Conv3d_1a_7x7.bn.running_var"], sd["Conv3d_1a_7x7.bn.bias"]
    ref = F.batch_norm(x, m, v, gamma, b, False, 0.0, 1e-3)
    got = F.batch_norm(x, ours["Conv3d_1a_7x7.batch_norm.moving_mean"], ours["Conv3d_1a_7x7.batch_norm.moving_variance"], None,
                       ours["Conv3d_1a_7x7.batch_norm.beta"], False, 0.0, 1e-3)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_deepmind_npz_loads(model, tmp_path):
    path = tmp_path / "rgb_imagenet.npz"
    np.savez(path, **{k: v.numpy() for k, v in to_deepmind_names(model.state_dict()).items()})
    x = torch.rand(1, 3, 8, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(load_i3d(path)(x), model(x))


class _StyleGANVDetector(torch.nn.Module):
    """A TorchScript detector with StyleGAN-V's i3d_torchscript.pt call signature (random weights)."""

    def __init__(self, traced: torch.jit.ScriptModule):
        super().__init__()
        self.i3d = traced

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = F.interpolate(x, size=(x.shape[2], 224, 224), mode="trilinear", align_corners=False)
        logits = self.i3d(x)
        return logits if return_features else torch.softmax(logits, dim=1)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_stylegan_v_torchscript_loads_and_is_called_with_its_signature(model, tmp_path):
    x = torch.rand(1, 3, 8, 64, 64) * 2 - 1
    traced = torch.jit.trace(model, x)
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(_StyleGANVDetector(traced)).save(str(path))
    loaded = load_i3d(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded.features(x, "logits"), model(x))
    with pytest.raises(T2VError, match="only the 400 logits"):
        loaded.features(x, "pool")


def test_missing_weights_say_where_to_get_them(tmp_path):
    with pytest.raises(T2VError, match="rgb_imagenet.pt") as e:
        load_i3d(tmp_path / "nope.pt")
    assert "\n" not in str(e.value)


def test_wrong_state_dict_is_one_line_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(T2VError, match="does not fit I3D"):
        load_i3d(path)
