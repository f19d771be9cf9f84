"""The three stages end to end, each through its own script (SPEC 2, 7, 8, 9), on a tiny
GTA5 + Cityscapes tree whose gtFine/train is ABSENT (the target training set is unlabelled).

stage 1  advent/scripts/train.py, advent/scripts/test.py (best mode, a rerun, single mode)
stage 2  entropy_rank/entropy.py (best iteration from all_res.json, --normalize False/True,
         the error without any evaluation result)
stage 3  intrada/train.py, intrada/test.py on the easy/hard splits and pseudo-labels
Every script runs from a temporary working directory with the small 'DeepLabv2-tiny' model.
"""
import json
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

import make_trees
from stage_utils import (CLASS_NAMES, RARE_CLASSES, TINY, check_ok, info_palette, load_bgr_image, run_script,
                         run_scripts,
                         save_tiny_init, tiny_model, write_yaml)

SRC_SIZE = [128, 72]    # (width, height)
TRG_SIZE = [96, 54]     # stage 2 writes its pseudo-labels at this size (the images are 16:9)
OUT_SIZE = [160, 90]    # the trees' native size: labels load unresized
STAGE1_NAME = f'GTA2Cityscapes_{TINY}_AdvEnt'
STAGE3_NAME = f'CityscapesEasy2CityscapesHard_{TINY}_AdvEnt'
CLASS_LINE = re.compile(r'^(\S+)\t(-?\d+(?:\.\d+)?|nan)$')


def stage1_config(env, snapshot_root, **train):
    return {
        'SOURCE': 'GTA', 'TARGET': 'Cityscapes', 'NUM_WORKERS': 0,
        'GPU_ID': -1,  # the outputs are compared with CPU recomputations, also on a GPU machine
        'DATA_DIRECTORY_SOURCE': str(env.trees / 'GTA5'), 'DATA_LIST_SOURCE': str(env.trees / 'lists' / 'gta5_all.txt'),
        'DATA_DIRECTORY_TARGET': str(env.trees / 'Cityscapes'),
        'DATA_LIST_TARGET': str(env.trees / 'lists' / 'cs_{}.txt'),   # train for training, val for the test
        'EXP_ROOT_SNAPSHOT': str(snapshot_root), 'EXP_ROOT_LOGS': str(env.root / 'logs'),
        'TRAIN': {'MODEL': TINY, 'RESTORE_FROM': str(env.init), 'INPUT_SIZE_SOURCE': SRC_SIZE,
                  'INPUT_SIZE_TARGET': TRG_SIZE,
                  # with the original's repeated backbone updates, 1e-2 saturates the softmax
                  # (entropy ~1e-8) and the recomputed scores could not be compared
                  'LEARNING_RATE': 0.0025, 'MAX_ITERS': 10, 'EARLY_STOP': 4,
                  'SAVE_PRED_EVERY': 2, **train},
        'TEST': {'MODEL': [TINY], 'INPUT_SIZE_TARGET': TRG_SIZE, 'OUTPUT_SIZE_TARGET': OUT_SIZE,
                 'SNAPSHOT_STEP': 2, 'SNAPSHOT_MAXITER': 4, 'WAIT_MODEL': False},
    }


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp('stages')
    trees = Path(make_trees.make_trees(str(root / 'trees')))
    shutil.rmtree(trees / 'Cityscapes' / 'gtFine' / 'train')
    (root / 'work').mkdir()   # the scripts' working directory
    ns = SimpleNamespace(root=root, trees=trees, work=root / 'work', init=save_tiny_init(root / 'init.pth', seed=3),
                         snap1=root / 'snap' / STAGE1_NAME, snap3=root / 'snap' / STAGE3_NAME)
    ns.train_names = (trees / 'lists' / 'cs_train.txt').read_text().split()
    ns.s1 = write_yaml(root / 's1.yml', stage1_config(ns, root / 'snap'))
    return ns


# ---------------------------------------------------------------- the pipeline

def read_all_res(snapshot_dir):
    raw = json.loads((snapshot_dir / 'all_res.json').read_text())   # JSON, not a pickle
    return {int(k): np.array([np.nan if v is None else v for v in ious], np.float64)
            for k, ious in raw['results'].items()}


def miou(ious):
    return round(float(np.nanmean(ious)) * 100, 2)


def best_of(results):
    """(iteration, mIoU) with the original's rule: a later snapshot must be strictly better."""
    best = None
    for k in sorted(results):
        if best is None or miou(results[k]) > best[1]:
            best = (k, miou(results[k]))
    return best


