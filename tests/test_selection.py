"""Snapshot selection without target labels (SPEC 11, TEST.SELECTION) in best mode.

On a tiny Cityscapes val tree with four snapshots (two models, each saved twice, so that
every criterion meets a tie): the label-free scores against a computation written here
from SPEC 11's definitions (numpy, float64), the pick of each criterion with ties going to
the earlier snapshot, one forward pass per image and snapshot, the cache (a rerun computes
nothing; a cache written before the label-free scores gets them without its mIoU being
recomputed; a snapshot retrained in place is evaluated again), an unlabelled val set (no
label file opened), and the one-line errors.
"""
import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils import data

from advent import cli
from advent.dataset import base_dataset
from advent.dataset.cityscapes import CityscapesDataSet
from advent.domain_adaptation import eval_UDA
from advent.domain_adaptation.config import default_config
from advent.model.deeplabv2 import get_deeplab_v2
from entropy_rank.ranking import RankingError, best_iteration_from_cache
from test_fast_paths import _cityscapes_val_tree, random_model

C = 19
INPUT_SIZE = [32, 16]    # (width, height): the network input, where the label-free scores are taken
OUTPUT_SIZE = [80, 48]   # where the mIoU is taken
ITERATIONS = (1, 2, 3, 4)
MODEL_SEEDS = {1: 11, 2: 12, 3: 11, 4: 12}   # snapshot 3 repeats 1, 4 repeats 2: ties


# Tiny tensors: more intra-op threads only spin on a busy machine.
pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture
def tree(tmp_path):
    list_path = _cityscapes_val_tree(tmp_path / 'cs')
    snapshots = tmp_path / 'snapshots'
    snapshots.mkdir()
    for i_iter, seed in MODEL_SEEDS.items():
        torch.save(random_model(seed).state_dict(), snapshots / f'model_{i_iter}.pth')
    return tmp_path, list_path, snapshots


def config(snapshots, selection):
    cfg = default_config()
    cfg.GPU_ID = -1
    cfg.TEST.update(MODE='best', MODEL=['DeepLabv2-tiny'], SNAPSHOT_DIR=[str(snapshots)], SNAPSHOT_STEP=1,
                    SNAPSHOT_MAXITER=len(ITERATIONS), WAIT_MODEL=False, INPUT_SIZE_TARGET=INPUT_SIZE,
                    OUTPUT_SIZE_TARGET=OUTPUT_SIZE, SELECTION=selection)
    return cfg


def val_dataset(root, list_path, labelled=True):
    """The val set; labelled=False marks it as a list with items without a label (the
    `labelled` attribute of the datasets), while its label loading stays on: an evaluator
    that asked for a label would open a file."""
    dataset = CityscapesDataSet(root / 'cs', list_path, set='val', crop_size=INPUT_SIZE,
                                mean=default_config().TEST.IMG_MEAN, labels_size=OUTPUT_SIZE)
    dataset.labelled = labelled
    return dataset


class Counters:
    """Forward passes of the evaluated model and snapshots loaded."""

    def __init__(self, monkeypatch):
        self.forwards = self.loads = 0
        self.model = get_deeplab_v2(C, True, 'DeepLabv2-tiny')
        self.model.register_forward_hook(lambda *_: setattr(self, 'forwards', self.forwards + 1))
        load = eval_UDA.load_for_evaluation

        def counting_load(*args):
            self.loads += 1
            return load(*args)
        monkeypatch.setattr(eval_UDA, 'load_for_evaluation', counting_load)


def evaluate(counters, dataset, cfg, batch_size=1):
    loader = data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    return eval_UDA.evaluate_domain_adaptation([counters.model], loader, cfg)


# ------------------------------------------------------------------ SPEC 11 written out

def spec_scores(seed, dataset):
    """entropy and im of one model on the val images, from SPEC 9 and 11, in float64 numpy."""
    model = random_model(seed)
    image_scores, pixel_entropies, probabilities = [], [], []
    for image, _, _, _ in dataset:
        with torch.no_grad():
            logits = F.interpolate(model(torch.from_numpy(image)[None])[1], size=INPUT_SIZE[::-1],
                                   mode='bilinear', align_corners=True)[0].double().numpy()
        p = np.exp(logits - logits.max(0))
        p /= p.sum(0)
        # SPEC 9's score without normalisation: mean over classes and pixels of -p log2(p) / log2(C)
        image_scores.append(np.mean(-p * np.log2(p + 1e-30) / np.log2(C)))
        pixel_entropies.append(-np.sum(p * np.log(p + 1e-30), axis=0).ravel() / np.log(C))
        probabilities.append(p.reshape(C, -1))
    p_mean = np.concatenate(probabilities, axis=1).mean(axis=1)
    entropy_of_mean = -np.sum(p_mean * np.log(p_mean + 1e-30)) / np.log(C)
    return {'entropy': float(np.mean(image_scores)),
            'im': float(entropy_of_mean - np.concatenate(pixel_entropies).mean())}


