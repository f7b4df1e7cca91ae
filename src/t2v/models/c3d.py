"""C3D fine-tuned on UCF-101: the classifier behind the published video Inception Score.

Tran et al., "Learning Spatiotemporal Features with 3D Convolutional Networks" (ICCV 2015), network
"version 1" (8 convolutions 3x3x3, 5 max pools, fc6/fc7 4096, fc8 101), trained on Sports-1M and
fine-tuned on UCF-101 (`c3d_ucf101_finetune_whole_iter_20000`). Saito et al. (TGAN, ICCV 2017 and
TGANv2, IJCV 2020) score videos with it; their chainer port fixes the protocol reproduced here:

1. input: 16 frames, RGB in [-1, 1], any size;
2. every frame resized to 112x112 (bilinear, corners aligned, chainer's `resize_images`);
3. RGB -> BGR and (x + 1) * 128, i.e. pixel values in [0, 256];
4. minus the Sports-1M mean clip `mean2.npz` (3, 16, 128, 171), cropped at [8:120, 8:120];
5. the network; max pools round up (chainer's `cover_all=True`, Caffe's ceil), so pool5 is 1x4x4;
6. softmax over fc8's 101 outputs (IS uses probabilities).

Written from that description (no code copied). Parameter names follow the chainer npz
(`conv1a/W`, `fc8/b`, ...) so `conv3d_deepnetA_ucf.npz` loads by name. StyleGAN-V ships a
TorchScript port of the same model, `c3d_ucf101.pt`, which `load_c3d` also accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from t2v.errors import T2VError

TGAN2_RELEASE = "https://github.com/mitmul/tgan2/releases/download/untagged-d2d4900c6c1bb09d9f5a"
C3D_NPZ_URL = f"{TGAN2_RELEASE}/conv3d_deepnetA_ucf.npz"
C3D_MEAN_URL = f"{TGAN2_RELEASE}/mean2.npz"
STYLEGAN_V_C3D_URL = "https://www.dropbox.com/s/jxpu7avzdc9n97q/c3d_ucf101.pt?dl=1"
WHERE_TO_GET = (
    f"TGANv2's conv3d_deepnetA_ucf.npz + mean2.npz ({TGAN2_RELEASE}/) or StyleGAN-V's c3d_ucf101.pt "
    f"({STYLEGAN_V_C3D_URL})"
)

# The per-channel (B, G, R) means of the Sports-1M mean clip (TGANv2's c3d_ucf101.py, a comment):
# used only when no mean clip is given, an approximation.
SPORTS1M_BGR_MEAN = (90.25164795, 97.65701294, 101.4083252)


@dataclass(frozen=True)
class C3DConfig:
    """Widths of C3D version 1 (defaults: the published network; tests use tiny ones)."""

    num_classes: int = 101
    widths: tuple[int, int, int, int, int] = (64, 128, 256, 512, 512)  # conv1, conv2, conv3, conv4, conv5
    fc: int = 4096


# (name, width index, max pool after it: None, (1, 2, 2) or (2, 2, 2))
_CONVS = [
    ("conv1a", 0, (1, 2, 2)),
    ("conv2a", 1, (2, 2, 2)),
    ("conv3a", 2, None),
    ("conv3b", 2, (2, 2, 2)),
    ("conv4a", 3, None),
    ("conv4b", 3, (2, 2, 2)),
    ("conv5a", 4, None),
    ("conv5b", 4, (2, 2, 2)),
]


class C3D(nn.Module):
    """C3D version 1. Input (B, 3, 16, 112, 112), BGR, mean-subtracted [0, 255] values -> (B, 101) logits."""

    def __init__(self, config: C3DConfig = C3DConfig()):
        super().__init__()
        self.config = config
        cin = 3
        for name, i, _ in _CONVS:
            self.add_module(name, nn.Conv3d(cin, config.widths[i], 3, padding=1))
            cin = config.widths[i]
        self.fc6 = nn.Linear(cin * 1 * 4 * 4, config.fc)  # pool5 output: (C, 1, 4, 4) at 16x112x112
        self.fc7 = nn.Linear(config.fc, config.fc)
        self.fc8 = nn.Linear(config.fc, config.num_classes)

    @staticmethod
    def config_of(state_dict: Mapping[str, Tensor]) -> C3DConfig:
        """The widths a state dict was made with."""
        widths = tuple(state_dict[f"conv{k}a.weight"].shape[0] for k in range(1, 6))
        return C3DConfig(state_dict["fc8.weight"].shape[0], widths, state_dict["fc6.weight"].shape[0])

    def forward(self, x: Tensor) -> Tensor:
        for name, _, pool in _CONVS:
            x = F.relu(getattr(self, name)(x))
            if pool is not None:
                x = F.max_pool3d(x, pool, pool, ceil_mode=True)
        x = rearrange(x, "b c f h w -> b (c f h w)")  # (B, 8192): chainer's Linear flattens C, F, H, W
        x = F.relu(self.fc6(x))
        x = F.relu(self.fc7(x))
        return self.fc8(x)  # (B, 101); dropout is off at evaluation


class C3DUCF101(nn.Module):
    """TGANv2's video classifier: preprocessing (steps 2-4 of the module doc) + `C3D`.

    Input (B, 3, 16, H, W) RGB in [-1, 1] -> (B, 101) logits.
    """

    def __init__(self, net: C3D | None = None, mean: Tensor | None = None):
        super().__init__()
        self.net = net if net is not None else C3D()
        if mean is None:  # (3, 16, 112, 112), BGR
            mean = torch.tensor(SPORTS1M_BGR_MEAN).view(3, 1, 1, 1).expand(3, 16, 112, 112).clone()
        self.register_buffer("mean", mean.float())

    def preprocess(self, video: Tensor) -> Tensor:
        """(B, 3, 16, H, W) RGB [-1, 1] -> (B, 3, 16, 112, 112) BGR, minus the mean clip."""
        b, c, f, h, w = video.shape
        if f != self.mean.shape[1]:
            raise T2VError(f"C3D takes clips of {self.mean.shape[1]} frames, got {f}")
        x = rearrange(video, "b c f h w -> (b f) c h w")
        if (h, w) != (112, 112):
            x = F.interpolate(x, size=(112, 112), mode="bilinear", align_corners=True)
        x = rearrange(x, "(b f) c h w -> b c f h w", b=b)
        x = x.flip(1)  # RGB -> BGR
        return (x + 1.0) * 128.0 - self.mean

    def forward(self, video: Tensor) -> Tensor:
        return self.net(self.preprocess(video))


class TorchScriptC3D(nn.Module):
    """StyleGAN-V's `c3d_ucf101.pt` (a TorchScript port of TGANv2's chainer C3D) as a logits classifier.

    StyleGAN-V (`src/metrics/video_inception_score.py`, `metric_utils.py`) calls it as `detector(x)`
    on uint8 (B, 3, 16, H, W) in [0, 255] and reads class probabilities. We hand it the same uint8
    clip and return log-probabilities (softmax(log p) == p); if it returned logits, they pass through.
    """

    def __init__(self, detector: torch.jit.ScriptModule):
        super().__init__()
        self.detector = detector

    def forward(self, video: Tensor) -> Tensor:
        x = ((video + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        out = self.detector(x).double()
        sums = out.sum(dim=1)
        if (out >= 0).all() and torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
            return out.clamp_min(1e-38).log()
        return out


def chainer_to_state_dict(arrays: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
    """TGANv2's chainer npz (`conv1a/W`, `conv1a/b`, ..., `fc8/b`) -> `C3D` state dict."""
    out = {}
    for key, value in arrays.items():
        key = key.removeprefix("/").removeprefix("predictor/")
        if "/" not in key:
            continue
        layer, leaf = key.rsplit("/", 1)
        if leaf not in ("W", "b"):
            continue
        out[f"{layer}.{'weight' if leaf == 'W' else 'bias'}"] = torch.from_numpy(np.array(value, dtype=np.float32))
    return out