def stage3_config(env, rank_dir, best_iter):
    return {
        'SOURCE': 'CityscapesEasy', 'TARGET': 'CityscapesHard', 'NUM_WORKERS': 0, 'GPU_ID': -1,
        'DATA_LIST_SOURCE': str(rank_dir / 'easy_split.txt'), 'DATA_LIST_TARGET': str(rank_dir / 'hard_split.txt'),
        'DATA_DIRECTORY_SOURCE': str(env.trees / 'Cityscapes'), 'DATA_DIRECTORY_TARGET': str(env.trees / 'Cityscapes'),
        # DATA_DIRECTORY_PSEUDO_LABELS '' = color_masks/ beside the easy split
        'EXP_ROOT_SNAPSHOT': str(env.root / 'snap'), 'EXP_ROOT_LOGS': str(env.root / 'logs'),
        'TRAIN': {'SET_SOURCE': 'train', 'MODEL': TINY,
                  'RESTORE_FROM': str(env.snap1 / f'model_{best_iter}.pth'),   # from the stage-1 model
                  'INPUT_SIZE_SOURCE': TRG_SIZE, 'INPUT_SIZE_TARGET': TRG_SIZE, 'LEARNING_RATE': 0.01,
                  'MAX_ITERS': 10, 'EARLY_STOP': 3, 'SAVE_PRED_EVERY': 2},
        'TEST': {'MODEL': [TINY], 'DATA_LIST_TARGET': str(env.trees / 'lists' / 'cs_{}.txt'),
                 'INPUT_SIZE_TARGET': TRG_SIZE, 'OUTPUT_SIZE_TARGET': OUT_SIZE, 'SNAPSHOT_STEP': 2,
                 'SNAPSHOT_MAXITER': 2, 'WAIT_MODEL': False},
    }


@pytest.fixture(scope='module')
def runs(env):
    """Every script run of the module, independent ones side by side (one thread each):
    1. stage-1 training
    2. best-mode evaluation  |  entropy.py without --best_iter and without any all_res.json
    3. a rerun of the evaluation on a copy of the snapshot folder, with a val set that cannot
       be read (all must come from all_res.json)  |  single mode  |  entropy.py without
       --best_iter, --normalize False, defaults otherwise, --out-dir (a)  |
       entropy.py --best_iter <best> --normalize TRUE --lambda1 0.8 --out-dir (b)
    4. stage-3 training from (a), 5. stage-3 evaluation."""
    r = SimpleNamespace()
    r.train1 = check_ok(run_script('train1', '--cfg', env.s1, cwd=env.work))

    empty = env.root / 'snap_empty'
    (empty / STAGE1_NAME).mkdir(parents=True)
    shutil.copy(env.snap1 / 'model_2.pth', empty / STAGE1_NAME / 'model_2.pth')
    s1_empty = write_yaml(env.root / 's1_empty.yml', stage1_config(env, empty))
    r.test1, r.rank_fail = run_scripts(
        ('test1', ['--cfg', env.s1], env.work),
        ('entropy', ['--cfg', s1_empty, '--out-dir', env.root / 'rank_fail'], env.work))
    check_ok(r.test1)
    r.results = read_all_res(env.snap1)
    r.best_iter = best_of(r.results)[0]

    # the rerun: a copy of the snapshot folder (file times kept, so the cache stays valid for
    # these checkpoints) and a val set whose files are not images: nothing can be evaluated
    r.rerun_dir = env.root / 'snap_rerun' / STAGE1_NAME
    shutil.copytree(env.snap1, r.rerun_dir, copy_function=shutil.copy2)
    broken = env.root / 'cityscapes_broken'
    for path in (env.trees / 'Cityscapes').rglob('*.png'):
        if 'val' in path.parts:
            target = broken / path.relative_to(env.trees / 'Cityscapes')
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b'not an image')
    cached = [r.rerun_dir / 'all_res.json'] + sorted(r.rerun_dir.glob('model_*_iou.json'))
    r.cache_before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in cached}
    rerun = stage1_config(env, env.root / 'snap_rerun')
    rerun['DATA_DIRECTORY_TARGET'] = str(broken)
    s1_rerun = write_yaml(env.root / 's1_rerun.yml', rerun)
    single = stage1_config(env, env.root / 'snap')
    single['TEST'].update({'MODE': 'single', 'RESTORE_FROM': [str(env.snap1 / 'model_2.pth')]})
    s1_single = write_yaml(env.root / 's1_single.yml', single)
    r.dir_a, r.dir_b = env.root / 'rank_default', env.root / 'rank_norm'
    r.dir_a.mkdir()
    r.rerun, r.single, r.rank_a, r.rank_b = run_scripts(
        ('test1', ['--cfg', s1_rerun], env.work),
        ('test1', ['--cfg', s1_single], env.work),
        ('entropy', ['--cfg', env.s1, '--normalize', 'False', '--out-dir', r.dir_a], env.work),
        ('entropy', ['--cfg', env.s1, '--best_iter', r.best_iter, '--normalize', 'TRUE', '--lambda1', '0.8',
                     '--out-dir', r.dir_b], env.work))
    r.cache_after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in cached}
    check_ok(r.rank_a)
    check_ok(r.rank_b)

    s3 = write_yaml(env.root / 's3.yml', stage3_config(env, r.dir_a, r.best_iter))
    r.train3 = check_ok(run_script('train3', '--cfg', s3, cwd=env.work))
    r.test3 = check_ok(run_script('test3', '--cfg', s3, cwd=env.work))
    return r


