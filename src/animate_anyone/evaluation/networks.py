"""Feature networks of the learned metrics, defined here so that no torchvision is needed.

Every module's ``state_dict()`` keys and shapes equal those of the public weight file it loads
(:mod:`.weights` lists the files), so the files load as they are, without renaming:

* :class:`AlexNetFeatures` / :class:`VGG16Features` — the ``features`` part of torchvision's
  ``alexnet`` / ``vgg16`` (keys ``features.<i>.weight``); the files also hold ``classifier.*``,
  which LPIPS does not use.
* :class:`LPIPSLinearLayers` — the five 1×1 convolutions of the lpips package's v0.1 weights
  (keys ``lin<k>.model.1.weight``, shape ``(1, channels, 1, 1)``; index 1 because the package puts
  a dropout at index 0).
* :class:`FIDInceptionV3` — torchvision's Inception-v3 layout with 1008 classes and no auxiliary
  head, with the three changes pytorch-fid makes to match TensorFlow's FID graph (average pools
  that ignore padding, max pool in the last block).
* :class:`InceptionI3d` — the RGB I3D of Carreira & Zisserman as laid out by piergiaj/pytorch-i3d
  (keys ``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b0.bn.running_mean``, ``logits.conv3d.bias``…),
  with TensorFlow 'SAME' padding computed at run time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------
# LPIPS (Zhang et al. 2018): backbones + learned linear layers
# --------------------------------------------------------------------------------------------

# ImageNet statistics mapped to [-1, 1] input, as the lpips package's ScalingLayer.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


class AlexNetFeatures(nn.Module):
    """torchvision ``alexnet().features``; returns the five ReLU outputs LPIPS compares."""

    channels = (64, 192, 384, 256, 256)
    taps = (1, 4, 7, 9, 11)  # indices of relu1..relu5 in ``features``

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
            if i == self.taps[-1]:
                break
        return outs


class VGG16Features(nn.Module):
    """torchvision ``vgg16().features``; returns relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""

    channels = (64, 128, 256, 512, 512)
    taps = (3, 8, 15, 22, 29)
    _cfg = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in self._cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(cin, int(v), kernel_size=3, padding=1), nn.ReLU()]
                cin = int(v)
        self.features = nn.Sequential(*layers)

    forward = AlexNetFeatures.forward


class _LinLayer(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        # index 0 is the package's (eval-time no-op) dropout; it keeps the weight at key "model.1"
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))


class LPIPSLinearLayers(nn.Module):
    """``lin0`` … ``lin4``: per-channel weights of the squared feature differences."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        for k, c in enumerate(channels):
            self.add_module(f"lin{k}", _LinLayer(c))

    def layers(self) -> list[nn.Conv2d]:
        return [getattr(self, f"lin{k}").model[1] for k in range(len(list(self.children())))]


class LPIPS(nn.Module):
    """Learned perceptual distance ("LPIPS v0.1") with an AlexNet or VGG-16 backbone.

    ``forward(x, y)`` takes ``(batch, 3, height, width)`` in [-1, 1] and returns ``(batch,)``: per
    layer, unit-normalise the features over channels, square the difference, weight the channels
    with the linear layer, average over space; then sum over the five layers.
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in ("alex", "vgg"):
            raise ValueError(f"LPIPS backbone must be 'alex' or 'vgg', got {net!r}")
        self.net_name = net
        self.backbone = AlexNetFeatures() if net == "alex" else VGG16Features()
        self.linear = LPIPSLinearLayers(self.backbone.channels)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)

    @staticmethod
    def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
        return x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.backbone((x - self.shift) / self.scale)
        fy = self.backbone((y - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for a, b, lin in zip(fx, fy, self.linear.layers()):
            d = (self._unit(a) - self._unit(b)) ** 2  # (batch, channels, h, w)
            total = total + lin(d).mean(dim=(1, 2, 3))
        return total


# --------------------------------------------------------------------------------------------
# Inception-v3 of FID (pytorch-fid's port of TensorFlow's 2015-12-05 graph)
# --------------------------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's average pool divides by the number of real (unpadded) inputs
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_no_pad(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for k in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{k}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool_no_pad(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for k in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{k}")(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool  # pytorch-fid: the last block of the TF graph max-pools here
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool_no_pad(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as used for FID; ``forward`` returns the 2048-d pool3 features.

    Input ``(batch, 3, height, width)`` in [0, 1]; resized to 299×299 (bilinear, no corner
    alignment) and mapped to [-1, 1] inside, as pytorch-fid's ``InceptionV3`` does by default.
    """

    def __init__(self, num_classes: int = 1008) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, num_classes)  # in the weight file; unused by FID

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (b, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (b, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (b, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (b, 192, 35, 35)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)  # ends at (b, 2048, 8, 8)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)  # (b, 2048)


# --------------------------------------------------------------------------------------------
# I3D (Carreira & Zisserman 2017), RGB stream, Kinetics-400 head
# --------------------------------------------------------------------------------------------


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME': total padding so that output = ceil(size / stride); the extra pixel goes last."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    pads: list[int] = []
    for dim in (4, 3, 2):  # F.pad lists the last dimension first: w, h, t
        pads += _same_padding(x.shape[dim], kernel[dim - 2], stride[dim - 2])
    return F.pad(x, pads)


class Unit3D(nn.Module):
    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn: bool = True,
                 bias: bool = False, relu: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, kernel_size=self.kernel, stride=self.stride, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # zero padding, as the reference port (inputs are post-ReLU, so zeros never win)
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class I3DInceptionModule(nn.Module):
    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a = Unit3D(cin, c[1])
        self.b1b = Unit3D(c[1], c[2], kernel=(3, 3, 3))
        self.b2a = Unit3D(cin, c[3])
        self.b2b = Unit3D(c[3], c[4], kernel=(3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, c[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    """RGB I3D. ``forward`` takes ``(batch, 3, frames, height, width)`` in [-1, 1] (224×224 in the
    FVD protocol) and returns ``(logits (batch, num_classes), features (batch, 1024))``: the
    Kinetics logits averaged over time (FVD's features) and the average-pooled Mixed_5c output."""

    _mixed = {
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

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, kernel=(7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, kernel=(3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        for name in ("Mixed_3b", "Mixed_3c"):
            self.add_module(name, I3DInceptionModule(*self._mixed[name]))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            self.add_module(name, I3DInceptionModule(*self._mixed[name]))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        for name in ("Mixed_5b", "Mixed_5c"):
            self.add_module(name, I3DInceptionModule(*self._mixed[name]))
        self.logits = Unit3D(1024, num_classes, bn=False, bias=True, relu=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for module in self.children():
            if module is self.logits:
                break
            x = module(x)  # ends at (b, 1024, frames / 8, height / 32, width / 32)
        # the reference averages over a 7x7 window (= all of space at 224 px), then over time
        pooled = F.avg_pool3d(x, kernel_size=(1, min(7, x.shape[3]), min(7, x.shape[4])), stride=1)
        logits = self.logits(pooled).mean(dim=(2, 3, 4))  # (b, num_classes)
        return logits, pooled.mean(dim=(2, 3, 4))  # (b, 1024)
