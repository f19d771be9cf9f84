"""The training loop against an independent reference of the ORIGINAL ADVENT iteration (SPEC 7).

The reference below is written from the specification only (plain torch ops, its own image
loading, losses, optimiser groups and schedule, and the segmenter's SGD as PyTorch 0.4.1 ran
the original's parameter list, with its repeated backbone parameters, SPEC 4); it shares
nothing with the project but the network definition. Both start from the same weights and see the same single-image source
and target lists (so shuffling does not matter); after three iterations the project's
snapshot model_2.pth (and its discriminators) must equal the reference weights.
Mutated references (one step of the recipe changed) must differ, which shows that the
comparison is sensitive to each of these steps.

Conditioning: a fresh DeepLab (conv weights N(0, 0.01)) trained with batch statistics at
batch size 1 is chaotic: a 1e-7 relative change of the input image moves the weights by
3-8 % within three iterations, so no two float32 implementations could be compared. The
start weights here are He-normal with the last BatchNorm of every residual branch damped to
0.1 (as tests/data/parity/detweights.py does); then the same perturbation moves the
segmenter by ~2e-7. The discriminators' Adam step divides each gradient element by its own
magnitude, so the few elements whose gradient is at rounding level carry rounding noise
into single weights (~1e-4 of the largest weight); they are compared by the relative norm
of the difference per tensor, with a loose bound on the largest single element.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from advent.dataset.loader import build_train_loader
from advent.domain_adaptation import experiment
from advent.domain_adaptation.config import finalize_paths, load_config
from advent.domain_adaptation.train_UDA import train_domain_adaptation
from advent.model import discriminator
from advent.utils import distributed
from advent.utils.serialization import load_checkpoint

from stage_utils import GTA_TO_TRAIN, IMG_MEAN, TINY, tiny_model, write_yaml

NUM_CLASSES = 19
SRC_SIZE = (96, 64)   # (width, height); the discriminator needs >= 32 pixels a side
TRG_SIZE = (80, 48)
TOL = 1e-6            # segmenter: max |project - reference| / max |reference|, per tensor
D_TOL = 1e-5          # discriminators: ||project - reference|| / ||reference||, per tensor
D_ELEMENT_TOL = 1e-3  # discriminators: max |project - reference| / max |reference|, per tensor
HP = dict(LEARNING_RATE=2.5e-3, LEARNING_RATE_D=1e-3, MOMENTUM=0.9, WEIGHT_DECAY=5e-4, POWER=0.9,
          MAX_ITERS=10, LAMBDA_SEG_MAIN=1.0, LAMBDA_SEG_AUX=0.1, LAMBDA_ADV_MAIN=0.01, LAMBDA_ADV_AUX=0.002,
          LAMBDA_ENT_MAIN=0.01, LAMBDA_ENT_AUX=0.002)
GRAD_TOL = 1e-5      # a backward pass's gradient: ||project - reference|| / ||reference||
N_ITERS = 3           # iterations 0, 1, 2: EARLY_STOP 2 and SAVE_PRED_EVERY 2 save model_2 and stop


# ---------------------------------------------------------------- the independent reference

def ref_image(path, size):
    """PIL RGB, BICUBIC resize to (w, h), float32, RGB -> BGR, minus the mean, NCHW."""
    arr = np.asarray(Image.open(path).convert('RGB').resize(size, Image.BICUBIC), np.float32)
    arr = arr[:, :, ::-1] - IMG_MEAN
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def ref_gta_label(path, size):
    ids = np.asarray(Image.open(path).resize(size, Image.NEAREST), np.int64)
    out = np.full(ids.shape, 255, np.int64)
    for gta_id, train_id in GTA_TO_TRAIN.items():
        out[ids == gta_id] = train_id
    return torch.from_numpy(out)[None]


def ref_ce(logits, label):
    return F.cross_entropy(logits, label, ignore_index=255)


def ref_bce(logits, value):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(value)))


def ref_entropy_map(logits):
    p = F.softmax(logits, dim=1)
    return -p * torch.log2(p + 1e-30) / np.log2(p.shape[1])


def ref_entropy_loss(logits):
    p = F.softmax(logits, dim=1)
    n, c, h, w = p.shape
    return torch.sum(-p * torch.log2(p + 1e-30)) / (n * h * w * np.log2(c))


def ref_disc(state):
    from torch import nn
    layers = []
    channels = [NUM_CLASSES, 64, 128, 256, 512, 1]
    for k in range(5):
        layers.append(nn.Conv2d(channels[k], channels[k + 1], kernel_size=4, stride=2, padding=1))
        if k < 4:
            layers.append(nn.LeakyReLU(0.2, inplace=True))
    net = nn.Sequential(*layers)
    net.load_state_dict(state)
    return net.train()


def ref_backbone_list(model, sgd):
    """The backbone parameter list handed to SGD. '0.4.1': the original's
    get_1x_lr_params_no_scale, which for every backbone block loops over block.modules() and
    yields each sub-module's parameters() (recursive), so a parameter comes once per module
    on its path. 'textbook': each trainable parameter once."""
    blocks = (model.conv1, model.bn1, model.layer1, model.layer2, model.layer3, model.layer4)
    if sgd == 'textbook':
        return [p for block in blocks for p in block.parameters() if p.requires_grad]
    return [p for block in blocks for sub in block.modules() for p in sub.parameters() if p.requires_grad]


class RefSGD:
    """PyTorch 0.4.1's SGD.step over parameter lists that may repeat a parameter: one update
    per entry, in list order: d_p = p.grad; d_p += weight_decay * p (in place on the
    gradient); a momentum buffer of zeros at the first update ever, then
    buf = momentum * buf + d_p; p -= lr * buf."""

    def __init__(self, groups, momentum, weight_decay):
        self.groups, self.momentum, self.weight_decay = groups, momentum, weight_decay
        self.buffers = {}

    def zero_grad(self):
        for group in self.groups:
            for p in group['params']:
                p.grad = None

    @torch.no_grad()
    def step(self):
        for group in self.groups:
            for p in group['params']:
                d_p = p.grad
                d_p.add_(p, alpha=self.weight_decay)
                if id(p) not in self.buffers:
                    self.buffers[id(p)] = torch.zeros_like(p)
                buf = self.buffers[id(p)]
                buf.mul_(self.momentum).add_(d_p)
                p.add_(buf, alpha=-group['lr'])


def record_gradient_contributions(model, contributions):
    """contributions[name] receives, in order, the gradient each backward pass gives each
    trainable parameter of `model`, before it is added to .grad: in an AdvEnt iteration the
    segmentation loss's, then the adversarial loss's (the discriminators' losses see
    detached maps)."""
    for name, param in model.named_parameters():
        if param.requires_grad:
            contributions[name] = []
            param.register_hook(lambda grad, name=name: contributions[name].append(grad.detach().clone()))


def reference_training(init_state, d_states, src, trg, method, multi_level, n_iters=N_ITERS, hp=HP,
                       mutation=None, sgd='0.4.1', gradients=None):
    """The original ADVENT iteration (train_advent / train_minent), n_iters times, with the
    segmenter's SGD as PyTorch 0.4.1 ran it ('0.4.1') or textbook SGD ('textbook').
    Returns (model state, D_aux state, D_main state); `gradients`, a dict, receives the
    segmenter's gradient contributions (see record_gradient_contributions)."""
    model = tiny_model(0, multi_level)
    model.load_state_dict(init_state)
    model.train()
    if gradients is not None:
        record_gradient_contributions(model, gradients)
    backbone = ref_backbone_list(model, sgd)
    heads = [p for name in ('layer5', 'layer6') if hasattr(model, name) for p in getattr(model, name).parameters()]
    head_factor = 1 if mutation == 'heads_at_1x_lr' else 10
    lr, lr_d = hp['LEARNING_RATE'], hp['LEARNING_RATE_D']
    optimizer = RefSGD([{'params': backbone, 'lr': lr}, {'params': heads, 'lr': head_factor * lr}],
                       momentum=hp['MOMENTUM'], weight_decay=hp['WEIGHT_DECAY'])
    d_aux = d_main = None
    opt_d = []
    if method == 'AdvEnt':
        d_aux, d_main = ref_disc(d_states[0]), ref_disc(d_states[1])
        opt_d_aux = torch.optim.Adam(d_aux.parameters(), lr=lr_d, betas=(0.9, 0.99))
        opt_d_main = torch.optim.Adam(d_main.parameters(), lr=lr_d, betas=(0.9, 0.99))
        opt_d = [opt_d_aux, opt_d_main]
    align = mutation != 'align_corners_false'

    def up(x, size):
        return F.interpolate(x, size=(size[1], size[0]), mode='bilinear', align_corners=align)

    def set_grad(flag):
        for d in (d_aux, d_main):
            for p in d.parameters():
                p.requires_grad = flag

    src_img, src_lbl = src
    trg_img = trg
    source_label, target_label = (1, 0) if mutation == 'swapped_domain_labels' else (0, 1)
    for i in range(n_iters):
        optimizer.zero_grad()
        for opt in opt_d:
            opt.zero_grad()
        poly = 1.0 if mutation == 'constant_lr' else (1 - i / hp['MAX_ITERS']) ** hp['POWER']
        optimizer.groups[0]['lr'] = lr * poly
        optimizer.groups[1]['lr'] = head_factor * lr * poly
        for opt in opt_d:
            opt.param_groups[0]['lr'] = lr_d * poly

        if method == 'AdvEnt' and mutation != 'discriminators_not_frozen':
            set_grad(False)
        aux_s, main_s = model(src_img)
        main_s = up(main_s, SRC_SIZE)
        loss = hp['LAMBDA_SEG_MAIN'] * ref_ce(main_s, src_lbl)
        if multi_level:
            aux_s = up(aux_s, SRC_SIZE)
            loss = loss + hp['LAMBDA_SEG_AUX'] * ref_ce(aux_s, src_lbl)
        loss.backward()

        aux_t, main_t = model(trg_img)
        main_t = up(main_t, TRG_SIZE)
        if multi_level:
            aux_t = up(aux_t, TRG_SIZE)
        if method == 'AdvEnt':
            loss = hp['LAMBDA_ADV_MAIN'] * ref_bce(d_main(ref_entropy_map(main_t)), source_label)
            if multi_level:
                loss = loss + hp['LAMBDA_ADV_AUX'] * ref_bce(d_aux(ref_entropy_map(aux_t)), source_label)
            loss.backward()
            set_grad(True)
            pairs = ([(d_aux, aux_s, aux_t)] if multi_level else []) + [(d_main, main_s, main_t)]
            for d, p_src, _ in pairs:
                (ref_bce(d(ref_entropy_map(p_src.detach())), source_label) / 2).backward()
            for d, _, p_trg in pairs:
                (ref_bce(d(ref_entropy_map(p_trg.detach())), target_label) / 2).backward()
        elif method == 'MinEnt':
            loss = hp['LAMBDA_ENT_MAIN'] * ref_entropy_loss(main_t)
            if multi_level:
                loss = loss + hp['LAMBDA_ENT_AUX'] * ref_entropy_loss(aux_t)
            loss.backward()

        optimizer.step()
        if method == 'AdvEnt':
            if multi_level:
                opt_d_aux.step()
            opt_d_main.step()
    states = [model.state_dict()]
    states += [d.state_dict() if d is not None else None for d in (d_aux, d_main)]
    return states


