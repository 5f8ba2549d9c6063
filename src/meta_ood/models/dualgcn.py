"""DGCNet (Dual Graph Convolutional Network) on a dilated ResNet-50, the paper's second network.

This is ``DualSeg_res50`` of the meta-ood release (itself from GALD-DGCNet). Parameter names,
shapes and order equal the published checkpoint, which carries no ``module.`` prefix.

Dataflow (input ``N x 3 x H x W``, ImageNet-normalized RGB)::

    conv1 (deep stem: 3 convs, stride 2) -> bn1 -> ReLU -> maxpool (ceil_mode=True)
    layer1 .. layer4 (bottlenecks; layer2 stride 2; layer3 dilation 2; layer4 4/8/16)
    head: conva -> DualGCN -> convb -> cat [layer4, convb] -> bottleneck -> logits (1/8)
    bilinear upsample (align_corners=True) to the input size

The auxiliary ``dsn`` head (on the layer3 output) is part of the module so that checkpoints load
strictly, but :meth:`DualSegResNet50.forward` does not evaluate it. The released forward pass
computed it and threw the result away, so the returned logits are identical; skipping it saves
about 10% of the compute. (In ``train()`` mode the release therefore also updated ``dsn.1``'s
running statistics, which never influence the output.) Call ``model.dsn(layer3_features)`` to
obtain the auxiliary logits when needed.

With arbitrary weights the two graph projections sum over all pixels and nodes, so activations
in the head can reach 1e4; this is a property of the architecture, not an error.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Bottleneck", "SpatialGCN", "DualGCN", "DualGCNHead", "DualSegResNet50", "dualgcn_resnet50"]


def _upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True``, the convention of the released models."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv) with dilation, expansion 4.

    Parameters
    ----------
    inplanes
        Input channels.
    planes
        Width of the block; the output has ``4 * planes`` channels.
    stride
        Stride of the 3x3 conv (and of ``downsample``).
    dilation
        Dilation and padding of the 3x3 conv.
    downsample
        Projection of the shortcut (1x1 conv + BN), or ``None`` for the identity.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        return F.relu(out + shortcut, inplace=True)


class SpatialGCN(nn.Module):
    """Coordinate-space graph reasoning on a (downsampled) feature map.

    With ``c = planes // 2`` and ``K, V: (n, HW, c)``, ``Q: (n, c, HW)``::

        A  = softmax(Q @ V, dim=-1)             (n, c, c)
        AV = (K @ A)^T                          (n, c, HW)
        y  = bn_wg(conv_wg(AV)) -> out (1x1 conv c->planes + BN)
        result = relu(y + x)

    Parameters
    ----------
    planes
        Channels of the input and output.
    """

    def __init__(self, planes: int) -> None:
        super().__init__()
        inter = planes // 2
        self.node_k = nn.Conv2d(planes, inter, 1)
        self.node_v = nn.Conv2d(planes, inter, 1)
        self.node_q = nn.Conv2d(planes, inter, 1)
        self.conv_wg = nn.Conv1d(inter, inter, 1, bias=False)
        self.bn_wg = nn.BatchNorm1d(inter)
        self.softmax = nn.Softmax(dim=2)
        self.out = nn.Sequential(nn.Conv2d(inter, planes, 1), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        k = self.node_k(x).flatten(2).transpose(1, 2)  # (n, HW, c)
        v = self.node_v(x).flatten(2).transpose(1, 2)  # (n, HW, c)
        q = self.node_q(x).flatten(2)  # (n, c, HW)
        attention = self.softmax(torch.bmm(q, v))  # (n, c, c)
        av = torch.bmm(k, attention).transpose(1, 2).contiguous()  # (n, c, HW)
        avw = self.bn_wg(self.conv_wg(av)).view(n, -1, h, w)
        return F.relu(self.out(avw) + x, inplace=True)


class DualGCN(nn.Module):
    """Dual graph convolution: a coordinate-space GCN and a feature-space GCN, fused by a 1x1 conv.

    *Coordinate space*: ``local`` (three depthwise stride-2 convs + BN, about 8x downsampling)
    -> :class:`SpatialGCN` -> bilinear upsample to the input size ``u``; the branch output is
    ``x * u + x``.

    *Feature space*: ``B = bn_theta(theta(x))`` (nodes, ``(n, planes/ratio, HW)``) and
    ``X = bn_phi(phi(x))`` (``(n, 2*planes/ratio, HW)``); project ``Z0 = X @ B^T``, run the
    graph convolution ``Z = bn_wg(conv_wg(bn_adj(conv_adj(Z0^T))^T + Z0))`` and re-project
    ``Y = Z @ B``; the branch output is ``relu(x + bn3(conv3(Y)))``.

    ``final`` (1x1 conv + BN, no ReLU) fuses the concatenation of both branches.

    Parameters
    ----------
    planes
        Channels of the input and output (512 in DGCNet).
    ratio
        Reduction giving ``planes // ratio`` graph nodes and ``2 * planes // ratio`` node features.
    """

    def __init__(self, planes: int, ratio: int = 4) -> None:
        super().__init__()
        nodes = planes // ratio
        feats = planes // ratio * 2
        self.phi = nn.Conv2d(planes, feats, 1, bias=False)
        self.bn_phi = nn.BatchNorm2d(feats)
        self.theta = nn.Conv2d(planes, nodes, 1, bias=False)
        self.bn_theta = nn.BatchNorm2d(nodes)
        self.conv_adj = nn.Conv1d(nodes, nodes, 1, bias=False)
        self.bn_adj = nn.BatchNorm1d(nodes)
        self.conv_wg = nn.Conv1d(feats, feats, 1, bias=False)
        self.bn_wg = nn.BatchNorm1d(feats)
        self.conv3 = nn.Conv2d(feats, planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.local = nn.Sequential(
            nn.Conv2d(planes, planes, 3, stride=2, padding=1, groups=planes, bias=False),
            nn.BatchNorm2d(planes),
            nn.Conv2d(planes, planes, 3, stride=2, padding=1, groups=planes, bias=False),
            nn.BatchNorm2d(planes),
            nn.Conv2d(planes, planes, 3, stride=2, padding=1, groups=planes, bias=False),
            nn.BatchNorm2d(planes),
        )
        self.gcn_local_attention = SpatialGCN(planes)
        self.final = nn.Sequential(nn.Conv2d(planes * 2, planes, 1, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        # coordinate space
        local = self.gcn_local_attention(self.local(x))
        local = _upsample(local, (h, w))
        spatial = x * local + x
        # feature space
        b = self.bn_theta(self.theta(x)).flatten(2)  # (n, nodes, HW)
        xs = self.bn_phi(self.phi(x)).flatten(2)  # (n, feats, HW)
        z_idt = torch.matmul(xs, b.transpose(1, 2))  # (n, feats, nodes)
        z = self.bn_adj(self.conv_adj(z_idt.transpose(1, 2).contiguous()))  # (n, nodes, feats)
        z = z.transpose(1, 2) + z_idt
        z = self.bn_wg(self.conv_wg(z.contiguous()))  # (n, feats, nodes)
        y = torch.matmul(z, b).view(n, -1, h, w)  # (n, feats, h, w)
        y = self.bn3(self.conv3(y))
        g_out = F.relu(x + y, inplace=True)
        return self.final(torch.cat([spatial, g_out], dim=1))


class DualGCNHead(nn.Module):
    """Segmentation head of DGCNet: ``conva -> DualGCN -> convb``, concatenated with its input.

    Parameters
    ----------
    inplanes
        Channels of the backbone features (2048).
    interplanes
        Width inside the head (512).
    num_classes
        Output classes.
    """

    def __init__(self, inplanes: int, interplanes: int, num_classes: int) -> None:
        super().__init__()
        self.conva = nn.Sequential(
            nn.Conv2d(inplanes, interplanes, 3, padding=1, bias=False),
            nn.BatchNorm2d(interplanes),
            nn.ReLU(inplace=True),
        )
        self.dualgcn = DualGCN(interplanes)
        self.convb = nn.Sequential(
            nn.Conv2d(interplanes, interplanes, 3, padding=1, bias=False),
            nn.BatchNorm2d(interplanes),
            nn.ReLU(inplace=True),
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(inplanes + interplanes, interplanes, 3, padding=1, bias=False),
            nn.BatchNorm2d(interplanes),
            nn.ReLU(inplace=True),
            nn.Conv2d(interplanes, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convb(self.dualgcn(self.conva(x)))
        return self.bottleneck(torch.cat([x, out], dim=1))


class DualSegResNet50(nn.Module):
    """DGCNet with a dilated ResNet-50 (deep stem), output stride 8 (53,514,470 parameters at 19 classes).

    Maps ImageNet-normalized RGB images ``(N, 3, H, W)`` to logits ``(N, num_classes, H, W)``
    (pre-softmax, bilinearly upsampled with ``align_corners=True``). ``dsn`` holds the auxiliary
    head's parameters; it is not evaluated in :meth:`forward` (see the module docstring).

    Parameters
    ----------
    num_classes
        Number of output classes (19 Cityscapes train ids in the paper).
    """

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.inplanes = 128
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 128, 3, stride=1, padding=1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(128)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, dilation=2)
        self.layer4 = self._make_layer(512, 3, dilation=4, multi_grid=(1, 2, 4))
        self.head = DualGCNHead(2048, 512, self.num_classes)
        self.dsn = nn.Sequential(
            nn.Conv2d(1024, 512, 3, padding=1),
            nn.BatchNorm2d(512),
            nn.Dropout2d(0.1),
            nn.Conv2d(512, self.num_classes, 1),
        )

    def _make_layer(
        self, planes: int, blocks: int, stride: int = 1, dilation: int = 1, multi_grid: Sequence[int] = (1,)
    ) -> nn.Sequential:
        out_planes = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out_planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )
        layers = []
        for i in range(blocks):
            layers.append(Bottleneck(
                self.inplanes if i == 0 else out_planes,
                planes,
                stride=stride if i == 0 else 1,
                dilation=dilation * multi_grid[i % len(multi_grid)],
                downsample=downsample if i == 0 else None,
            ))
        self.inplanes = out_planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.head(x)
        return _upsample(x, size)


def dualgcn_resnet50(num_classes: int = 19) -> DualSegResNet50:
    """Build the paper's DGCNet ResNet-50 (randomly initialized; load a checkpoint for weights)."""
    return DualSegResNet50(num_classes=num_classes)
