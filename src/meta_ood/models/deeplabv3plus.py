"""DeepLabV3+ with a WideResNet38-A2 trunk, as in NVIDIA's ``sdcnet`` segmentation branch.

This is the in-distribution network of the paper (``DeepWV3Plus``). The module tree is laid
out so that ``state_dict()`` has exactly the parameter names, shapes and order of the published
checkpoint once its ``module.`` prefix (the checkpoint was saved from ``nn.DataParallel``) is
removed; :func:`meta_ood.models.checkpoint.load_checkpoint` handles that prefix.

Dataflow (input ``N x 3 x H x W``, ImageNet-normalized RGB)::

    mod1 (3x3 conv, full resolution, no norm)
    pool2 -> mod2 (1/2)  = m2, the decoder skip
    pool3 -> mod3 (1/4) -> mod4 (stride 2, 1/8) -> mod5 (dil 2) -> mod6, mod7 (dil 4)
    aspp (image pooling first, then 1x1 and rates 12/24/36) -> 1280 channels
    bot_aspp -> upsample to m2's size;  bot_fine(m2) -> cat [fine, aspp] -> final -> upsample

Quirks of the released network that are kept on purpose (they change the numbers):

* the trunk's ``bn_out`` is not used, so mod7's raw residual sum enters the ASPP;
* mod6 / mod7 use channel-wise ``Dropout2d`` (the release got it through a process-wide
  ``nn.Dropout = nn.Dropout2d`` patch; here the layers are simply built as ``Dropout2d``);
* the decoder works at 1/2 of the input resolution, not 1/4;
* all upsampling is bilinear with ``align_corners=True``.

In ``train()`` mode the ASPP image-pooling BatchNorm sees a 1x1 map, so batches of one raise
an error, exactly like the original.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IdentityResidualBlock", "AtrousSpatialPyramidPooling", "DeepLabV3PlusWRN38", "deeplabv3plus_wrn38"]


def _upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True``, the convention of the released models."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def _bn_relu(channels: int) -> nn.Sequential:
    """Pre-activation ``BatchNorm2d + ReLU`` (keys ``<name>.0.*``)."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class IdentityResidualBlock(nn.Module):
    """Pre-activation residual block of WideResNet38-A2.

    ``bn1`` (BN + ReLU) is applied to the input first. The residual branch ``convs`` is either a
    basic block (two 3x3 convs, ``len(channels) == 2``) or a bottleneck (1x1, 3x3, 1x1,
    ``len(channels) == 3``) with an optional ``Dropout2d`` before the last conv. The shortcut is
    ``proj_conv(bn1(x))`` when the block changes stride or width, else the raw input ``x``.
    There is no activation after the addition.

    Parameters
    ----------
    in_channels
        Channels of the block input.
    channels
        Output channels of the convs in the residual branch (2 or 3 values).
    stride
        Stride of the first conv and of the projection shortcut.
    dilation
        Dilation (and padding) of every 3x3 conv of the block.
    dropout
        ``Dropout2d`` probability before the last conv of a bottleneck block, or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        stride: int = 1,
        dilation: int = 1,
        dropout: float | None = None,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) not in (2, 3):
            raise ValueError(f"channels must have 2 or 3 entries, got {channels}")
        self.bn1 = _bn_relu(in_channels)
        if len(channels) == 2:
            layers = [
                ("conv1", nn.Conv2d(in_channels, channels[0], 3, stride=stride, padding=dilation,
                                    dilation=dilation, bias=False)),
                ("bn2", _bn_relu(channels[0])),
                ("conv2", nn.Conv2d(channels[0], channels[1], 3, stride=1, padding=dilation,
                                    dilation=dilation, bias=False)),
            ]
        else:
            layers = [
                ("conv1", nn.Conv2d(in_channels, channels[0], 1, stride=stride, bias=False)),
                ("bn2", _bn_relu(channels[0])),
                ("conv2", nn.Conv2d(channels[0], channels[1], 3, stride=1, padding=dilation,
                                    dilation=dilation, bias=False)),
                ("bn3", _bn_relu(channels[1])),
            ]
            if dropout is not None:
                layers.append(("dropout", nn.Dropout2d(p=dropout)))
            layers.append(("conv3", nn.Conv2d(channels[1], channels[2], 1, stride=1, bias=False)))
        self.convs = nn.Sequential(OrderedDict(layers))
        self.proj_conv: nn.Conv2d | None
        if stride != 1 or in_channels != channels[-1]:
            self.proj_conv = nn.Conv2d(in_channels, channels[-1], 1, stride=stride, bias=False)
        else:
            self.proj_conv = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.bn1(x)
        shortcut = self.proj_conv(pre) if self.proj_conv is not None else x
        out = self.convs(pre)
        return out.add_(shortcut)


def _wrn_stage(
    in_channels: int,
    channels: Sequence[int],
    blocks: int,
    stride: int = 1,
    dilation: int = 1,
    dropout: float | None = None,
) -> nn.Sequential:
    """One trunk module ``modN``: ``blocks`` residual blocks named ``block1..blockK``."""
    layers = []
    for i in range(blocks):
        layers.append((
            f"block{i + 1}",
            IdentityResidualBlock(
                in_channels if i == 0 else channels[-1],
                channels,
                stride=stride if i == 0 else 1,
                dilation=dilation,
                dropout=dropout,
            ),
        ))
    return nn.Sequential(OrderedDict(layers))


class AtrousSpatialPyramidPooling(nn.Module):
    """ASPP of the sdcnet DeepLabV3+: image pooling, a 1x1 branch and three dilated 3x3 branches.

    The output concatenates **the image-pooling branch first**, then ``features[0..3]``, giving
    ``5 * reduction_dim`` channels. Every branch is conv (no bias) + BN + ReLU.

    Parameters
    ----------
    in_dim
        Input channels (4096 for the WRN38 trunk).
    reduction_dim
        Channels per branch.
    rates
        Dilation rates of the three 3x3 branches, already scaled for the output stride
        (the released model doubles (6, 12, 18) to (12, 24, 36) for output stride 8).
    """

    def __init__(self, in_dim: int = 4096, reduction_dim: int = 256, rates: Sequence[int] = (12, 24, 36)) -> None:
        super().__init__()
        branches = [nn.Sequential(nn.Conv2d(in_dim, reduction_dim, 1, bias=False),
                                  nn.BatchNorm2d(reduction_dim), nn.ReLU(inplace=True))]
        for rate in rates:
            branches.append(nn.Sequential(
                nn.Conv2d(in_dim, reduction_dim, 3, padding=rate, dilation=rate, bias=False),
                nn.BatchNorm2d(reduction_dim), nn.ReLU(inplace=True),
            ))
        self.features = nn.ModuleList(branches)
        self.img_pooling = nn.AdaptiveAvgPool2d(1)
        self.img_conv = nn.Sequential(nn.Conv2d(in_dim, reduction_dim, 1, bias=False),
                                      nn.BatchNorm2d(reduction_dim), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        pooled = _upsample(self.img_conv(self.img_pooling(x)), size)
        return torch.cat([pooled] + [branch(x) for branch in self.features], dim=1)


class DeepLabV3PlusWRN38(nn.Module):
    """DeepLabV3+ with a WideResNet38-A2 trunk, output stride 8 (137,103,936 parameters at 19 classes).

    Maps ImageNet-normalized RGB images ``(N, 3, H, W)`` to logits ``(N, num_classes, H, W)``
    (pre-softmax, bilinearly upsampled with ``align_corners=True``). Parameter names follow the
    published checkpoint without its ``module.`` prefix.

    Parameters
    ----------
    num_classes
        Number of output classes (19 Cityscapes train ids in the paper).
    """

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.mod1 = nn.Sequential(OrderedDict([("conv1", nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False))]))
        self.mod2 = _wrn_stage(64, (128, 128), 3)
        self.mod3 = _wrn_stage(128, (256, 256), 3)
        self.mod4 = _wrn_stage(256, (512, 512), 6, stride=2)
        self.mod5 = _wrn_stage(512, (512, 1024), 3, dilation=2)
        self.mod6 = _wrn_stage(1024, (512, 1024, 2048), 1, dilation=4, dropout=0.3)
        self.mod7 = _wrn_stage(2048, (1024, 2048, 4096), 1, dilation=4, dropout=0.5)
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.pool3 = nn.MaxPool2d(3, stride=2, padding=1)
        self.aspp = AtrousSpatialPyramidPooling(4096, 256, rates=(12, 24, 36))
        self.bot_fine = nn.Conv2d(128, 48, 1, bias=False)
        self.bot_aspp = nn.Conv2d(1280, 256, 1, bias=False)
        self.final = nn.Sequential(
            nn.Conv2d(304, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, self.num_classes, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        x = self.mod1(x)
        m2 = self.mod2(self.pool2(x))
        x = self.mod3(self.pool3(m2))
        x = self.mod4(x)
        x = self.mod5(x)
        x = self.mod6(x)
        x = self.mod7(x)
        x = self.aspp(x)
        up = _upsample(self.bot_aspp(x), m2.shape[2:])
        x = self.final(torch.cat([self.bot_fine(m2), up], dim=1))
        return _upsample(x, size)


def deeplabv3plus_wrn38(num_classes: int = 19) -> DeepLabV3PlusWRN38:
    """Build the paper's DeepLabV3+ WRN38 (randomly initialized; load a checkpoint for weights)."""
    return DeepLabV3PlusWRN38(num_classes=num_classes)