# ---------------------------------------------------------------- the project's run

def project_config(tmp_path, trees, method, multi_level, early_stop, save_every, hp=HP, name='cfg.yml'):
    train = {'MODEL': TINY, 'MULTI_LEVEL': multi_level, 'DA_METHOD': method,
             'INPUT_SIZE_SOURCE': list(SRC_SIZE), 'INPUT_SIZE_TARGET': list(TRG_SIZE),
             'EARLY_STOP': early_stop, 'SAVE_PRED_EVERY': save_every,
             'SNAPSHOT_DIR': str(tmp_path / 'snapshots'), **hp}
    path = write_yaml(tmp_path / name, {
        'SOURCE': 'GTA', 'TARGET': 'Cityscapes', 'NUM_WORKERS': 0, 'NUM_CLASSES': NUM_CLASSES,
        'DATA_DIRECTORY_SOURCE': str(trees / 'GTA5'), 'DATA_LIST_SOURCE': str(trees / 'lists' / 'gta5_one.txt'),
        'DATA_DIRECTORY_TARGET': str(trees / 'Cityscapes'),
        'DATA_LIST_TARGET': str(trees / 'lists' / 'cs_train_one.txt'),
        'EXP_ROOT_SNAPSHOT': str(tmp_path / 'exp'), 'TRAIN': train})
    return finalize_paths(load_config(path))