def test_stage1_snapshots(env, runs):
    names = sorted(p.name for p in env.snap1.glob('model_*.pth'))
    assert names == ['model_2.pth', 'model_2_D_aux.pth', 'model_2_D_main.pth',
                     'model_4.pth', 'model_4_D_aux.pth', 'model_4_D_main.pth']
    state = torch.load(env.snap1 / 'model_4.pth', map_location='cpu', weights_only=True)
    assert set(state) == set(tiny_model(0).state_dict())
    merged = yaml.safe_load((env.snap1 / 'train_cfg.yml').read_text())
    assert merged['TRAIN']['MODEL'] == TINY and merged['EXP_NAME'] == STAGE1_NAME
    assert not (env.trees / 'Cityscapes' / 'gtFine' / 'train').exists()


def test_stage1_best_mode_output(env, runs):
    results = runs.results
    assert sorted(results) == [2, 4]
    for ious in results.values():
        assert ious.shape == (19,)
    out = runs.test1.stdout.splitlines()
    current = [float(line.split(':', 1)[1]) for line in out if line.startswith('\tCurrent mIoU:')]
    assert current == [miou(results[2]), miou(results[4])]
    best_models = [line.split(':', 1)[1].strip() for line in out if line.startswith('\tCurrent best model:')]
    best_mious = [float(line.split(':', 1)[1]) for line in out if line.startswith('\tCurrent best mIoU:')]
    assert len(best_models) == len(best_mious) == 2
    best_iter, best_miou = best_of(results)
    assert Path(best_models[-1]) == env.snap1 / f'model_{best_iter}.pth'
    assert best_mious[-1] == best_miou
    # 19 per-class lines after each snapshot, in train-id order
    class_lines = [CLASS_LINE.match(line) for line in out]
    names = [m.group(1) for m in class_lines if m]
    assert names == CLASS_NAMES * 2
    # the last line names the best iteration and its mIoU (stage 2 needs it)
    last = [line for line in out if line.strip()][-1]
    assert 'best' in last.lower() and re.search(rf'\b{best_iter}\b', last), last
    assert any(abs(float(v) - best_miou) < 1e-6 for v in re.findall(r'-?\d+\.\d+|\d+', last)), last


def test_stage1_per_class_iou_json(env, runs):
    for k, ious in runs.results.items():
        table = json.loads((env.snap1 / f'model_{k}_iou.json').read_text())
        assert list(table['per_class']) == CLASS_NAMES
        for name, iou in zip(CLASS_NAMES, ious):
            value = table['per_class'][name]
            assert (value is None) if math.isnan(iou) else value == pytest.approx(iou * 100, abs=0.006)
        assert table['mIoU'] == pytest.approx(miou(ious), abs=1e-6)


def test_stage1_rerun_uses_the_cache(env, runs):
    check_ok(runs.rerun)   # the val images were unreadable: nothing was evaluated again
    # all_res.json and the IoU tables untouched (mtime and bytes)
    assert 'all_res.json' in runs.cache_before and runs.cache_after == runs.cache_before
    assert 'model_2' not in runs.rerun.stderr and 'model_4' not in runs.rerun.stderr  # no progress bars

    def summary(proc, snapshot_dir):
        lines = [line for line in proc.stdout.splitlines() if line.startswith('\tCurrent') or CLASS_LINE.match(line)]
        lines.append(proc.stdout.strip().splitlines()[-1])
        return [line.replace(str(snapshot_dir), '<snapshots>') for line in lines]

    assert summary(runs.rerun, runs.rerun_dir) == summary(runs.test1, env.snap1)


