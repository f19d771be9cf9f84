"""Parity with the original IntraDA/ADVENT code: the same comparisons as the shared checks
check_model.py (G1, G2), check_funcs.py (G3 + config defaults), check_datasets.py (G4)
and check_optimizer.py (G9), with the same tolerances (relative error <= 1e-4, labels
exact; the optimiser 1e-5). The golden outputs were recorded by running the original code
on deterministic inputs (tests/data/parity); G9 is three steps of the original's segmenter
optimiser as PyTorch 0.4.1 ran it."""
import numpy as np
import pytest
import torch

from conftest import IMG_MEAN, load_parity, rel_err

TOL = 1e-4


# ---------------------------------------------------------------- G1 / G2: model and discriminator

@pytest.fixture(scope='module')
def multi_outputs():
    """Everything check_model.py computes with the multi-level model, in its order:
    eval pass on x, then a train-mode pass on x2 (updating the BN running statistics)."""
    from detweights import det_checkpoint, det_input
    from advent.model.deeplabv2 import get_deeplab_v2
    m = get_deeplab_v2(num_classes=19, multi_level=True)
    m.load_state_dict(det_checkpoint('deeplab_multi'), strict=True)
    out = {}
    with torch.no_grad():
        m.eval()
        aux, main = m(torch.from_numpy(det_input('G1/x', (1, 3, 65, 129), 40.0)))
        out['eval_aux'], out['eval_main'] = aux.numpy(), main.numpy()
        m.train()
        aux, main = m(torch.from_numpy(det_input('G1/x2', (2, 3, 65, 129), 40.0)))
        out['train_aux'], out['train_main'] = aux.numpy(), main.numpy()
    sd = m.state_dict()
    out['train_bn1_running_mean'] = sd['bn1.running_mean'].numpy()
    out['train_layer4_2_bn3_running_var'] = sd['layer4.2.bn3.running_var'].numpy()
    return out


@pytest.mark.parametrize('key', ['eval_aux', 'eval_main', 'train_aux', 'train_main',
                                 'train_bn1_running_mean', 'train_layer4_2_bn3_running_var'])
def test_multi_level_model(multi_outputs, g1, key):
    assert rel_err(multi_outputs[key], g1[key]) <= TOL


def test_single_level_model(g1):
    from detweights import det_checkpoint, det_input
    from advent.model.deeplabv2 import get_deeplab_v2
    s = get_deeplab_v2(num_classes=19, multi_level=False)
    s.load_state_dict(det_checkpoint('deeplab_single'), strict=True)
    s.eval()
    with torch.no_grad():
        aux, main = s(torch.from_numpy(det_input('G1/x', (1, 3, 65, 129), 40.0)))
    assert aux is None, 'single-level model must return None as its first output'
    assert rel_err(main.numpy(), g1['single_main']) <= TOL


def test_discriminator(g1):
    from detweights import det_input, det_state_dict
    from advent.model.discriminator import get_fc_discriminator
    d = get_fc_discriminator(num_classes=19)
    d.load_state_dict(det_state_dict('disc'), strict=True)
    d.eval()
    with torch.no_grad():
        z = torch.sigmoid(torch.from_numpy(det_input('G2/x', (1, 19, 65, 129), 2.0)))
        out = d(z)
    assert rel_err(out.numpy(), g1['disc_out']) <= TOL


# ---------------------------------------------------------------- G3: functions and losses

def test_entropy_functions(g3):
    from advent.utils.func import prob_2_entropy
    from advent.utils.loss import entropy_loss
    prob = torch.softmax(torch.from_numpy(g3['ce_logits']), 1)
    assert rel_err(prob_2_entropy(prob).numpy(), g3['p2e_out']) <= TOL
    assert rel_err(float(entropy_loss(prob)), g3['entropy_loss']) <= TOL


def test_cross_entropy_2d(g3):
    from advent.utils.loss import cross_entropy_2d
    logits = torch.from_numpy(g3['ce_logits'])
    target = torch.from_numpy(g3['ce_target']).long()
    assert rel_err(float(cross_entropy_2d(logits, target)), g3['ce_loss']) <= TOL


def test_bce_loss(g3):
    from advent.utils.func import bce_loss
    d_out = torch.from_numpy(g3['bce_in'])
    assert rel_err(float(bce_loss(d_out, 0)), g3['bce_0']) <= TOL
    assert rel_err(float(bce_loss(d_out, 1)), g3['bce_1']) <= TOL


def test_lr_poly(g3):
    from advent.utils.func import lr_poly
    iters = [int(i) for i in g3['lr_iters']]
    assert rel_err([lr_poly(2.5e-4, i, 10, 0.9) for i in iters], g3['lr_seg']) <= TOL
    assert rel_err([lr_poly(1e-4, i, 10, 0.9) for i in iters], g3['lr_d']) <= TOL