def run_project(cfg, init_state, d_states, monkeypatch, gradients=None):
    """train_domain_adaptation on loaders from the project's builders; returns the D builder
    calls. `gradients`, a dict, receives the segmenter's gradient contributions
    (see record_gradient_contributions)."""
    calls = []
    real_builder = discriminator.get_fc_discriminator

    def recording_builder(num_classes, ndf=64):
        net = real_builder(num_classes, ndf)
        net.load_state_dict(d_states[len(calls)])
        calls.append({'num_classes': num_classes, 'ndf': ndf})
        return net

    monkeypatch.setattr(discriminator, 'get_fc_discriminator', recording_builder)
    # the comparison runs on the CPU wherever the tests run
    monkeypatch.setattr(distributed, 'device_for_rank', lambda gpu_id: torch.device('cpu'))
    model = experiment.build_segmenter(cfg.TRAIN.MODEL, cfg.NUM_CLASSES, cfg.TRAIN.MULTI_LEVEL)
    model.load_state_dict(init_state)
    if gradients is not None:
        record_gradient_contributions(model, gradients)
    source = experiment.build_source_dataset(cfg)
    target = experiment.build_target_dataset(cfg, cfg.TRAIN.MAX_ITERS)
    train_domain_adaptation(model, build_train_loader(source, 1, 0, 1234), build_train_loader(target, 1, 0, 1234),
                            cfg)
    return calls