def test_stage1_single_mode(env, runs):
    k = 2
    proc = check_ok(runs.single)
    out = proc.stdout.splitlines()
    miou_lines = [line for line in out if line.startswith('mIoU = ')]
    assert len(miou_lines) == 1
    assert re.fullmatch(r'mIoU = \t\d+(\.\d+)?', miou_lines[0]), repr(miou_lines[0])
    assert float(miou_lines[0].split('\t')[1]) == miou(runs.results[k])
    start = out.index(miou_lines[0])
    per_class = [CLASS_LINE.match(line) for line in out[start + 1:start + 20]]
    assert [m.group(1) for m in per_class if m] == CLASS_NAMES
    for m, iou in zip(per_class, runs.results[k]):
        assert (m.group(2) == 'nan') if math.isnan(iou) else float(m.group(2)) == round(iou * 100, 2)
    table = json.loads((env.snap1 / f'model_{k}_iou.json').read_text())
    assert table['mIoU'] == miou(runs.results[k])


# ---------------------------------------------------------------- stage 2

def read_split(path):
    return path.read_text().splitlines()


def test_stage2_uses_and_names_the_best_iteration(env, runs):
    lines = [line for line in runs.rank_a.stdout.splitlines() if 'best' in line.lower()]
    assert any(re.search(rf'\b{runs.best_iter}\b', line) for line in lines), runs.rank_a.stdout[-2000:]
    # the same snapshot as --best_iter <best>: identical entropies
    a = json.loads((runs.dir_a / 'entropy_ranking.json').read_text())['ranking']
    b = json.loads((runs.dir_b / 'entropy_ranking.json').read_text())['ranking']
    entropies_b = {r['name']: r['mean_entropy'] for r in b}
    for r in a:
        assert r['mean_entropy'] == pytest.approx(entropies_b[r['name']], rel=1e-6)


@pytest.mark.parametrize('which,lambda1', [('a', 0.67), ('b', 0.8)])
def test_stage2_splits(env, runs, which, lambda1):
    out = getattr(runs, f'dir_{which}')
    easy, hard = read_split(out / 'easy_split.txt'), read_split(out / 'hard_split.txt')
    n = len(env.train_names)
    assert len(easy) == int(n * lambda1)
    assert sorted(easy + hard) == sorted(env.train_names) and len(set(easy + hard)) == n
    scores = {r['name']: r['score'] for r in json.loads((out / 'entropy_ranking.json').read_text())['ranking']}
    assert max(scores[x] for x in easy) <= min(scores[x] for x in hard)
    assert easy + hard == sorted(env.train_names, key=lambda x: scores[x])


def rare_count(mask):
    return sum(1 for c in RARE_CLASSES if (mask == c).any())


def test_stage2_normalize_false_is_off_and_true_is_on(env, runs):
    off = json.loads((runs.dir_a / 'entropy_ranking.json').read_text())
    on = json.loads((runs.dir_b / 'entropy_ranking.json').read_text())
    assert off['normalize'] is False and on['normalize'] is True
    for r in off['ranking']:
        assert r['normalizer'] == 1
        assert r['score'] == pytest.approx(r['mean_entropy'], rel=1e-9)
    for r in on['ranking']:
        mask = np.asarray(Image.open(runs.dir_b / 'color_masks' / Path(r['name']).name))
        expected = (11 - rare_count(mask)) / 11 + 0.5
        assert r['normalizer'] == pytest.approx(expected, abs=1e-12)
        assert r['normalizer'] != 1
        assert r['score'] == pytest.approx(r['mean_entropy'] * expected, rel=1e-6)