def test_fast_hist_and_iou(g3):
    from advent.utils.func import fast_hist, per_class_iu
    h = np.asarray(fast_hist(g3['hist_a'], g3['hist_b'], 19))
    assert h.shape == (19, 19)
    np.testing.assert_array_equal(h, g3['hist'])  # labels 255 ignored, rows = labels
    iu = np.asarray(per_class_iu(g3['hist']), np.float64)
    gi = g3['iu']
    np.testing.assert_array_equal(np.isnan(iu), np.isnan(gi))
    ok = ~np.isnan(gi)
    assert rel_err(iu[ok], gi[ok]) <= TOL


def _same(a, b):
    """check_funcs.py's comparison of a config value with the original's default."""
    if isinstance(b, list):
        if isinstance(a, np.ndarray):
            a = a.tolist()
        if isinstance(a, tuple):
            a = list(a)
        return isinstance(a, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(b, (bool, str)):
        return a == b
    if isinstance(b, (int, float)):
        try:
            return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


def _config_differences(c, gold):
    bad, n = [], 0
    for k, v in gold.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                n += 1
                got = c[k][kk] if kk in c[k] else '<missing>'
                if not _same(got, vv):
                    bad.append(f'{k}.{kk}={got!r} (original {vv!r})')
        else:
            n += 1
            got = c[k] if k in c else '<missing>'
            if not _same(got, v):
                bad.append(f'{k}={got!r} (original {v!r})')
    return bad, n


def test_config_defaults_equal_original(parity_meta):
    from advent.domain_adaptation.config import cfg, default_config
    gold = parity_meta['config_defaults']
    for c in (cfg, default_config()):
        bad, n = _config_differences(c, gold)
        assert not bad, 'config defaults differ: ' + '; '.join(bad[:5])
        assert n == 41


def test_config_comparison_detects_a_change(parity_meta):
    from advent.domain_adaptation.config import default_config
    c = default_config()
    c.TRAIN.LAMBDA_ADV_MAIN = 0.002
    c.TEST.INPUT_SIZE_TARGET = (1024, 512)  # a tuple still compares equal to the list
    bad, _ = _config_differences(c, parity_meta['config_defaults'])
    assert len(bad) == 1 and bad[0].startswith('TRAIN.LAMBDA_ADV_MAIN')


# ---------------------------------------------------------------- G4: datasets

def _parity_sets(T):
    from advent.dataset.cityscapes import CityscapesDataSet
    from advent.dataset.gta5 import GTA5DataSet
    M = IMG_MEAN
    return {
        'gta': GTA5DataSet(T + '/GTA5', T + '/lists/gta5_all.txt', set='all', max_iters=None,
                           crop_size=(129, 65), mean=M),
        'cstrain': CityscapesDataSet(T + '/Cityscapes', T + '/lists/cs_train.txt', set='train',
                                     crop_size=(129, 65), mean=M),
        'csval': CityscapesDataSet(T + '/Cityscapes', T + '/lists/cs_val.txt', set='val',
                                   crop_size=(129, 65), mean=M, labels_size=(258, 130)),
    }


@pytest.mark.parametrize('key', ['gta', 'cstrain', 'csval'])
def test_dataset_items(parity_trees, g4, parity_meta, key):
    ds = _parity_sets(parity_trees)[key]
    names = parity_meta['g4_names'][key]
    assert len(ds) == len(names)
    for i in range(len(ds)):
        item = ds[i]
        assert len(item) == 4, 'item must be (image, label, shape, name)'
        img, lab, shp, name = item
        img, lab = np.asarray(img), np.asarray(lab)
        assert name == names[i]
        e = rel_err(img, g4[f'{key}_{i}_image'])
        assert e <= TOL, f'{key}[{i}] image rel err {e:.3g}'
        gl = g4[f'{key}_{i}_label']
        assert lab.shape == gl.shape
        neq = int((lab.astype(np.float64) != gl.astype(np.float64)).sum())
        assert neq == 0, f'{key}[{i}] label differs in {neq}/{gl.size} pixels'
        np.testing.assert_array_equal(np.asarray(shp).ravel(), g4[f'{key}_{i}_shape'].ravel())


def test_dataset_max_iters_and_class_names(parity_trees, parity_meta):
    from advent.dataset.gta5 import GTA5DataSet
    T = parity_trees
    n_rep = len(GTA5DataSet(T + '/GTA5', T + '/lists/gta5_all.txt', max_iters=5, crop_size=(129, 65),
                            mean=IMG_MEAN))
    assert n_rep == parity_meta['g4_len_gta_maxiters5']
    cn = [str(c) for c in _parity_sets(T)['csval'].class_names]
    assert cn == parity_meta['g4_class_names']


def test_dataset_dtypes_as_original(parity_trees, parity_meta):
    """The original returned float32 images everywhere, float32 GTA5 labels and int64 Cityscapes labels."""
    for key, ds in _parity_sets(parity_trees).items():
        img_dtype, lab_dtype = parity_meta['g4_dtypes'][key]
        img, lab, _, _ = ds[0]
        assert np.asarray(img).dtype == np.dtype(img_dtype), key
        assert np.asarray(lab).dtype == np.dtype(lab_dtype), key


# ---------------------------------------------------------------- G9: the segmenter's SGD

OPT_TOL = 1e-5  # check_optimizer.py: relative error of each parameter's |moved| norm


@pytest.fixture(scope='module')
def g9_setup():
    """check_optimizer.py's setting: the det ResNet-101, a det gradient per trainable
    parameter and step, the golden config (lr 0.01, MAX_ITERS 10)."""
    from detweights import det_checkpoint, det_input
    from advent.domain_adaptation.config import default_config
    from advent.model.deeplabv2 import get_deeplab_v2
    g = load_parity('g9_optimizer.json')
    cfg = default_config()
    cfg.TRAIN.update(g['settings']['cfg']['TRAIN'])
    model = get_deeplab_v2(num_classes=19, multi_level=True)
    start = det_checkpoint('deeplab_multi')
    model.load_state_dict(start, strict=True)
    grads = [{name: torch.from_numpy(det_input(f'G9/{name}/{step}', tuple(p.shape), 0.01))
              for name, p in model.named_parameters() if p.requires_grad}
             for step in range(g['settings']['steps'])]
    return g, cfg, model, start, grads


def _g9_run(setup, make_optimizer):
    """Three steps from the det weights, adjust_learning_rate before each; the moved weights."""
    from advent.utils.func import adjust_learning_rate
    g, cfg, model, start, grads = setup
    model.load_state_dict(start, strict=True)
    opt = make_optimizer(model, cfg)
    params = dict(model.named_parameters())
    for step, step_grads in enumerate(grads):
        opt.zero_grad()
        for name, grad in step_grads.items():
            params[name].grad = grad.clone()
        adjust_learning_rate(opt, step, cfg)
        opt.step()
    return {name: p.detach().double().clone() for name, p in params.items()}


def _g9_off(moved, start, want):
    """Names of the parameters whose |moved - start| norm is off by more than OPT_TOL."""
    off = []
    for name, (norm_delta, _) in want.items():
        got = float((moved[name] - start[name].double()).norm())
        err = abs(got - norm_delta) / norm_delta if norm_delta > 0 else got
        if err > OPT_TOL:
            off.append(name)
    return off


@pytest.fixture(scope='module')
def g9_moved(g9_setup):
    from advent.domain_adaptation.config import clone
    from advent.domain_adaptation.train_UDA import segmenter_optimizer
    runs = {}
    for original_sgd in (True, False):
        def make(model, cfg, flag=original_sgd):
            cfg = clone(cfg)
            cfg.TRAIN.ORIGINAL_SGD = flag
            return segmenter_optimizer(model, cfg)
        runs[original_sgd] = _g9_run(g9_setup, make)
    return runs


def test_optimizer_moves_every_parameter_as_pytorch_041(g9_setup, g9_moved):
    g, _, model, start, _ = g9_setup
    want = g['delta_norms']
    assert set(want) == {name for name, _ in model.named_parameters()}
    assert _g9_off(g9_moved[True], start, want) == []


def test_textbook_optimizer_is_plain_sgd(g9_setup, g9_moved):
    """ORIGINAL_SGD False: torch.optim.SGD with each trainable parameter once, same groups."""
    _, _, _, start, _ = g9_setup

    def plain_sgd(model, cfg):
        heads = [p for m in (model.layer5, model.layer6) for p in m.parameters()]
        head_ids = {id(p) for p in heads}
        backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
        lr = cfg.TRAIN.LEARNING_RATE
        return torch.optim.SGD([{'params': backbone, 'lr': lr}, {'params': heads, 'lr': 10 * lr}], lr=lr,
                               momentum=cfg.TRAIN.MOMENTUM, weight_decay=cfg.TRAIN.WEIGHT_DECAY, foreach=False)
    reference = _g9_run(g9_setup, plain_sgd)
    want = {name: [float((v - start[name].double()).norm()), float(v.norm())] for name, v in reference.items()}
    assert _g9_off(g9_moved[False], start, want) == []


def test_golden_optimizer_run_tells_the_rules_apart(g9_setup, g9_moved):
    """The textbook update misses the golden run on every repeated backbone parameter
    (all but conv1 and the heads), so the comparison above would catch a lost repetition."""
    g, _, model, start, _ = g9_setup
    off = set(_g9_off(g9_moved[False], start, g['delta_norms']))
    repeated = {name for name, p in model.named_parameters()
                if p.requires_grad and name.startswith(('layer1', 'layer2', 'layer3', 'layer4'))}
    assert off == repeated