def norm_rel_diff(state, reference):
    """max over float tensors of ||a - b|| / ||b||."""
    worst, worst_key = 0.0, None
    for key, ref in reference.items():
        if ref.is_floating_point():
            diff = ((state[key].double() - ref.double()).norm() / (ref.double().norm() + 1e-30)).item()
            if diff > worst:
                worst, worst_key = diff, key
    return worst, worst_key


def conditioned_init(seed, multi_level):
    """Tiny DeepLab start weights: He-normal backbone convs, bn3 (the last BN of every
    residual branch) at 0.1, heads as initialised (N(0, 0.01))."""
    state = tiny_model(seed, multi_level).state_dict()
    gen = torch.Generator().manual_seed(seed)
    for key, value in state.items():
        if key.endswith('weight') and value.dim() == 4 and not key.startswith(('layer5', 'layer6')):
            state[key] = torch.randn(value.shape, generator=gen) * math.sqrt(2.0 / value[0].numel())
        elif key.endswith('bn3.weight'):
            state[key] = torch.full_like(value, 0.1)
    return state


def max_rel_diff(state, reference, exact_int=True):
    """max over tensors of max|a - b| / max|b|; integer tensors (BN counters) must be equal."""
    assert set(state) == set(reference), set(state) ^ set(reference)
    worst, worst_key = 0.0, None
    for key, ref in reference.items():
        got = state[key]
        assert got.shape == ref.shape, key
        if not ref.is_floating_point():
            assert not exact_int or torch.equal(got, ref), f'{key}: {got} != {ref}'
            continue
        scale = ref.abs().max().item() or 1.0
        diff = (got.double() - ref.double()).abs().max().item() / scale
        if diff > worst:
            worst, worst_key = diff, key
    return worst, worst_key


@pytest.fixture(scope='module')
def weights():
    init = {ml: conditioned_init(7, ml) for ml in (True, False)}
    d_states = []
    for seed in (11, 12):
        torch.manual_seed(seed)
        d_states.append(discriminator.get_fc_discriminator(NUM_CLASSES).state_dict())
    return init, d_states


