"""Promises of the README checked through what a user sees, and the bugs a mutation pass
found unguarded (docs/testing.md; tests/mutation/run_mutants.py replays them):

- best mode: two snapshots with the same mIoU, the earlier one is chosen and named by the
  evaluation and by stage 2; a snapshot retrained in place is evaluated again; WAIT_MODEL
  waits for a snapshot still being trained;
- training: DA_METHOD BNOnly changes the BatchNorm statistics and nothing else;
  --random-train does not fix the seeds; stage 3 reads the easy split with its
  pseudo-labels as source and the hard split as target;
- python -m intrada.check writes nothing.
All on the tiny tree of tests/tinydata.py, in-process.
"""
import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tinydata
from advent.cli import run_guarded, test_main as evaluate_main, train_main
from advent.domain_adaptation import eval_UDA, experiment
from advent.domain_adaptation.config import finalize_paths, load_config
from entropy_rank import entropy as stage2
from stage_utils import PROJECT_ROOT, load_bgr_image, save_tiny_init

EXP = 'run'  # EXP_NAME: the snapshot folder is <snap root>/run

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    return tinydata.make_tree(tmp_path_factory.mktemp('tree'))


def write_cfg(tmp, tree, name='cfg', **sections):
    """A stage-1 config on the tiny tree; returns (config path, snapshot folder)."""
    cfg = tinydata.stage1_config(tree, tmp / name, EXP_NAME=EXP, **sections)
    return tinydata.write_config(tmp / f'{name}.yml', cfg), tmp / name / EXP


def evaluate_best(cfg_path, capsys):
    """Best mode through the entry point of advent/scripts/test.py: (all_res results, stdout)."""
    assert evaluate_main(['--cfg', str(cfg_path)]) == 0
    out = capsys.readouterr().out
    cfg = finalize_paths(load_config(cfg_path))
    return eval_UDA.load_results_cache(cfg.TEST.SNAPSHOT_DIR[0]), out


# ------------------------------------------------------------------ best mode

def test_equal_miou_the_earlier_snapshot_is_chosen(tree, tmp_path, capsys):
    """The same weights saved as model_2 and model_4: a tie, which the earlier snapshot wins
    (a later one must be strictly better, as in the original), in the evaluation's output
    and in stage 2's choice of the snapshot to rank with."""
    cfg_path, snap = write_cfg(tmp_path, tree, TEST={'SNAPSHOT_MAXITER': 4})
    save_tiny_init(snap / 'model_2.pth', seed=1)
    (snap / 'model_4.pth').write_bytes((snap / 'model_2.pth').read_bytes())
    results, out = evaluate_best(cfg_path, capsys)
    assert sorted(results) == [2, 4]
    np.testing.assert_array_equal(results[2], results[4])
    best_models = [line.split(':', 1)[1].strip() for line in out.splitlines()
                   if line.startswith('\tCurrent best model:')]
    assert [Path(m).name for m in best_models] == ['model_2.pth', 'model_2.pth']
    assert out.strip().splitlines()[-1].startswith('Best iteration: 2 ')

    rank_args = stage2.get_arguments(['--cfg', str(cfg_path), '--out-dir', str(tmp_path / 'rank')])
    assert run_guarded(stage2.main, rank_args) == 0
    out = capsys.readouterr().out
    assert 'Using the best stage-1 iteration 2 ' in out, out


def test_snapshot_retrained_in_place_is_evaluated_again(tree, tmp_path, capsys):
    """all_res.json keeps a snapshot's result only while the snapshot file is unchanged: one
    overwritten by a new training run (same size, other weights) gets its own result."""
    cfg_path, snap = write_cfg(tmp_path, tree, TEST={'SNAPSHOT_MAXITER': 2})
    save_tiny_init(snap / 'model_2.pth', seed=1)
    first, _ = evaluate_best(cfg_path, capsys)
    size = (snap / 'model_2.pth').stat().st_size
    save_tiny_init(snap / 'model_2.pth', seed=2)
    assert (snap / 'model_2.pth').stat().st_size == size
    second, out = evaluate_best(cfg_path, capsys)

    # the new weights, evaluated on their own in a fresh folder
    fresh_cfg, fresh_snap = write_cfg(tmp_path, tree, 'fresh', TEST={'SNAPSHOT_MAXITER': 2})
    save_tiny_init(fresh_snap / 'model_2.pth', seed=2)
    expected, _ = evaluate_best(fresh_cfg, capsys)
    assert not np.array_equal(first[2], expected[2])
    np.testing.assert_array_equal(second[2], expected[2])