def spec_picks(scores, mious):
    """The first best snapshot of each criterion (np.argmin/argmax return the first)."""
    entropy = [scores[i]['entropy'] for i in ITERATIONS]
    im = [scores[i]['im'] for i in ITERATIONS]
    return {'entropy': ITERATIONS[int(np.argmin(entropy))], 'im': ITERATIONS[int(np.argmax(im))],
            'miou': ITERATIONS[int(np.argmax([mious[i] for i in ITERATIONS]))], 'last': ITERATIONS[-1]}


def printed_picks(out):
    """{criterion: iteration} from the 'Snapshot selection' block, and the final line."""
    lines = out.strip().splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith('Snapshot selection (TEST.SELECTION:'))
    picks = {}
    for line in lines[start + 1:-1]:
        criterion, rest = line.strip().split(': ', 1)
        picks[criterion] = int(rest.split(',')[0].split()[1])
    return picks, lines[-1]


def read_cache(snapshots):
    return json.loads((snapshots / 'all_res.json').read_text())


def test_scores_and_picks_follow_the_definitions(tree, monkeypatch, capsys):
    root, list_path, snapshots = tree
    dataset = val_dataset(root, list_path)
    counters = Counters(monkeypatch)
    results = evaluate(counters, dataset, config(snapshots, 'entropy'), batch_size=2)
    # one forward pass per image and snapshot: the mIoU and the label-free scores share it
    assert counters.forwards == math.ceil(len(dataset) / 2) * len(ITERATIONS)
    cache = read_cache(snapshots)
    expected = {i: spec_scores(MODEL_SEEDS[i], dataset) for i in ITERATIONS}
    assert set(cache['label_free']) == set(cache['results']) == {str(i) for i in ITERATIONS}
    for i in ITERATIONS:
        for criterion in ('entropy', 'im'):
            assert cache['label_free'][str(i)][criterion] == pytest.approx(expected[i][criterion], rel=1e-5, abs=1e-9)
    mious = {i: round(float(np.nanmean(results[i])) * 100, 2) for i in ITERATIONS}
    picks = spec_picks({i: cache['label_free'][str(i)] for i in ITERATIONS}, mious)
    assert picks == spec_picks(expected, mious)
    # the repeated models tie with the earlier snapshot
    assert picks['entropy'] in (1, 2) and picks['im'] in (1, 2) and picks['miou'] in (1, 2)
    printed, final = printed_picks(capsys.readouterr().out)
    assert printed == picks
    entropy = cache['label_free'][str(picks['entropy'])]['entropy']
    assert final == (f'Best iteration: {picks["entropy"]} (selected by entropy: entropy {entropy:.6f}, '
                     f'mIoU {mious[picks["entropy"]]}, {snapshots}/model_{picks["entropy"]}.pth)')

    # a rerun with each criterion computes nothing and names that criterion's pick last
    before = (snapshots / 'all_res.json').read_bytes()
    for selection in ('miou', 'im', 'last'):
        counters.loads = counters.forwards = 0
        evaluate(counters, dataset, config(snapshots, selection))
        assert counters.loads == counters.forwards == 0
        _, final = printed_picks(capsys.readouterr().out)
        assert final.startswith(f'Best iteration: {picks[selection]} (')
        if selection == 'miou':   # the original's line
            assert final == f'Best iteration: {picks["miou"]} (mIoU {mious[picks["miou"]]}, ' \
                             f'{snapshots}/model_{picks["miou"]}.pth)'
        # stage 2's default --best_iter: the same pick, from the cache
        assert best_iteration_from_cache(snapshots, selection)[0] == picks[selection]
    assert (snapshots / 'all_res.json').read_bytes() == before


def test_the_pipeline_picks_among_its_own_run(tree, capsys):
    """An earlier, longer run left model_5.pth and its (best) scores in all_res.json; this run
    stops at 4: the pipeline ranks with the snapshot its evaluation printed, one of 1..4."""
    from intrada.pipeline import evaluate_stage
    root, list_path, snapshots = tree
    shutil.copy(snapshots / 'model_4.pth', snapshots / 'model_5.pth')
    eval_UDA.save_results_cache(snapshots, {5: np.ones(C)}, [str(k) for k in range(C)],
                                {5: {'entropy': 0.0, 'im': 1.0}})
    for selection in ('miou', 'entropy', 'im', 'last'):
        cfg = config(snapshots, selection)
        cfg.DATA_DIRECTORY_TARGET, cfg.TEST.DATA_LIST_TARGET = str(root / 'cs'), str(list_path)
        cfg.TRAIN.update(SAVE_PRED_EVERY=1, EARLY_STOP=5)   # the last snapshot: model_4.pth
        capsys.readouterr()
        best_iter = evaluate_stage(cfg, 'stage 1 evaluation', [])
        _, final = printed_picks(capsys.readouterr().out)
        assert best_iter in ITERATIONS and final.startswith(f'Best iteration: {best_iter} ('), (selection, final)
    assert '5' in read_cache(snapshots)['results']   # the old run's entry stays in the cache