def test_stage2_pseudo_labels(env, runs):
    palette = info_palette()
    model = tiny_model(0)
    model.load_state_dict(torch.load(env.snap1 / f'model_{runs.best_iter}.pth', map_location='cpu',
                                     weights_only=True))
    model.eval()
    records = {r['name']: r for r in json.loads((runs.dir_a / 'entropy_ranking.json').read_text())['ranking']}
    for name in env.train_names:
        stem = Path(name).name
        mask_img = Image.open(runs.dir_a / 'color_masks' / stem)
        assert mask_img.mode == 'L' and mask_img.size == tuple(TRG_SIZE)
        mask = np.asarray(mask_img)
        assert mask.max() < 19
        color = Image.open(runs.dir_a / 'color_masks' / (stem.split('.')[0] + '_color.png'))
        assert color.size == tuple(TRG_SIZE)
        np.testing.assert_array_equal(np.asarray(color.convert('RGB')), palette[mask])
        # the prediction and the score, recomputed here (SPEC 9)
        with torch.no_grad():
            image = load_bgr_image(env.trees / 'Cityscapes' / 'leftImg8bit' / 'train' / name, TRG_SIZE)
            logits = F.interpolate(model(image)[1], size=(TRG_SIZE[1], TRG_SIZE[0]), mode='bilinear',
                                   align_corners=True)
            prob = F.softmax(logits, dim=1)
            entropy = (-prob * torch.log2(prob + 1e-30) / np.log2(19)).mean().item()
        assert records[name]['mean_entropy'] == pytest.approx(entropy, rel=1e-4)
        assert (logits.argmax(1)[0].numpy() == mask).mean() > 0.999


def test_stage2_without_any_evaluation_result_fails_cleanly(env, runs):
    proc = runs.rank_fail
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert 'Traceback' not in proc.stderr
    assert [line for line in lines if line.startswith('error:')] == [lines[-1]]
    assert 'best_iter' in lines[-1], lines[-1]
    assert not (env.root / 'rank_fail' / 'easy_split.txt').exists()


# ---------------------------------------------------------------- stage 3

def test_stage3_snapshots_and_evaluation(env, runs):
    names = sorted(p.name for p in env.snap3.glob('model_*.pth'))
    assert names == ['model_2.pth', 'model_2_D_aux.pth', 'model_2_D_main.pth']
    merged = yaml.safe_load((env.snap3 / 'train_cfg.yml').read_text())
    # DATA_DIRECTORY_PSEUDO_LABELS '' became color_masks/ beside the easy split
    assert merged['DATA_DIRECTORY_PSEUDO_LABELS'] == str(runs.dir_a / 'color_masks')
    assert merged['EXP_NAME'] == STAGE3_NAME
    results = read_all_res(env.snap3)
    assert sorted(results) == [2]
    out = runs.test3.stdout.splitlines()
    assert [float(line.split(':', 1)[1]) for line in out if line.startswith('\tCurrent mIoU:')] == \
        [miou(results[2])]
    assert [m.group(1) for m in map(CLASS_LINE.match, out) if m] == CLASS_NAMES
    last = [line for line in out if line.strip()][-1]
    assert 'best' in last.lower() and re.search(r'\b2\b', last)
    table = json.loads((env.snap3 / 'model_2_iou.json').read_text())
    assert table['mIoU'] == miou(results[2])
    # stage 3 evaluated on val (2 images), not on the hard split: the val labels are the only ones
    assert not (env.trees / 'Cityscapes' / 'gtFine' / 'train').exists()


# ---------------------------------------------------------------- the unlabelled target set

def test_target_training_set_never_reads_labels(env, monkeypatch, tmp_path):
    """In process: a training run and the target datasets of stages 1 and 3 never call
    get_labels on Cityscapes and never open a gtFine file (besides gtFine/train being absent)."""
    from advent.dataset.cityscapes import CityscapesDataSet
    from advent.domain_adaptation import experiment
    from advent.domain_adaptation.config import finalize_paths, load_config

    calls, opened = [], []

    def no_labels(self, file):
        calls.append(str(file))
        raise AssertionError(f'label file {file} read for an unlabelled set')

    real_open = Image.open

    def recording_open(fp, *args, **kwargs):
        opened.append(str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(CityscapesDataSet, 'get_labels', no_labels)
    monkeypatch.setattr(Image, 'open', recording_open)
    cfg_dict = stage1_config(env, tmp_path / 'snap', EARLY_STOP=1, SAVE_PRED_EVERY=1)
    cfg = finalize_paths(load_config(write_yaml(tmp_path / 'cfg.yml', cfg_dict)))
    target = experiment.build_target_dataset(cfg)
    assert target.load_labels is False
    for i in range(len(target)):
        label = np.asarray(target[i][1])
        assert label.shape == (TRG_SIZE[1], TRG_SIZE[0]) and (label == 255).all()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        experiment.run_training(cfg)
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / 'snap' / STAGE1_NAME / 'model_1.pth').is_file()
    assert calls == []
    assert opened and not [p for p in opened if 'gtFine' in p]
