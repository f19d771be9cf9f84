"""The segmenter's optimiser (SPEC 4, "The original's SGD update"): the repetition count of
every parameter, the 0.4.1 step against a parameter list that really repeats them, the
state dict, and the fp16 gradient scaler. The comparison with the original's own run is
in test_parity.py (G9)."""
import copy

import pytest
import torch

from advent.domain_adaptation.config import default_config
from advent.domain_adaptation.optim import OriginalSGD
from advent.domain_adaptation.train_UDA import segmenter_optimizer
from advent.model.deeplabv2 import MODEL_VARIANTS, get_deeplab_v2

pytestmark = pytest.mark.usefixtures('one_torch_thread')

HEADS = ('layer5.', 'layer6.')


def counts_by_name(model, optimizer):
    names = {id(p): name for name, p in model.named_parameters()}
    return {names[id(p)]: count for group in optimizer.param_groups
            for p, count in zip(group['params'], group['occurrences'])}


def expected_count(name):
    """Once per module on the parameter's path below the backbone block (SPEC 4): conv1 1,
    layerX.Y.convN 3, layerX.Y.downsample.0 4; the heads once."""
    if name.startswith(HEADS):
        return 1
    return len(name.split('.')) - 1  # the module path without the parameter's own name


def tiny(multi_level=True, seed=0):
    torch.manual_seed(seed)
    return get_deeplab_v2(num_classes=5, multi_level=multi_level, variant='DeepLabv2-tiny')


def test_resnet101_repetition_counts(r101_multi):
    opt = segmenter_optimizer(r101_multi, default_config())
    counts = counts_by_name(r101_multi, opt)
    trainable = [name for name, p in r101_multi.named_parameters() if p.requires_grad]
    assert sorted(counts) == sorted(trainable)  # each trainable parameter once in the groups
    assert counts['conv1.weight'] == 1
    bottleneck = [n for n in counts if n.startswith('layer') and '.conv' in n and not n.startswith(HEADS)]
    downsample = [n for n in counts if '.downsample.' in n]
    heads = [n for n in counts if n.startswith(HEADS)]
    assert len(bottleneck) == 33 * 3 and {counts[n] for n in bottleneck} == {3}
    assert len(downsample) == 4 and {counts[n] for n in downsample} == {4}
    assert len(heads) == 16 and {counts[n] for n in heads} == {1}
    assert len(counts) == 1 + 99 + 4 + 16
    assert [g['lr'] for g in opt.param_groups] == pytest.approx([2.5e-4, 2.5e-3])


@pytest.mark.parametrize('variant', [v for v in MODEL_VARIANTS if v != 'DeepLabv2'])
@pytest.mark.parametrize('multi_level', [True, False])
def test_reduced_variants_follow_the_same_rule(variant, multi_level):
    torch.manual_seed(0)
    model = get_deeplab_v2(num_classes=5, multi_level=multi_level, variant=variant)
    counts = counts_by_name(model, segmenter_optimizer(model, default_config()))
    assert counts == {name: expected_count(name) for name, p in model.named_parameters() if p.requires_grad}


def test_textbook_setting_is_torch_sgd_with_each_parameter_once():
    model = tiny()
    cfg = default_config()
    cfg.TRAIN.ORIGINAL_SGD = False
    opt = segmenter_optimizer(model, cfg)
    assert type(opt) is torch.optim.SGD
    params = [p for g in opt.param_groups for p in g['params']]
    assert len({id(p) for p in params}) == len(params) == sum(p.requires_grad for p in model.parameters())


def step_041(param_lists, lrs, momentum, weight_decay, buffers):
    """PyTorch 0.4.1's SGD.step over parameter lists that may name a parameter several
    times, as SPEC 4 describes it (written out here, not taken from the project)."""
    with torch.no_grad():
        for params, lr in zip(param_lists, lrs):
            for p in params:
                d_p = p.grad
                d_p.add_(p, alpha=weight_decay)
                if id(p) not in buffers:
                    buffers[id(p)] = torch.zeros_like(p)
                buffers[id(p)].mul_(momentum).add_(d_p)
                p.add_(buffers[id(p)], alpha=-lr)


def original_generator(model):
    """The original's get_1x_lr_params_no_scale, duplicates kept."""
    for block in (model.conv1, model.bn1, model.layer1, model.layer2, model.layer3, model.layer4):
        for sub in block.modules():
            for p in sub.parameters():
                if p.requires_grad:
                    yield p