def state_dict_to_chainer(state_dict: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    """`C3D` state dict -> chainer npz names (the inverse of `chainer_to_state_dict`)."""
    return {k.replace(".weight", "/W").replace(".bias", "/b"): v.detach().cpu().numpy() for k, v in state_dict.items()}


def load_mean_clip(path: str | Path) -> Tensor:
    """TGANv2's `mean2.npz` (key `mean`, (3, 16, 128, 171) BGR) -> the (3, 16, 112, 112) crop at [8:120, 8:120]."""
    path = Path(path)
    if not path.is_file():
        raise T2VError(f"C3D mean clip not found at {path}: download {C3D_MEAN_URL}")
    with np.load(path) as z:
        if "mean" not in z.files:
            raise T2VError(f"{path} has no 'mean' array: expected TGANv2's mean2.npz ({C3D_MEAN_URL})")
        mean = np.array(z["mean"], dtype=np.float32)
    mean = mean.reshape(mean.shape[-4:])  # drop a leading 1
    if mean.shape[0] != 3 or mean.shape[1] != 16 or mean.shape[2] < 120 or mean.shape[3] < 120:
        raise T2VError(f"{path}: mean clip of shape {mean.shape}, expected (3, 16, 128, 171)")
    return torch.from_numpy(mean[:, :, 8:120, 8:120].copy())


def load_c3d(path: str | Path, mean_path: str | Path | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """The UCF-101 classifier from a weights file, in eval mode: (B, 3, 16, H, W) in [-1, 1] -> (B, 101) logits.

    - StyleGAN-V's TorchScript `c3d_ucf101.pt` (preprocessing included);
    - TGANv2's chainer `conv3d_deepnetA_ucf.npz`, with `mean2.npz` (`mean_path`, or beside the weights);
    - a `C3D` / `C3DUCF101` state dict (`.pt`, `.safetensors`; a `mean` entry is the mean clip).
    """
    from t2v.models.i3d import is_torchscript_file, read_state_dict

    path = Path(path)
    if not path.is_file():
        raise T2VError(f"C3D weights not found at {path}: download {WHERE_TO_GET}")
    if is_torchscript_file(path):
        return TorchScriptC3D(torch.jit.load(str(path), map_location=device).eval()).eval()
    arrays = read_state_dict(path)
    if any("/" in k for k in arrays):
        sd = chainer_to_state_dict({k: v.numpy() for k, v in arrays.items()})
        mean_tensor = None
    else:
        sd = {k.removeprefix("net."): v for k, v in arrays.items() if k != "mean"}
        mean_tensor = arrays.get("mean")
    if mean_path is not None:
        mean_tensor = load_mean_clip(mean_path)
    elif mean_tensor is None:
        beside = path.with_name("mean2.npz")
        if not beside.is_file():
            raise T2VError(f"C3D mean clip missing: put TGANv2's mean2.npz ({C3D_MEAN_URL}) beside {path.name}")
        mean_tensor = load_mean_clip(beside)
    try:
        net = C3D(C3D.config_of(sd))
    except KeyError as e:
        raise T2VError(f"{path} has no {e.args[0]}: not a C3D; expected {WHERE_TO_GET}") from None
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise T2VError(f"{path} does not fit C3D: missing {missing[:3]}, unexpected {unexpected[:3]}; expected {WHERE_TO_GET}")
    return C3DUCF101(net, mean_tensor).to(device).eval()
