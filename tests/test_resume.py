"""Resume and crash guarantees (docs/reliability.md).

- A training run killed with SIGKILL at a random point after its first training state,
  then rerun with --resume, ends with exactly the weights of an uninterrupted run
  (segmenter and discriminators, every snapshot), on the CPU with fixed seeds.
- The same for MinEnt and SourceOnly (no discriminators) and with a loader worker,
  interrupted in-process at a random iteration; on CUDA (where a GPU is present) to a
  tolerance, since the backward pass of the bilinear upsampling adds with atomics there,
  in an order that changes from run to run.
- A resumed run continues the global random streams (torch, numpy, random) of the
  uninterrupted run: the state at every iteration after the resume is the same.
- find_resume_state never picks a partial or temporary file.
- Atomic writes leave the previous file when a write fails.
- The loss guard stops at a NaN loss, names the iteration and the loss, keeps the snapshots.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import tinydata
from devices import gpu_id
from advent.cli import train_main
from advent.domain_adaptation import train_UDA
from advent.domain_adaptation.train_UDA import find_resume_state
from advent.utils.serialization import atomic_path, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = ROOT / 'advent' / 'scripts' / 'train.py'
EXP = 'run'  # EXP_NAME: the snapshot folder is <snap root>/run
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS='ignore',
           CUDA_VISIBLE_DEVICES='')  # bit-exact comparisons: the CPU wherever the tests run


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    return tinydata.make_tree(tmp_path_factory.mktemp('tree'))


def write_cfg(tmp, tree, name, **sections):
    cfg = tinydata.stage1_config(tree, tmp / name, EXP_NAME=EXP, **sections)
    return tinydata.write_config(tmp / f'{name}.yml', cfg), tmp / name / EXP


def snapshot_files(folder):
    return sorted(p.name for p in Path(folder).glob('model_*.pth'))


def assert_same_weights(ref_dir, other_dir, tolerance=0.0):
    names = snapshot_files(ref_dir)
    assert names and names == snapshot_files(other_dir)
    for name in names:
        ref = torch.load(ref_dir / name, map_location='cpu', weights_only=True)
        other = torch.load(other_dir / name, map_location='cpu', weights_only=True)
        assert ref.keys() == other.keys(), name
        for key in ref:
            if tolerance:
                torch.testing.assert_close(other[key], ref[key], rtol=tolerance, atol=tolerance,
                                           msg=f'{name}: {key} differs from the uninterrupted run')
            else:
                assert torch.equal(ref[key], other[key]), f'{name}: {key} differs from the uninterrupted run'


def train_subprocess(cfg_path, *extra, stderr=subprocess.PIPE):
    return subprocess.Popen([sys.executable, str(TRAIN_SCRIPT), '--cfg', str(cfg_path), *extra], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True)


@pytest.fixture(scope='module')
def reference_run(tree, tmp_path_factory, one_torch_thread):
    """An uninterrupted AdvEnt run: 11 iterations, snapshots every 2. In-process on one
    thread, as the subprocesses run (OMP_NUM_THREADS=1): the CPU kernels give the same bits."""
    tmp = tmp_path_factory.mktemp('ref')
    cfg_path, snap = write_cfg(tmp, tree, 'ref')
    assert train_main(['--cfg', str(cfg_path)]) == 0
    return snap


def test_snapshots_are_plain_state_dicts(reference_run):
    """model_{i}.pth (and the D files) stay plain state dicts the original code loads."""
    from advent.model.deeplabv2 import get_deeplab_v2
    from advent.model.discriminator import get_fc_discriminator
    model = get_deeplab_v2(19, True, 'DeepLabv2-tiny')
    model.load_state_dict(torch.load(reference_run / 'model_10.pth', map_location='cpu', weights_only=True))
    d_main = get_fc_discriminator(num_classes=19)
    d_main.load_state_dict(torch.load(reference_run / 'model_10_D_main.pth', map_location='cpu',
                                      weights_only=True))
    assert snapshot_files(reference_run) == sorted(
        [f'model_{i}{s}.pth' for i in (2, 4, 6, 8, 10) for s in ('', '_D_aux', '_D_main')])
    # one training state is kept, the newest
    assert [p.name for p in reference_run.glob('train_state_*.pth')] == ['train_state_10.pth']


def test_sigkill_at_a_random_point_then_resume_matches(tree, reference_run, tmp_path):
    # the span the reference run took from its first snapshot to its last
    span = (reference_run / 'model_10.pth').stat().st_mtime - (reference_run / 'model_2.pth').stat().st_mtime
    seed = random.randrange(10 ** 6)
    rng = random.Random(seed)
    cfg_path, snap = write_cfg(tmp_path, tree, 'killed')
    for attempt in range(3):
        shutil.rmtree(snap, ignore_errors=True)
        delay = rng.uniform(0, 0.9 * span) / (attempt + 1)
        proc = train_subprocess(cfg_path, stderr=subprocess.DEVNULL)  # nothing to read: no pipe to fill
        deadline = time.time() + 300
        while not list(snap.glob('train_state_*.pth')) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            break
    assert proc.returncode == -signal.SIGKILL, f'the run ended before the kill (seed {seed})'
    assert find_resume_state(snap) is not None

    killed_with = sorted(p.name for p in snap.iterdir())
    resumed = train_subprocess(cfg_path, '--resume')
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, f'seed {seed}, killed with {killed_with}: {err[-2000:]}'
    assert_same_weights(reference_run, snap)


def test_resume_of_a_complete_run_does_nothing(tree, reference_run, tmp_path, capsys):
    cfg_path, copy = write_cfg(tmp_path, tree, 'copy')
    shutil.copytree(reference_run, copy)
    before = {p.name: p.stat().st_mtime_ns for p in copy.iterdir()}
    assert train_main(['--cfg', str(cfg_path), '--resume']) == 0
    assert 'is complete' in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in copy.iterdir()} == before


def test_resume_with_a_state_of_another_method_is_refused(tree, reference_run, tmp_path, capsys):
    cfg_path, copy = write_cfg(tmp_path, tree, 'other', TRAIN={'DA_METHOD': 'MinEnt'})
    shutil.copytree(reference_run, copy)
    (copy / 'train_state_10.pth').rename(copy / 'train_state_4.pth')  # an unfinished AdvEnt run
    assert train_main(['--cfg', str(cfg_path), '--resume']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error:') and 'train_state_4.pth' in err[0]
    assert 'MinEnt' in err[0]


def test_resume_with_the_other_sgd_rule_is_refused(tree, reference_run, tmp_path, capsys):
    """A state saved with TRAIN.ORIGINAL_SGD True (default) is not continued as textbook SGD."""
    cfg_path, copy = write_cfg(tmp_path, tree, 'textbook', TRAIN={'ORIGINAL_SGD': False})
    shutil.copytree(reference_run, copy)
    (copy / 'train_state_10.pth').rename(copy / 'train_state_4.pth')  # an unfinished run
    assert train_main(['--cfg', str(cfg_path), '--resume']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error:') and 'train_state_4.pth' in err[0]
    assert 'TRAIN.ORIGINAL_SGD True' in err[0]


class Interrupt:
    """Raises KeyboardInterrupt in the source loss of iteration `at` (as Ctrl-C would)."""

    def __init__(self, monkeypatch, at, calls_per_iter=2):
        self.calls, self.limit = 0, at * calls_per_iter + at % calls_per_iter
        original = train_UDA.loss_calc

        def loss_calc(*args, **kwargs):
            if self.calls == self.limit:
                raise KeyboardInterrupt
            self.calls += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(train_UDA, 'loss_calc', loss_calc)


class RngRecorder:
    """The global random states (torch, numpy, random) at the start of each iteration, as
    the learning rate is set: a resumed run must continue the interrupted run's streams (a
    new pass over the data draws its order from them)."""

    def __init__(self, monkeypatch):
        self.states = {}
        original = train_UDA.adjust_learning_rate

        def adjust_learning_rate(optimizer, i_iter, cfg):
            self.states[i_iter] = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
            return original(optimizer, i_iter, cfg)
        monkeypatch.setattr(train_UDA, 'adjust_learning_rate', adjust_learning_rate)

    def assert_same(self, reference, iterations):
        assert iterations and set(iterations) <= set(reference.states)
        for i_iter in iterations:
            ref, got = reference.states[i_iter], self.states[i_iter]
            assert torch.equal(ref[0], got[0]) and np.array_equal(ref[1], got[1]) and ref[2] == got[2], \
                f'iteration {i_iter}: the random state differs from the uninterrupted run'


@pytest.mark.parametrize('method,workers,device', [
    ('MinEnt', 0, 'cpu'), ('SourceOnly', 0, 'cpu'), ('AdvEnt', 1, 'cpu'),
    pytest.param('AdvEnt', 0, 'cuda', marks=pytest.mark.cuda)])
def test_interrupted_run_resumes_to_the_same_weights(tree, tmp_path, monkeypatch, method, workers, device):
    sections = dict(NUM_WORKERS=workers, GPU_ID=gpu_id(device), TRAIN={'DA_METHOD': method, 'EARLY_STOP': 7})
    ref_cfg, ref_snap = write_cfg(tmp_path, tree, 'ref', **sections)
    with monkeypatch.context() as m:
        uninterrupted = RngRecorder(m)
        assert train_main(['--cfg', str(ref_cfg)]) == 0
    assert snapshot_files(ref_snap)[-1].startswith('model_6')

    cfg_path, snap = write_cfg(tmp_path, tree, 'cut', **sections)
    seed = int.from_bytes(os.urandom(4), 'little')
    at = random.Random(seed).randint(3, 6)  # after the state of iteration 2, before the end
    with monkeypatch.context() as m:
        Interrupt(m, at)
        assert train_main(['--cfg', str(cfg_path)]) == 130
    assert find_resume_state(snap) is not None
    with monkeypatch.context() as m:
        resumed = RngRecorder(m)
        assert train_main(['--cfg', str(cfg_path), '--resume']) == 0, f'interrupted at iteration {at}'
    resumed.assert_same(uninterrupted, sorted(resumed.states))
    assert_same_weights(ref_snap, snap, tolerance=1e-4 if device == 'cuda' else 0.0)
    if method != 'AdvEnt':
        assert not list(snap.glob('*_D_*.pth'))


def touch(path, data=b'x'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_find_resume_state_ignores_partial_and_temporary_files(tmp_path):
    assert find_resume_state(tmp_path) is None
    touch(tmp_path / 'model_2.pth')
    touch(tmp_path / 'train_state_2.pth')
    # killed while writing model_4.pth: its state does not exist yet, the model is a hidden temporary
    touch(tmp_path / '.model_4.pth.k2j3l.tmp')
    touch(tmp_path / '.train_state_4.pth.x8a1.tmp')
    assert find_resume_state(tmp_path) == tmp_path / 'train_state_2.pth'
    # a state without its model file (deleted by hand, or never completed) is not picked
    touch(tmp_path / 'train_state_6.pth')
    assert find_resume_state(tmp_path) == tmp_path / 'train_state_2.pth'
    # names that are not train_state_<digits>.pth
    for name in ('train_state_8.pth.tmp', 'train_state_x.pth', 'train_state_.pth', 'train_state_-1.pth'):
        touch(tmp_path / name)
    touch(tmp_path / 'model_8.pth')
    assert find_resume_state(tmp_path) == tmp_path / 'train_state_2.pth'
    touch(tmp_path / 'model_6.pth')
    assert find_resume_state(tmp_path) == tmp_path / 'train_state_6.pth'
    # numeric, not lexical, order
    touch(tmp_path / 'model_10.pth')
    touch(tmp_path / 'train_state_10.pth')
    assert find_resume_state(tmp_path) == tmp_path / 'train_state_10.pth'


def test_a_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / 'model_2.pth'
    save_checkpoint({'w': torch.ones(3)}, path)

    def crash(obj, f):  # writes half a file, then dies
        Path(f).write_bytes(b'PK\x03\x04 partial')
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(torch, 'save', crash)
    with pytest.raises(OSError):
        save_checkpoint({'w': torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)['w'], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model_2.pth']  # no temporary left behind
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / 'easy_split.txt') as tmp:
            tmp.write_text('half')
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model_2.pth']


def test_atomic_files_keep_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint({'w': torch.ones(1)}, tmp_path / 'm.pth')
    finally:
        os.umask(old)
    assert (tmp_path / 'm.pth').stat().st_mode & 0o777 == 0o644


def test_nan_loss_stops_training_and_keeps_the_last_good_snapshot(tree, tmp_path, monkeypatch, capsys):
    cfg_path, snap = write_cfg(tmp_path, tree, 'nan', TRAIN={'DA_METHOD': 'SourceOnly', 'EARLY_STOP': 10})
    calls = {'n': 0}
    original = train_UDA.loss_calc

    def loss_calc(*args, **kwargs):  # finite up to iteration 2, NaN from iteration 3 on
        calls['n'] += 1
        loss = original(*args, **kwargs)
        return loss * float('nan') if calls['n'] > 6 else loss
    monkeypatch.setattr(train_UDA, 'loss_calc', loss_calc)
    assert train_main(['--cfg', str(cfg_path)]) == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    lines = [line for line in err.replace('\r', '\n').splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0])
    assert 'iteration 3' in lines[0] and 'loss_seg_src_aux is nan' in lines[0] and str(snap) in lines[0]
    assert snapshot_files(snap) == ['model_2.pth']
    assert [p.name for p in snap.glob('train_state_*.pth')] == ['train_state_2.pth']
    weights = torch.load(snap / 'model_2.pth', weights_only=True)
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


def test_infinite_loss_from_a_huge_learning_rate(tree, tmp_path, capsys):
    cfg_path, snap = write_cfg(tmp_path, tree, 'inf', TRAIN={'DA_METHOD': 'SourceOnly', 'LEARNING_RATE': 1e30,
                                                             'EARLY_STOP': 6})
    assert train_main(['--cfg', str(cfg_path)]) == 2
    err = capsys.readouterr().err
    line = err.replace('\r', '\n').rstrip().splitlines()[-1]
    assert line.startswith('error: iteration ') and 'loss_seg_src' in line and 'Traceback' not in err
    stopped = int(line.split()[2].rstrip(':'))
    assert all(int(name[6:-4]) < stopped for name in snapshot_files(snap))