def random_grads(model, seed):
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.randn(p.shape, generator=gen) for name, p in model.named_parameters() if p.requires_grad}


def set_grads(model, grads):
    for name, p in model.named_parameters():
        if name in grads:
            p.grad = grads[name].clone()


def test_steps_equal_041_with_a_repeating_parameter_list():
    """Three steps of the project's optimiser equal 0.4.1's step over the original's list."""
    model, reference = tiny(), tiny()
    cfg = default_config()
    cfg.TRAIN.LEARNING_RATE = 1e-2
    opt = segmenter_optimizer(model, cfg)
    lists = [list(original_generator(reference)), list(reference.layer5.parameters()) +
             list(reference.layer6.parameters())]
    assert len(lists[0]) > len({id(p) for p in lists[0]})  # the list does repeat parameters
    buffers = {}
    for step in range(3):
        grads = random_grads(model, step)
        set_grads(model, grads)
        set_grads(reference, grads)
        lr = 1e-2 * (1 - step / 10) ** 0.9
        for group, group_lr in zip(opt.param_groups, (lr, 10 * lr)):
            group['lr'] = group_lr
        opt.step()
        step_041(lists, (lr, 10 * lr), 0.9, 5e-4, buffers)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name
    for p, q in zip(model.parameters(), reference.parameters()):
        if p.requires_grad:
            assert torch.equal(opt.state[p]['momentum_buffer'], buffers[id(q)])


def test_no_momentum_and_a_repeated_group_entry_refused():
    p = torch.nn.Parameter(torch.ones(3))
    opt = OriginalSGD([{'params': [p]}], {id(p): 2}, lr=0.1, momentum=0.0, weight_decay=0.0)
    p.grad = torch.ones(3)
    opt.step()
    assert torch.allclose(p.detach(), torch.full((3,), 0.8)) and not opt.state
    with pytest.raises(ValueError, match='twice'):
        OriginalSGD([{'params': [p, p]}], {}, lr=0.1, momentum=0.9, weight_decay=0.0)


def test_state_dict_round_trip_continues_bit_identically():
    cfg = default_config()
    cfg.TRAIN.LEARNING_RATE = 1e-2
    model = tiny()
    opt = segmenter_optimizer(model, cfg)
    for step in range(2):
        set_grads(model, random_grads(model, step))
        opt.step()
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    resumed = tiny(seed=1)
    resumed.load_state_dict(saved_model)
    resumed_opt = segmenter_optimizer(resumed, cfg)
    resumed_opt.load_state_dict(saved_opt)
    for m, o in ((model, opt), (resumed, resumed_opt)):
        set_grads(m, random_grads(m, 5))
        o.step()
    for (name, p), q in zip(model.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), name
    # a state of the textbook optimiser is not silently continued with the original rule
    cfg.TRAIN.ORIGINAL_SGD = False
    textbook = segmenter_optimizer(model, cfg)
    with pytest.raises(ValueError, match='ORIGINAL_SGD False'):
        resumed_opt.load_state_dict(textbook.state_dict())


def test_fp16_scaler_skips_a_step_with_inf_gradient_and_unscales_the_others():
    cfg = default_config()
    cfg.TRAIN.LEARNING_RATE = 1e-2
    model = tiny()
    opt = segmenter_optimizer(model, cfg)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 10)
    image = torch.randn(1, 3, 33, 33, generator=torch.Generator().manual_seed(0))

    def scaled_backward():
        opt.zero_grad()
        aux, main = model(image)
        scaler.scale(main.square().mean() + aux.square().mean()).backward()

    scaled_backward()
    model.layer2[0].conv2.weight.grad[0, 0, 0, 0] = float('inf')
    before = copy.deepcopy(model.state_dict())
    scaler.step(opt)
    scaler.update()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not opt.state  # no momentum buffer was created by the skipped step
    assert scaler.get_scale() == 2.0 ** 9

    scaled_backward()
    reference = copy.deepcopy(model)  # the same weights; deepcopy leaves the gradients behind
    for p, q in zip(model.parameters(), reference.parameters()):
        if p.grad is not None:
            q.grad = p.grad / scaler.get_scale()  # a power of two: exact
    reference_opt = segmenter_optimizer(reference, cfg)
    scaler.step(opt)
    scaler.update()
    reference_opt.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name
    assert not torch.equal(before['layer2.0.conv2.weight'], model.layer2[0].conv2.weight)