def test_old_cache_gets_label_free_scores_and_keeps_its_miou(tree, monkeypatch, capsys):
    root, list_path, snapshots = tree
    dataset = val_dataset(root, list_path)
    counters = Counters(monkeypatch)
    evaluate(counters, dataset, config(snapshots, 'miou'))
    cache = read_cache(snapshots)
    scores = cache.pop('label_free')
    # the format written before the label-free scores, with made-up IoUs that a recomputation would change
    made_up = {str(i): [0.1 * i] + [None] * (C - 1) for i in ITERATIONS}
    cache['results'] = made_up
    (snapshots / 'all_res.json').write_text(json.dumps(cache))
    with pytest.raises(RankingError, match='entropy scores'):
        best_iteration_from_cache(snapshots, 'entropy')
    counted = []
    monkeypatch.setattr(eval_UDA, 'accumulate_hist', lambda *args, **kw: counted.append(1))
    counters.forwards = counters.loads = 0
    results = evaluate(counters, dataset, config(snapshots, 'im'))
    assert counted == [] and counters.loads == len(ITERATIONS)
    assert counters.forwards == len(ITERATIONS) * len(dataset)
    rewritten = read_cache(snapshots)
    assert rewritten['results'] == made_up
    for i in ITERATIONS:
        assert results[i][0] == pytest.approx(0.1 * i)
        for criterion in ('entropy', 'im'):
            assert rewritten['label_free'][str(i)][criterion] == pytest.approx(scores[str(i)][criterion], rel=1e-6)
    # the made-up mIoUs (10 x iteration percent) make the last snapshot the best
    assert 'miou: iteration 4, mIoU 40.0' in capsys.readouterr().out


def test_snapshot_retrained_in_place_is_evaluated_again(tree, monkeypatch):
    root, list_path, snapshots = tree
    dataset = val_dataset(root, list_path)
    counters = Counters(monkeypatch)
    evaluate(counters, dataset, config(snapshots, 'entropy'))
    torch.save(random_model(13).state_dict(), snapshots / 'model_2.pth')
    counters.loads = 0
    evaluate(counters, dataset, config(snapshots, 'entropy'))
    assert counters.loads == 1
    assert read_cache(snapshots)['label_free']['2']['entropy'] == pytest.approx(
        spec_scores(13, dataset)['entropy'], rel=1e-5)


def test_unlabelled_val_opens_no_label_file(tree, monkeypatch, capsys):
    root, list_path, snapshots = tree
    counters = Counters(monkeypatch)
    evaluate(counters, val_dataset(root, list_path), config(snapshots, 'entropy'))
    labelled_scores = read_cache(snapshots)['label_free']
    (snapshots / 'all_res.json').unlink()
    capsys.readouterr()
    shutil.rmtree(root / 'cs' / 'gtFine')   # any attempt to read a label would now fail too
    opened = []
    open_image = base_dataset.open_image
    monkeypatch.setattr(base_dataset, 'open_image', lambda file, what='image': opened.append(str(file))
                        or open_image(file, what))
    dataset = val_dataset(root, list_path, labelled=False)
    results = evaluate(counters, dataset, config(snapshots, 'im'))
    assert opened and not [f for f in opened if 'gtFine' in f]
    assert results == {}
    cache = read_cache(snapshots)
    assert cache['results'] == {} and set(cache['label_free']) == {str(i) for i in ITERATIONS}
    for i in ITERATIONS:   # the labels play no part in the scores
        assert cache['label_free'][str(i)]['im'] == pytest.approx(labelled_scores[str(i)]['im'], rel=1e-6)
    out = capsys.readouterr().out
    assert 'mIoU' not in out
    picks, final = printed_picks(out)
    assert set(picks) == {'entropy', 'im', 'last'}
    im = cache['label_free'][str(picks['im'])]['im']
    assert final == f'Best iteration: {picks["im"]} (selected by im: im {im:.6f}, ' \
                    f'{snapshots}/model_{picks["im"]}.pth)'


def test_miou_with_an_unlabelled_val_list_fails_before_any_snapshot(tree, monkeypatch):
    root, list_path, snapshots = tree
    counters = Counters(monkeypatch)
    with pytest.raises(eval_UDA.EvaluationError, match="TEST.SELECTION 'miou' needs a label on every val item") as error:
        evaluate(counters, val_dataset(root, list_path, labelled=False), config(snapshots, 'miou'))
    assert '\n' not in str(error.value) and "'entropy', 'im', 'last'" in str(error.value)
    assert counters.loads == 0 and not (snapshots / 'all_res.json').exists()


def test_unknown_selection_is_a_one_line_config_error(tmp_path, capsys):
    cfg = tmp_path / 'bad.yml'
    cfg.write_text('TEST:\n  SELECTION: oracle\n')
    assert cli.test_main(['--cfg', str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'TEST.SELECTION' in err
    assert "'oracle'" in err and "['miou', 'entropy', 'im', 'last']" in err