@pytest.fixture(scope='module')
def batches(parity_trees):
    trees = Path(parity_trees)
    gta = (trees / 'lists' / 'gta5_one.txt').read_text().split()[0]
    cs = (trees / 'lists' / 'cs_train_one.txt').read_text().split()[0]
    src = (ref_image(trees / 'GTA5' / 'images' / gta, SRC_SIZE),
           ref_gta_label(trees / 'GTA5' / 'labels' / gta, SRC_SIZE))
    trg = ref_image(trees / 'Cityscapes' / 'leftImg8bit' / 'train' / cs, TRG_SIZE)
    return trees, src, trg


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """One intra-op thread: the runs are tiny, and two threads on a busy two-core machine
    spin-wait far longer than they compute."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


_PROJECT_RUNS = {}


def project_run(key, tmp_path_factory, batches, weights):
    """The project's 3-iteration run for (method, multi_level), once per module."""
    if key not in _PROJECT_RUNS:
        method, multi_level = key
        trees = batches[0]
        tmp = tmp_path_factory.mktemp(f'{method}_{multi_level}')
        cfg = project_config(tmp, trees, method, multi_level, early_stop=2, save_every=2)
        with pytest.MonkeyPatch.context() as mp:
            calls = run_project(cfg, weights[0][multi_level], weights[1], mp)
        snap = tmp / 'snapshots'
        _PROJECT_RUNS[key] = (snap, calls)
    return _PROJECT_RUNS[key]


CASES = [('AdvEnt', True), ('AdvEnt', False), ('MinEnt', True), ('MinEnt', False)]


@pytest.mark.parametrize('method,multi_level', CASES)
def test_three_iterations_match_reference(method, multi_level, tmp_path_factory, batches, weights):
    trees, src, trg = batches
    init, d_states = weights
    snap, calls = project_run((method, multi_level), tmp_path_factory, batches, weights)
    ref_model, ref_d_aux, ref_d_main = reference_training(init[multi_level], d_states, src, trg, method,
                                                          multi_level)
    saved = sorted(p.name for p in snap.glob('model_*.pth'))
    if method == 'AdvEnt':
        assert saved == ['model_2.pth', 'model_2_D_aux.pth', 'model_2_D_main.pth']
        # the builder was looked up on the module at call time: once per discriminator
        assert calls == [{'num_classes': NUM_CLASSES, 'ndf': 64}] * 2
    else:
        assert saved == ['model_2.pth']
        assert calls == []
    assert (snap / 'model_2.pth').is_file()

    diff, key = max_rel_diff(load_checkpoint(snap / 'model_2.pth'), ref_model)
    assert diff <= TOL, f'segmenter differs from the reference at {key}: {diff:.3g}'
    # the weights did move, far beyond the tolerance
    moved, _ = max_rel_diff(ref_model, init[multi_level], exact_int=False)
    assert moved > 1e3 * TOL
    if method == 'AdvEnt':
        for name, ref, initial in (('D_main', ref_d_main, d_states[1]), ('D_aux', ref_d_aux, d_states[0])):
            got = load_checkpoint(snap / f'model_2_{name}.pth')
            diff, key = norm_rel_diff(got, ref)
            assert diff <= D_TOL, f'{name} differs from the reference at {key}: {diff:.3g}'
            diff, key = max_rel_diff(got, ref)
            assert diff <= D_ELEMENT_TOL, f'{name} differs from the reference at {key}: {diff:.3g}'
        assert max_rel_diff(ref_d_main, d_states[1])[0] > 1e3 * TOL
        if multi_level:
            assert max_rel_diff(ref_d_aux, d_states[0])[0] > 1e3 * TOL
        else:
            # single level: the aux discriminator exists (as in the original) but never steps
            assert max_rel_diff(ref_d_aux, d_states[0])[0] == 0


def gradient_distance(a, b=None):
    """||a - b|| (||a|| without b) over all the tensors of {name: gradient} dicts, in float64."""
    assert b is None or a.keys() == b.keys()
    return math.sqrt(sum(((a[k].double() - (0 if b is None else b[k].double())) ** 2).sum().item() for k in a))


