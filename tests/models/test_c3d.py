"""C3D (UCF-101): TGANv2's preprocessing, pool5 geometry, and the chainer / TorchScript weight files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from t2v.errors import T2VError
from t2v.models.c3d import C3D, C3DConfig, C3DUCF101, chainer_to_state_dict, load_c3d, load_mean_clip, state_dict_to_chainer

TINY = C3DConfig(num_classes=101, widths=(4, 8, 8, 16, 16), fc=32)


def _mean_clip(seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).uniform(80, 120, size=(3, 16, 128, 171)).astype(np.float32)


def test_preprocessing_is_tgan2s_chainer_pipeline():
    # TGANv2's c3d_ucf101.py, written as it is there: a 1x1x1 conv swapping R and B and scaling by
    # 128, chainer's bilinear resize (corners aligned) to 112, then + (128 - mean[:, :, 8:120, 8:120]).
    mean = _mean_clip()
    model = C3DUCF101(C3D(TINY), torch.from_numpy(mean[:, :, 8:120, 8:120].copy()))
    video = torch.rand(2, 3, 16, 64, 80) * 2 - 1
    w = torch.zeros(3, 3, 1, 1, 1)
    w[[0, 1, 2], [2, 1, 0]] = 128.0
    x = F.conv3d(video, w)
    b, c, f, h, wd = x.shape
    x = F.interpolate(x.transpose(1, 2).reshape(b * f, c, h, wd), size=(112, 112), mode="bilinear", align_corners=True)
    x = x.reshape(b, f, c, 112, 112).transpose(1, 2)
    ref = x + (128.0 - torch.from_numpy(mean[:, :, 8:120, 8:120].copy()))
    torch.testing.assert_close(model.preprocess(video), ref, rtol=1e-5, atol=1e-3)


def test_pool5_is_1x4x4_and_logits_are_101():
    # 16x112x112 -> pools (1,2,2), then (2,2,2) x4 -> 1x3.5x3.5: Caffe/chainer round up to 1x4x4, so
    # fc6 takes C * 16 inputs (512 * 16 = 8192 in the published network, TGANv2's Linear(512 * 4 * 4, 4096)).
    net = C3D(TINY)
    seen = {}
    net.fc6.register_forward_hook(lambda m, inp, out: seen.update(fc6_in=inp[0].shape))
    assert net(torch.randn(2, 3, 16, 112, 112)).shape == (2, 101)
    assert seen["fc6_in"] == (2, 16 * 1 * 4 * 4)
    assert C3D().fc6.in_features == 8192 and C3D().fc8.out_features == 101


def test_chainer_npz_loads_with_mean_beside(tmp_path):
    torch.manual_seed(0)
    net = C3D(TINY).eval()
    np.savez(tmp_path / "conv3d_deepnetA_ucf.npz", **state_dict_to_chainer(net.state_dict()))
    mean = _mean_clip()
    np.savez(tmp_path / "mean2.npz", mean=mean)
    loaded = load_c3d(tmp_path / "conv3d_deepnetA_ucf.npz")
    ref = C3DUCF101(net, load_mean_clip(tmp_path / "mean2.npz")).eval()
    video = torch.rand(1, 3, 16, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(video), ref(video))
    assert torch.equal(load_mean_clip(tmp_path / "mean2.npz"), torch.from_numpy(mean[:, :, 8:120, 8:120].copy()))


def test_chainer_names_round_trip():
    sd = C3D(TINY).state_dict()
    back = chainer_to_state_dict(state_dict_to_chainer(sd))
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    assert "conv1a/W" in state_dict_to_chainer(sd) and "fc8/b" in state_dict_to_chainer(sd)


def test_missing_mean_or_weights_are_one_line_errors(tmp_path):
    np.savez(tmp_path / "w.npz", **state_dict_to_chainer(C3D(TINY).state_dict()))
    with pytest.raises(T2VError, match="mean2.npz"):
        load_c3d(tmp_path / "w.npz")
    with pytest.raises(T2VError, match="c3d_ucf101.pt"):
        load_c3d(tmp_path / "absent.pt")


class _StyleGANVC3D(torch.nn.Module):
    """A stand-in with StyleGAN-V c3d_ucf101.pt's interface: uint8 (B, 3, 16, H, W) -> probabilities."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 101)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = x.float().mean(dim=(2, 3, 4)) / 255.0
        return torch.softmax(self.proj(feats), dim=1)


def test_stylegan_v_torchscript_gives_log_probabilities(tmp_path):
    path = tmp_path / "c3d_ucf101.pt"
    det = _StyleGANVC3D()
    torch.jit.script(det).save(str(path))
    clf = load_c3d(path)
    u8 = torch.randint(0, 256, (3, 3, 16, 20, 20), dtype=torch.uint8)
    video = u8.float() / 127.5 - 1
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(clf(video), dim=1), det(u8).double(), rtol=1e-6, atol=1e-9)
