"""DeepLabv2 on a Caffe-style ResNet with two ASPP-style classifier heads.

The module names (conv1, bn1, layer1..layer4, layer5 = aux head on layer3,
layer6 = main head on layer4) are the state-dict keys of the original ADVENT
checkpoints, so weights move between the two code bases unchanged.

Every BatchNorm keeps its affine parameters frozen but is *not* switched to eval
mode during training: with batch size 1 the network normalises with the batch
statistics and updates the running statistics at every forward pass, exactly
as the original does.

Smaller variants of the same design (fewer blocks, narrower) exist for CPU runs;
they are selected by name through ``TRAIN.MODEL`` (see ``MODEL_VARIANTS``).
"""
import torch.nn as nn

ASPP_DILATIONS = (6, 12, 18, 24)


def _frozen_bn(num_features):
    bn = nn.BatchNorm2d(num_features, affine=True)
    for param in bn.parameters():
        param.requires_grad = False
    return bn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        # Caffe-style: the stride sits on the first 1x1 conv, not on the 3x3.
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False)
        self.bn1 = _frozen_bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = _frozen_bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = _frozen_bn(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ClassifierModule(nn.Module):
    """Sum of four dilated 3x3 convolutions (the DeepLabv2 ASPP classifier)."""

    def __init__(self, inplanes, num_classes, dilations=ASPP_DILATIONS):
        super().__init__()
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(inplanes, num_classes, kernel_size=3, stride=1, padding=d, dilation=d, bias=True)
            for d in dilations)
        for conv in self.conv2d_list:
            conv.weight.data.normal_(0, 0.01)

    def forward(self, x):
        out = self.conv2d_list[0](x)
        for conv in self.conv2d_list[1:]:
            out += conv(x)
        return out


class ResNetMulti(nn.Module):
    """DeepLabv2 segmenter. forward(x) -> (aux logits or None, main logits), both at 1/8."""

    def __init__(self, layers=(3, 4, 23, 3), num_classes=19, multi_level=True, width=64):
        super().__init__()
        self.multi_level = multi_level
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = _frozen_bn(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], dilation=2)
        self.layer4 = self._make_layer(width * 8, layers[3], dilation=4)
        if multi_level:
            self.layer5 = ClassifierModule(width * 4 * Bottleneck.expansion, num_classes)
        self.layer6 = ClassifierModule(width * 8 * Bottleneck.expansion, num_classes)
        # Same initialisation and the same order of random draws as the original,
        # so a seeded run starts from the same fresh heads.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data.normal_(0, 0.01)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def _make_layer(self, planes, blocks, stride=1, dilation=1):
        out_channels = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_channels or dilation in (2, 4):
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out_channels, kernel_size=1, stride=stride, bias=False),
                _frozen_bn(out_channels))
        layers = [Bottleneck(self.inplanes, planes, stride, dilation=dilation, downsample=downsample)]
        self.inplanes = out_channels
        layers += [Bottleneck(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        aux = self.layer5(x) if self.multi_level else None
        main = self.layer6(self.layer4(x))
        return aux, main

    def backbone_blocks(self):
        """The modules the original's get_1x_lr_params_no_scale walked, in its order."""
        return [self.conv1, self.bn1, self.layer1, self.layer2, self.layer3, self.layer4]

    def get_1x_lr_params_no_scale(self):
        """Trainable backbone parameters, each once (frozen BatchNorm parameters excluded).
        The original yielded most of them several times; OriginalSGD (advent.domain_adaptation.optim)
        reproduces the effect of that on its update."""
        for module in self.backbone_blocks():
            for param in module.parameters():
                if param.requires_grad:
                    yield param

    def get_10x_lr_params(self):
        heads = [self.layer5, self.layer6] if self.multi_level else [self.layer6]
        for head in heads:
            yield from head.parameters()

    def optim_parameters(self, lr):
        return [{'params': self.get_1x_lr_params_no_scale(), 'lr': lr},
                {'params': self.get_10x_lr_params(), 'lr': 10 * lr}]


# name -> (blocks per layer, base width). 'DeepLabv2' is the published ResNet-101 model.
MODEL_VARIANTS = {
    'DeepLabv2': ((3, 4, 23, 3), 64),
    'DeepLabv2-R50': ((3, 4, 6, 3), 64),
    'DeepLabv2-small': ((2, 2, 2, 2), 32),
    'DeepLabv2-tiny': ((1, 1, 1, 1), 16),
}


def get_deeplab_v2(num_classes=19, multi_level=True, variant='DeepLabv2'):
    if variant not in MODEL_VARIANTS:
        raise ValueError(f'unknown model {variant!r}: expected one of {sorted(MODEL_VARIANTS)}')
    layers, width = MODEL_VARIANTS[variant]
    return ResNetMulti(layers, num_classes, multi_level, width)