def test_wait_model_waits_for_a_snapshot_still_being_trained(tree, tmp_path, monkeypatch, capsys):
    """TEST.WAIT_MODEL True: best mode waits for model_4.pth, which appears only after the
    evaluation has evaluated model_2 and started waiting, then evaluates it too."""
    cfg_path, snap = write_cfg(tmp_path, tree, TEST={'SNAPSHOT_MAXITER': 4, 'WAIT_MODEL': True})
    save_tiny_init(snap / 'model_2.pth', seed=1)
    waiting = threading.Event()

    class FastClock:  # the evaluation's clock, polling every 10 ms instead of 5 s
        @staticmethod
        def sleep(seconds):
            waiting.set()
            threading.Event().wait(0.01)
    monkeypatch.setattr(eval_UDA, 'time', FastClock)
    status = []
    evaluation = threading.Thread(target=lambda: status.append(evaluate_main(['--cfg', str(cfg_path)])), daemon=True)
    evaluation.start()
    while evaluation.is_alive() and not waiting.wait(0.05):
        pass
    assert waiting.is_set(), 'the evaluation ended without waiting for model_4.pth'
    save_tiny_init(snap / 'model_4.pth', seed=2)
    evaluation.join(120)
    assert not evaluation.is_alive() and status == [0]
    out = capsys.readouterr().out
    assert 'Waiting for model' in out
    results = eval_UDA.load_results_cache(snap)
    assert sorted(results) == [2, 4]
    assert f'Evaluating model {snap / "model_4.pth"}' in out


# ------------------------------------------------------------------ training

