"""DeepLabv2 (advent.model.deeplabv2) and the fc discriminator (advent.model.discriminator)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from advent.model.deeplabv2 import get_deeplab_v2
from advent.model.discriminator import get_fc_discriminator


def _conv_out(n, k, s, p, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _pool_ceil_out(n, k=3, s=2, p=1):
    out = math.ceil((n + 2 * p - k) / s) + 1
    if (out - 1) * s >= n + p:  # the last window may not start inside the right padding
        out -= 1
    return out


def expected_out_size(h, w):
    """Output size of the DeepLabv2 backbone from its conv arithmetic: conv1 7x7/2 pad 3,
    max-pool 3x3/2 pad 1 ceil_mode, layer2's stride-2 1x1 conv; everything else keeps the size."""
    def one(n):
        n = _conv_out(n, 7, 2, 3)
        n = _pool_ceil_out(n)
        return _conv_out(n, 1, 2, 0)
    return one(h), one(w)


def _params_of(module_names, model, trainable_only):
    out = []
    for name, p in model.named_parameters():
        if name.split('.')[0] in module_names and (p.requires_grad or not trainable_only):
            out.append(p)
    return out


def test_expected_sizes_use_ceil_mode():
    # the helper itself: 47 exercises ceil_mode (floor pooling would give 6, not 7)
    assert expected_out_size(65, 129) == (9, 17)
    assert expected_out_size(33, 47) == (5, 7)
    assert expected_out_size(512, 1024) == (65, 129)


@pytest.mark.parametrize('h,w', [(65, 129), (33, 47), (40, 41), (17, 18)])
def test_tiny_output_shapes_at_odd_sizes(h, w):
    torch.manual_seed(0)
    m = get_deeplab_v2(num_classes=7, multi_level=True, variant='DeepLabv2-tiny').eval()
    with torch.no_grad():
        aux, main = m(torch.randn(2, 3, h, w))
    eh, ew = expected_out_size(h, w)
    assert tuple(aux.shape) == (2, 7, eh, ew)
    assert tuple(main.shape) == (2, 7, eh, ew)


def test_r101_output_shapes(r101_multi):
    m = r101_multi
    was_training = m.training
    m.eval()
    try:
        with torch.no_grad():
            aux, main = m(torch.randn(1, 3, 33, 47))
    finally:
        m.train(was_training)
    assert tuple(aux.shape) == (1, 19, 5, 7)
    assert tuple(main.shape) == (1, 19, 5, 7)
    assert torch.isfinite(main).all() and torch.isfinite(aux).all()


def test_single_level_returns_none_and_main():
    torch.manual_seed(0)
    m = get_deeplab_v2(num_classes=5, multi_level=False, variant='DeepLabv2-tiny').eval()
    assert not hasattr(m, 'layer5')
    with torch.no_grad():
        out = m(torch.randn(1, 3, 65, 129))
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0] is None
    assert tuple(out[1].shape) == (1, 5, 9, 17)


def _golden_keys(spec):
    return [(k, tuple(shape), dtype) for k, shape, dtype, _ in spec['keys']]


def _model_keys(model):
    return [(k, tuple(v.shape), str(v.dtype).replace('torch.', '')) for k, v in model.state_dict().items()]


def test_state_dict_keys_multi_level(r101_multi, golden_multi_spec):
    assert _model_keys(r101_multi) == _golden_keys(golden_multi_spec)


def test_state_dict_keys_single_level(golden_single_spec):
    m = get_deeplab_v2(num_classes=19, multi_level=False)
    assert _model_keys(m) == _golden_keys(golden_single_spec)
    assert not any(k.startswith('layer5.') for k in m.state_dict())