def test_default_hyperparameters_match_reference(tmp_path, batches, weights, monkeypatch):
    """The published learning rates and loss weights (SPEC 3), AdvEnt, multi-level.

    At these rates the adversarial branch moves the weights of three iterations by about
    float32 rounding, and its share of the summed gradient is close to rounding too, so
    neither could tell whether it ran. Its own gradient (the second backward pass of each
    iteration, before it is added to .grad) is compared on its own, relative to its size.
    """
    trees, src, trg = batches
    init, d_states = weights
    defaults = load_config().TRAIN
    hp = {key: defaults[key] for key in HP}
    hp['MAX_ITERS'] = 10
    assert hp['LEARNING_RATE'] == 2.5e-4 and hp['LAMBDA_ADV_MAIN'] == 0.001
    cfg = project_config(tmp_path, trees, 'AdvEnt', True, early_stop=2, save_every=2, hp=hp)
    project_gradients, ref_gradients = {}, {}
    run_project(cfg, init[True], d_states, monkeypatch, gradients=project_gradients)
    ref = reference_training(init[True], d_states, src, trg, 'AdvEnt', True, hp=hp, gradients=ref_gradients)
    snap = Path(cfg.TRAIN.SNAPSHOT_DIR)
    diff, key = max_rel_diff(load_checkpoint(snap / 'model_2.pth'), ref[0])
    assert diff <= TOL, f'segmenter differs from the reference at {key}: {diff:.3g}'
    for name, r in (('D_aux', ref[1]), ('D_main', ref[2])):
        diff, key = norm_rel_diff(load_checkpoint(snap / f'model_2_{name}.pth'), r)
        assert diff <= D_TOL, f'{name} differs from the reference at {key}: {diff:.3g}'

    # two backward passes reach the segmenter in each iteration: segmentation, adversarial
    assert project_gradients.keys() == ref_gradients.keys()
    counts = {len(v) for v in project_gradients.values()}
    assert counts == {2 * N_ITERS}, f'{counts} gradient contributions per parameter in {N_ITERS} iterations'
    for i in range(N_ITERS):
        for part, which in (('segmentation', 2 * i), ('adversarial', 2 * i + 1)):
            got = {k: v[which] for k, v in project_gradients.items()}
            expected = {k: v[which] for k, v in ref_gradients.items()}
            error, size = gradient_distance(got, expected), gradient_distance(expected)
            assert error <= GRAD_TOL * size, \
                f'iteration {i}: the {part} gradient is {error / size:.3g} of its size from the reference'


MUTATIONS = ['discriminators_not_frozen', 'heads_at_1x_lr', 'swapped_domain_labels', 'constant_lr',
             'align_corners_false']


@pytest.mark.parametrize('mutation', MUTATIONS)
def test_reference_comparison_is_sensitive(mutation, tmp_path_factory, batches, weights):
    """Each changed step of the recipe moves the weights far beyond the tolerance."""
    trees, src, trg = batches
    init, d_states = weights
    snap, _ = project_run(('AdvEnt', True), tmp_path_factory, batches, weights)
    mutated = reference_training(init[True], d_states, src, trg, 'AdvEnt', True, mutation=mutation)
    files = ['model_2.pth', 'model_2_D_aux.pth', 'model_2_D_main.pth']
    model_diff = max_rel_diff(load_checkpoint(snap / files[0]), mutated[0])[0]
    d_diff = max(norm_rel_diff(load_checkpoint(snap / f), m)[0] for f, m in zip(files[1:], mutated[1:]))
    assert model_diff > 10 * TOL or d_diff > 100 * D_TOL, \
        f'{mutation}: only {model_diff:.3g} (segmenter) and {d_diff:.3g} (discriminators) from the project'


def test_unique_parameter_update_is_caught(tmp_path_factory, batches, weights):
    """The reference with today's textbook SGD (each backbone parameter updated once, not
    once per occurrence in the original's list) is far from the project's default run."""
    trees, src, trg = batches
    init, d_states = weights
    snap, _ = project_run(('AdvEnt', True), tmp_path_factory, batches, weights)
    textbook = reference_training(init[True], d_states, src, trg, 'AdvEnt', True, sgd='textbook')
    diff, key = max_rel_diff(load_checkpoint(snap / 'model_2.pth'), textbook[0])
    assert diff > 100 * TOL, f'the textbook update is only {diff:.3g} from the project ({key})'