def weights_of(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_bn_only_changes_the_batchnorm_statistics_and_nothing_else(tree, tmp_path, monkeypatch):
    """BNOnly against SourceOnly from the same start: the same parameters bit for bit (the
    target images add no loss, and in train mode BatchNorm normalises with each batch's own
    statistics), other running statistics (the target images went through in train mode),
    the same files. One source image, so the extra target loader cannot change its order."""
    tinydata.write_list(str(tree / 'lists' / 'gta5_one.txt'), tinydata.GTA_NAMES[:1])
    forwards = []
    forward = experiment.build_segmenter

    def recording_segmenter(*args):
        model = forward(*args)
        model.register_forward_hook(
            lambda m, inputs, _: forwards.append((m.training, torch.is_grad_enabled(), inputs[0].shape)))
        return model
    monkeypatch.setattr(experiment, 'build_segmenter', recording_segmenter)
    snaps = {}
    for method in ('SourceOnly', 'BNOnly'):
        forwards.clear()
        cfg_path, snaps[method] = write_cfg(
            tmp_path, tree, method, DATA_LIST_SOURCE=str(tree / 'lists' / 'gta5_one.txt'),
            TRAIN={'DA_METHOD': method, 'EARLY_STOP': 2, 'LEARNING_RATE': 1e-2})
        assert train_main(['--cfg', str(cfg_path)]) == 0
    # BNOnly: per iteration the source batch with gradients, then the target batch without, both in train mode
    assert forwards == [(True, True, torch.Size([1, 3, tinydata.H, tinydata.W])),
                        (True, False, torch.Size([1, 3, tinydata.H, tinydata.W]))] * 3
    names = sorted(p.name for p in snaps['BNOnly'].glob('model_*'))
    assert names == sorted(p.name for p in snaps['SourceOnly'].glob('model_*')) == ['model_2.pth']
    bn_only, source_only = weights_of(snaps['BNOnly'] / 'model_2.pth'), weights_of(snaps['SourceOnly'] / 'model_2.pth')
    model = experiment.build_segmenter('DeepLabv2-tiny', 19, True)
    parameters = {name for name, _ in model.named_parameters()}
    statistics = [name for name in bn_only if name.endswith(('running_mean', 'running_var'))]
    assert statistics and parameters
    for name in parameters:
        assert torch.equal(bn_only[name], source_only[name]), name
    assert all(not torch.equal(bn_only[name], source_only[name]) for name in statistics)


def test_random_train_does_not_fix_the_seeds(tree, tmp_path):
    """--random-train: two runs of one config start from different random weights and see
    the data in different orders; without it, TRAIN.RANDOM_SEED makes them identical."""
    runs = {}
    for name, flags in (('fixed1', []), ('fixed2', []), ('random1', ['--random-train']),
                        ('random2', ['--random-train'])):
        cfg_path, snap = write_cfg(tmp_path, tree, name, TRAIN={'DA_METHOD': 'SourceOnly', 'EARLY_STOP': 2})
        assert train_main(['--cfg', str(cfg_path), *flags]) == 0
        runs[name] = weights_of(snap / 'model_2.pth')
        runs[name + '_order'] = weights_of(snap / 'train_state_2.pth')['source_data']['seed']
    assert all(torch.equal(runs['fixed1'][k], runs['fixed2'][k]) for k in runs['fixed1'])
    assert runs['fixed1_order'] == runs['fixed2_order']
    assert not torch.equal(runs['random1']['conv1.weight'], runs['random2']['conv1.weight'])
    assert not torch.equal(runs['random1']['conv1.weight'], runs['fixed1']['conv1.weight'])
    assert runs['random1_order'] != runs['random2_order']


def test_stage3_reads_the_easy_split_with_pseudo_labels_and_the_hard_split(tree, tmp_path, monkeypatch):
    """Stage 3 through intrada/train.py's entry point: the source items are the easy split's
    images with their stage-2 pseudo-labels, the target items the hard split's images."""
    rank = tmp_path / 'rank'
    easy, hard = tinydata.CS_TRAIN[:3], tinydata.CS_TRAIN[3:]
    tinydata.write_list(str(rank / 'easy_split.txt'), easy)
    tinydata.write_list(str(rank / 'hard_split.txt'), hard)
    tinydata.make_pseudo_labels(rank / 'color_masks', easy)
    size = [tinydata.W, tinydata.H]
    cfg = {'SOURCE': 'CityscapesEasy', 'TARGET': 'CityscapesHard', 'NUM_WORKERS': 0, 'GPU_ID': -1,
           'DATA_LIST_SOURCE': str(rank / 'easy_split.txt'), 'DATA_LIST_TARGET': str(rank / 'hard_split.txt'),
           'DATA_DIRECTORY_SOURCE': str(tree / 'Cityscapes'), 'DATA_DIRECTORY_TARGET': str(tree / 'Cityscapes'),
           'EXP_ROOT_SNAPSHOT': str(tmp_path / 'snap'),
           'TRAIN': {'SET_SOURCE': 'train', 'MODEL': 'DeepLabv2-tiny', 'RESTORE_FROM': '',
                     'INPUT_SIZE_SOURCE': size, 'INPUT_SIZE_TARGET': size, 'MAX_ITERS': 6, 'EARLY_STOP': 2}}
    cfg_path = tinydata.write_config(tmp_path / 's3.yml', cfg)
    seen = {}
    monkeypatch.setattr(experiment, 'train_domain_adaptation',
                        lambda model, source, target, cfg, resume_state=None: seen.update(source=source, target=target))
    assert train_main(['--cfg', str(cfg_path)]) == 0  # intrada/train.py's entry point

    city = tree / 'Cityscapes' / 'leftImg8bit' / 'train'
    source_items = [seen['source'].dataset[i] for i in range(len(seen['source'].dataset))]
    assert {item[3] for item in source_items} == set(easy)
    for image, label, _, name in source_items:
        np.testing.assert_allclose(image, load_bgr_image(city / name, size)[0].numpy(), atol=1e-4)
        pseudo = np.asarray(Image.open(rank / 'color_masks' / name.split('/')[-1]), np.int64)
        np.testing.assert_array_equal(label, pseudo)
    target_items = [seen['target'].dataset[i] for i in range(len(seen['target'].dataset))]
    assert {item[3] for item in target_items} == set(hard)
    for image, _, _, name in target_items:
        np.testing.assert_allclose(image, load_bgr_image(city / name, size)[0].numpy(), atol=1e-4)


# ------------------------------------------------------------------ the setup check

def tree_fingerprint(root):
    """Every path under root with the SHA-256 of its contents (folders with None)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(Path(root).rglob('*'))}


def project_files():
    skip = {'.git', '.venv', '__pycache__'}
    return {p for p in PROJECT_ROOT.rglob('*') if not skip & set(p.relative_to(PROJECT_ROOT).parts)}


def test_check_writes_nothing(tmp_path, capsys):
    """python -m intrada.check on a complete tree: the tree, the config's folders and the
    working directory are byte for byte as before (the output folders are reported, not
    made), and no file appears in the project."""
    from intrada.check import console_main
    work = tmp_path / 'work'
    tree = tinydata.make_tree(work / 'tree')
    init = work / 'init.pth'
    save_tiny_init(init)
    cfg_path = tinydata.write_config(work / 'cfg.yml', tinydata.stage1_config(
        tree, work / 'experiments', TRAIN={'RESTORE_FROM': str(init)}))
    before, project_before = tree_fingerprint(work), project_files()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        assert console_main(['--cfg', str(cfg_path)]) == 0, capsys.readouterr().out
    assert tree_fingerprint(work) == before
    assert not (work / 'experiments').exists()
    assert project_files() == project_before