def test_state_dict_key_examples(r101_multi):
    keys = set(r101_multi.state_dict())
    for k in ('conv1.weight', 'bn1.running_var', 'layer1.0.conv1.weight', 'layer1.0.downsample.0.weight',
              'layer1.0.downsample.1.weight', 'layer3.22.bn3.weight', 'layer4.2.conv3.weight',
              'layer5.conv2d_list.0.weight', 'layer5.conv2d_list.3.bias', 'layer6.conv2d_list.3.weight'):
        assert k in keys, k
    # only the first block of each layer has a downsample branch
    assert not any(k.startswith('layer3.1.downsample') for k in keys)


def test_total_parameters_match_golden(r101_multi, golden_multi_spec):
    buffers = ('running_mean', 'running_var', 'num_batches_tracked')
    expected = sum(int(np.prod(shape)) for k, shape, _, _ in golden_multi_spec['keys']
                   if not k.endswith(buffers))
    assert sum(p.numel() for p in r101_multi.parameters()) == expected
    assert expected > 40_000_000  # the ResNet-101 DeepLabv2, not a smaller variant


def test_heads_aspp_structure(r101_multi):
    for head, inplanes in ((r101_multi.layer5, 1024), (r101_multi.layer6, 2048)):
        convs = list(head.conv2d_list)
        assert [c.dilation for c in convs] == [(6, 6), (12, 12), (18, 18), (24, 24)]
        assert [c.padding for c in convs] == [(6, 6), (12, 12), (18, 18), (24, 24)]
        assert all(c.in_channels == inplanes and c.out_channels == 19 and c.bias is not None for c in convs)


def test_heads_output_is_sum_of_four_convs():
    torch.manual_seed(0)
    m = get_deeplab_v2(num_classes=3, variant='DeepLabv2-tiny').eval()
    x = torch.randn(1, 512, 6, 7)  # layer4 output channels of the tiny variant: 16 * 8 * 4
    with torch.no_grad():
        out = m.layer6(x)
        ref = sum(c(x) for c in m.layer6.conv2d_list)
    assert torch.allclose(out, ref, atol=1e-6)


def test_backbone_structure(r101_multi):
    m = r101_multi
    assert [len(m.layer1), len(m.layer2), len(m.layer3), len(m.layer4)] == [3, 4, 23, 3]
    assert m.conv1.kernel_size == (7, 7) and m.conv1.stride == (2, 2) and m.conv1.bias is None
    assert m.maxpool.ceil_mode and m.maxpool.kernel_size == 3 and m.maxpool.stride == 2
    # Caffe style: the stride is on the first 1x1 conv of layer2's first block
    assert m.layer2[0].conv1.stride == (2, 2) and m.layer2[0].conv2.stride == (1, 1)
    assert m.layer3[5].conv2.dilation == (2, 2) and m.layer3[5].conv2.padding == (2, 2)
    assert m.layer4[1].conv2.dilation == (4, 4) and m.layer4[1].conv2.padding == (4, 4)


def test_init_values(r101_multi):
    m = r101_multi
    for name in ('conv1', 'layer4.2.conv3', 'layer6.conv2d_list.1'):
        w = dict(m.named_modules())[name].weight.detach()
        assert abs(float(w.std()) - 0.01) < 0.001, name
        assert abs(float(w.mean())) < 0.001, name
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0)


def test_batchnorm_frozen_but_in_training_mode():
    torch.manual_seed(0)
    m = get_deeplab_v2(num_classes=4, variant='DeepLabv2-tiny')
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert len(bns) == 1 + 4 * 3 + 4  # stem + 3 per block + 4 downsample branches
    for name, p in m.named_parameters():
        is_bn = any(p is q for bn in bns for q in bn.parameters())
        assert p.requires_grad == (not is_bn), name
    m.train()
    assert all(bn.training for bn in bns)
    before = {k: v.clone() for k, v in m.state_dict().items() if 'running' in k}
    aux, main = m(torch.randn(2, 3, 33, 47) * 20)
    after = m.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before), 'running stats must update in train mode'
    assert int(after['bn1.num_batches_tracked']) == 1
    # frozen BN parameters get no gradient, trainable convs do
    (main.sum() + aux.sum()).backward()
    assert m.bn1.weight.grad is None and m.layer1[0].bn3.bias.grad is None
    assert m.conv1.weight.grad is not None and m.layer5.conv2d_list[0].weight.grad is not None