def test_textbook_sgd_setting_matches_textbook_reference(tmp_path, batches, weights, monkeypatch):
    """TRAIN.ORIGINAL_SGD False: each parameter updated once per step."""
    trees, src, trg = batches
    init, d_states = weights
    cfg = project_config(tmp_path, trees, 'AdvEnt', True, early_stop=2, save_every=2,
                         hp=dict(HP, ORIGINAL_SGD=False))
    run_project(cfg, init[True], d_states, monkeypatch)
    ref = reference_training(init[True], d_states, src, trg, 'AdvEnt', True, sgd='textbook')
    diff, key = max_rel_diff(load_checkpoint(Path(cfg.TRAIN.SNAPSHOT_DIR) / 'model_2.pth'), ref[0])
    assert diff <= TOL, f'segmenter differs from the textbook reference at {key}: {diff:.3g}'


# ---------------------------------------------------------------- stopping rule and snapshot names

def expected_schedule(early_stop, save_every):
    """'save when i % SAVE == 0 and i != 0; stop after a save once i >= EARLY_STOP - 1';
    at most iterations 0 .. EARLY_STOP. Returns (saved iterations, iterations run)."""
    saved, count = [], 0
    for i in range(early_stop + 1):
        count += 1
        if i % save_every == 0 and i != 0:
            saved.append(i)
            if i >= early_stop - 1:
                break
    return saved, count


def test_expected_schedule_examples():
    assert expected_schedule(4, 2) == ([2, 4], 5)
    assert expected_schedule(120000, 2000)[0][-1] == 120000
    assert expected_schedule(5, 2) == ([2, 4], 5)
    assert expected_schedule(2, 1) == ([1], 2)


@pytest.mark.parametrize('early_stop,save_every', [(4, 2), (5, 2), (5, 3), (2, 1)])
def test_stopping_rule_and_snapshot_names(early_stop, save_every, tmp_path, parity_trees, weights, monkeypatch):
    from advent.dataset.gta5 import GTA5DataSet
    hp = dict(HP, MAX_ITERS=20)
    cfg = project_config(tmp_path, Path(parity_trees), 'AdvEnt', True, early_stop, save_every, hp=hp)
    cfg.TRAIN.INPUT_SIZE_SOURCE = [64, 32]
    cfg.TRAIN.INPUT_SIZE_TARGET = [64, 32]
    fetched = []
    real_getitem = GTA5DataSet.__getitem__
    monkeypatch.setattr(GTA5DataSet, '__getitem__', lambda self, i: fetched.append(i) or real_getitem(self, i))
    from advent.domain_adaptation import train_UDA
    bars, real_bar = [], train_UDA.progress_bar
    monkeypatch.setattr(train_UDA, 'progress_bar', lambda *args, **kwargs: bars.append(real_bar(*args, **kwargs))
                        or bars[-1])
    run_project(cfg, weights[0][True], weights[1], monkeypatch)
    saved, count = expected_schedule(early_stop, save_every)
    assert bars[0].n == bars[0].total == count   # the bar ends at its total: every iteration run, no more
    names = sorted(p.name for p in Path(cfg.TRAIN.SNAPSHOT_DIR).glob('model_*.pth'))
    expected = sorted(f'model_{i}{suffix}.pth' for i in saved for suffix in ('', '_D_aux', '_D_main'))
    assert names == expected
    assert train_UDA.final_snapshot_iteration(cfg) == max(saved)   # what the pipeline waits for
    # one source batch per iteration (NUM_WORKERS 0: nothing is prefetched)
    assert len(fetched) == count
    if (early_stop, save_every) == (4, 2):
        assert names == ['model_2.pth', 'model_2_D_aux.pth', 'model_2_D_main.pth',
                         'model_4.pth', 'model_4_D_aux.pth', 'model_4_D_main.pth']