def test_r101_bn_all_frozen(r101_multi):
    n_bn = 0
    for mod in r101_multi.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n_bn += 1
            assert mod.affine
            assert not mod.weight.requires_grad and not mod.bias.requires_grad
    assert n_bn == 1 + 33 * 3 + 4


@pytest.mark.parametrize('multi_level', [True, False])
def test_optim_parameters_groups_tiny(multi_level):
    m = get_deeplab_v2(num_classes=4, multi_level=multi_level, variant='DeepLabv2-tiny')
    groups = m.optim_parameters(0.01)
    assert len(groups) == 2
    g0, g1 = list(groups[0]['params']), list(groups[1]['params'])
    assert groups[0]['lr'] == pytest.approx(0.01) and groups[1]['lr'] == pytest.approx(0.1)
    backbone = _params_of({'conv1', 'bn1', 'layer1', 'layer2', 'layer3', 'layer4'}, m, trainable_only=True)
    heads = _params_of({'layer5', 'layer6'}, m, trainable_only=False)
    assert [id(p) for p in g0] == [id(p) for p in backbone]
    assert [id(p) for p in g1] == [id(p) for p in heads]
    assert all(p.requires_grad for p in g0)
    assert len(heads) == (16 if multi_level else 8)
    # every trainable parameter is in exactly one group
    assert len(g0) + len(g1) == sum(1 for p in m.parameters() if p.requires_grad)


def test_optim_parameters_groups_r101(r101_multi, golden_multi_spec):
    groups = r101_multi.optim_parameters(2.5e-4)
    g0, g1 = list(groups[0]['params']), list(groups[1]['params'])
    n_backbone_convs = sum(1 for k, _, _, kind in golden_multi_spec['keys']
                           if kind == 'conv' and not k.startswith(('layer5', 'layer6')))
    n_head = sum(1 for k, _, _, _ in golden_multi_spec['keys'] if k.startswith(('layer5', 'layer6')))
    assert len(g0) == n_backbone_convs == 1 + 33 * 3 + 4
    assert len(g1) == n_head == 16
    assert groups[0]['lr'] == pytest.approx(2.5e-4)
    assert groups[1]['lr'] == pytest.approx(2.5e-3)
    opt = torch.optim.SGD(r101_multi.optim_parameters(2.5e-4), lr=2.5e-4, momentum=0.9, weight_decay=5e-4)
    assert [g['lr'] for g in opt.param_groups] == pytest.approx([2.5e-4, 2.5e-3])


def test_unknown_variant():
    with pytest.raises(ValueError, match='nope'):
        get_deeplab_v2(variant='nope')


def test_discriminator_shapes_and_keys(golden_disc_spec):
    torch.manual_seed(0)
    d = get_fc_discriminator(num_classes=19)
    keys = [(k, tuple(v.shape)) for k, v in d.state_dict().items()]
    assert keys == [(k, tuple(shape)) for k, shape, _, _ in golden_disc_spec['keys']]
    with torch.no_grad():
        out = d(torch.rand(2, 19, 65, 129))
    # five 4x4 stride-2 pad-1 convs: n -> floor(n / 2) five times
    assert tuple(out.shape) == (2, 1, 2, 4)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    relus = [m for m in d.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(relus) == 4 and all(r.negative_slope == pytest.approx(0.2) for r in relus)
    assert isinstance(list(d.children())[-1], nn.Conv2d)  # no activation at the end


def test_discriminator_ndf_and_classes():
    d = get_fc_discriminator(num_classes=16, ndf=8)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == 16
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 1]
    with torch.no_grad():
        out = d(torch.rand(1, 16, 33, 47))
    assert tuple(out.shape) == (1, 1, 1, 1)
