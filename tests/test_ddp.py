"""Multi-process training on PyTorch's DDP, launched by torchrun (gloo, CPU).

Two ranks train DeepLabv2-tiny with AdvEnt for a few iterations on a tiny tree: each draws
its own shard of both domains from the same shuffled order, and at the end both hold
identical segmenter weights, BatchNorm running statistics and discriminators; only rank 0
writes snapshots. After each step the BatchNorm running statistics are the mean of those
each rank's own batch gave, and the logged losses the mean of the ranks' losses. A run with
torchrun's environment for a world of one equals the plain run bit for bit.

This file is also the worker torchrun starts: `python -m torch.distributed.run ...
tests/test_ddp.py --worker CFG OUT`.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
W, H = 64, 32
GTA = ['00001.png', '00002.png', '00003.png']
CS_TRAIN = ['aachen/aachen_000000_000019_leftImg8bit.png', 'aachen/aachen_000001_000019_leftImg8bit.png',
            'bochum/bochum_000000_000313_leftImg8bit.png', 'bochum/bochum_000000_001097_leftImg8bit.png']
MAPPED = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
EARLY_STOP = 3  # iterations 0..3, one snapshot at 3


def _pair(seed):
    rng = np.random.default_rng(seed)
    label = np.repeat(np.repeat(rng.choice(MAPPED + [0, 1], size=(H // 8, W // 8)), 8, 0), 8, 1).astype(np.uint8)
    image = rng.uniform(0, 255, size=(H, W, 3)) * 0.3 + label[..., None] * 5.0
    return image.clip(0, 255).astype(np.uint8), label


def make_tree(root):
    root = Path(root)
    for k, name in enumerate(GTA):
        image, label = _pair(k)
        for sub, array in (('images', image), ('labels', label)):
            (root / 'GTA5' / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / 'GTA5' / sub / name)
    for k, name in enumerate(CS_TRAIN):
        path = root / 'Cityscapes' / 'leftImg8bit' / 'train' / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_pair(10 + k)[0]).save(path)
    (root / 'gta.txt').write_text(''.join(n + '\n' for n in GTA))
    (root / 'cs_train.txt').write_text(''.join(n + '\n' for n in CS_TRAIN))
    return root


def write_config(path, tree, snapshots):
    import yaml
    cfg = {'SOURCE': 'GTA', 'TARGET': 'Cityscapes', 'NUM_WORKERS': 0,
           'GPU_ID': -1,  # bit-exact comparisons between runs: the CPU, also in-process on a GPU machine
           'DATA_DIRECTORY_SOURCE': str(tree / 'GTA5'), 'DATA_LIST_SOURCE': str(tree / 'gta.txt'),
           'DATA_DIRECTORY_TARGET': str(tree / 'Cityscapes'), 'DATA_LIST_TARGET': str(tree / 'cs_train.txt'),
           'EXP_ROOT_SNAPSHOT': str(snapshots),
           'TRAIN': {'MODEL': 'DeepLabv2-tiny', 'INPUT_SIZE_SOURCE': [W, H], 'INPUT_SIZE_TARGET': [W, H],
                     'MAX_ITERS': 20, 'EARLY_STOP': EARLY_STOP, 'SAVE_PRED_EVERY': EARLY_STOP,
                     # larger than the published rates, so that a few iterations move the weights
                     'LEARNING_RATE': 1e-2, 'LEARNING_RATE_D': 1e-3}}
    Path(path).write_text(yaml.safe_dump(cfg))
    return Path(path)


def snapshot_dir(snapshots):
    return Path(snapshots) / 'GTA2Cityscapes_DeepLabv2-tiny_AdvEnt'


# ------------------------------------------------------------------ the worker (one rank)

def worker(cfg_path, out_dir):
    """Train through the entry point of the train script, recording what the test checks."""
    from advent.domain_adaptation import experiment, train_UDA
    from advent.model import discriminator
    from advent.utils import distributed

    torch.set_num_threads(1)
    seen = {'discriminators': [], 'snapshots': [], 'names': [], 'loaders': None, 'model': None,
            'buffers': [], 'losses': []}
    build_d = discriminator.get_fc_discriminator

    def recording_builder(*args, **kwargs):
        d = build_d(*args, **kwargs)
        seen['discriminators'].append(d)
        return d

    train = experiment.train_domain_adaptation

    def recording_train(model, source_loader, target_loader, cfg, resume_state=None):
        seen['model'], seen['loaders'] = model, (source_loader, target_loader)
        return train(model, source_loader, target_loader, cfg, resume_state=resume_state)

    save = train_UDA.save_snapshot

    def recording_save(directory, i_iter, *args):
        seen['snapshots'].append(i_iter)
        return save(directory, i_iter, *args)

    class RecordingBatches(train_UDA.InfiniteBatches):
        def __next__(self):
            batch = super().__next__()
            seen['names'].append(list(batch[3]))
            return batch

    average = distributed.average_buffers

    def recording_average(module):
        def statistics():
            return {name: b.detach().clone() for name, b in module.named_buffers() if b.is_floating_point()}
        before = statistics()
        average(module)
        seen['buffers'].append((before, statistics()))

    check_finite = train_UDA.check_finite

    def recording_check_finite(losses, *args):
        logged = check_finite(losses, *args)
        seen['losses'].append(({name: loss.item() for name, loss in losses.items()}, logged))
        return logged

    discriminator.get_fc_discriminator = recording_builder
    distributed.average_buffers = recording_average
    train_UDA.check_finite = recording_check_finite
    experiment.train_domain_adaptation = recording_train
    train_UDA.save_snapshot = recording_save
    train_UDA.InfiniteBatches = RecordingBatches

    from advent.cli import train_main  # the entry point of advent/scripts/train.py
    assert train_main(['--cfg', str(cfg_path)]) == 0
    rank = int(os.environ.get('RANK', '0'))
    samplers = [loader.sampler for loader in seen['loaders']]
    torch.save({'model': seen['model'].state_dict(),
                'discriminators': [d.state_dict() for d in seen['discriminators']],
                'snapshots': seen['snapshots'],
                'names': seen['names'],
                'buffers': seen['buffers'],
                'losses': seen['losses'],
                'samplers': [(s.seed, s.rank, s.world_size) for s in samplers]},
               Path(out_dir) / f'rank{rank}.pth')


# ------------------------------------------------------------------ the tests

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', PYTHONWARNINGS='ignore')
    env['PYTHONPATH'] = os.pathsep.join([str(PROJECT_ROOT), env.get('PYTHONPATH', '')])
    return env


def _assert_same_state(a, b, what):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f'{what}: {key} differs'


def test_two_gloo_ranks_stay_identical(tmp_path):
    tree = make_tree(tmp_path / 'tree')
    snapshots = tmp_path / 'snapshots'
    cfg = write_config(tmp_path / 'ddp.yml', tree, snapshots)
    out = tmp_path / 'out'
    out.mkdir()
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
           '--master_port', str(_free_port()), str(Path(__file__).resolve()), '--worker', str(cfg), str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(out / f'rank{r}.pth', weights_only=True) for r in (0, 1)]

    # synchronised: segmenter (parameters and BatchNorm statistics) and both discriminators
    _assert_same_state(ranks[0]['model'], ranks[1]['model'], 'segmenter')
    assert len(ranks[0]['discriminators']) == 2
    for d0, d1 in zip(ranks[0]['discriminators'], ranks[1]['discriminators']):
        _assert_same_state(d0, d1, 'discriminator')

    # the weights moved, and the BatchNorm running statistics were updated
    from advent.model.deeplabv2 import get_deeplab_v2
    torch.manual_seed(1234)
    fresh = get_deeplab_v2(19, True, 'DeepLabv2-tiny').state_dict()
    assert not torch.equal(fresh['layer6.conv2d_list.0.weight'], ranks[0]['model']['layer6.conv2d_list.0.weight'])
    assert not torch.equal(fresh['bn1.running_mean'], ranks[0]['model']['bn1.running_mean'])

    # after each step the BatchNorm running statistics are the mean of what each rank's own
    # batch gave it, on both ranks
    assert len(ranks[0]['buffers']) == len(ranks[1]['buffers']) == EARLY_STOP + 1
    for i_iter, ((own0, averaged0), (own1, averaged1)) in enumerate(zip(ranks[0]['buffers'], ranks[1]['buffers'])):
        assert own0.keys() == own1.keys() and 'bn1.running_mean' in own0
        assert not torch.equal(own0['bn1.running_mean'], own1['bn1.running_mean'])  # two different batches
        for name in own0:
            mean = (own0[name].double() + own1[name].double()) / 2
            torch.testing.assert_close(averaged0[name].double(), mean, rtol=1e-6, atol=1e-7,
                                       msg=f'iteration {i_iter}: {name} is not the mean over the ranks')
            assert torch.equal(averaged0[name], averaged1[name])
    # the losses logged (TensorBoard, progress bar, the divergence check) are the mean over the ranks
    assert len(ranks[0]['losses']) == EARLY_STOP + 1
    for (own0, logged0), (own1, logged1) in zip(ranks[0]['losses'], ranks[1]['losses']):
        assert logged0 == logged1 and logged0.keys() == own0.keys() == own1.keys()
        assert own0 != own1
        for name in own0:
            assert logged0[name] == pytest.approx((own0[name] + own1[name]) / 2, rel=1e-6), name

    # one shuffled order (the same seed on both ranks), each rank its own shard of it
    assert [s[0] for s in ranks[0]['samplers']] == [s[0] for s in ranks[1]['samplers']]
    assert [s[1:] for s in ranks[0]['samplers']] == [(0, 2), (0, 2)]
    assert [s[1:] for s in ranks[1]['samplers']] == [(1, 2), (1, 2)]
    assert ranks[0]['names'] != ranks[1]['names']
    assert len(ranks[0]['names']) == 2 * (EARLY_STOP + 1)  # a source and a target batch per iteration

    # snapshots from rank 0 only, holding rank 0's weights
    assert ranks[0]['snapshots'] == [EARLY_STOP] and ranks[1]['snapshots'] == []
    saved = torch.load(snapshot_dir(snapshots) / f'model_{EARLY_STOP}.pth', weights_only=True)
    _assert_same_state(saved, ranks[0]['model'], 'snapshot')
    assert sorted(p.name for p in snapshot_dir(snapshots).iterdir()) == [
        f'model_{EARLY_STOP}.pth', f'model_{EARLY_STOP}_D_aux.pth', f'model_{EARLY_STOP}_D_main.pth',
        'train_cfg.yml', f'train_state_{EARLY_STOP}.pth']
    # rank 0 alone prints the header
    assert (proc.stdout + proc.stderr).count('experiment: ') == 1


@pytest.fixture
def one_thread():
    """Tiny tensors: more intra-op threads only spin on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_world_size_one_equals_plain_run(tmp_path, monkeypatch, one_thread):
    from advent.domain_adaptation.config import finalize_paths, load_config
    from advent.domain_adaptation.experiment import run_training
    from advent.utils import distributed

    tree = make_tree(tmp_path / 'tree')
    states = []
    for name, env in (('plain', {}),
                      ('torchrun1', {'WORLD_SIZE': '1', 'RANK': '0', 'LOCAL_RANK': '0', 'LOCAL_WORLD_SIZE': '1',
                                     'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(_free_port())})):
        for key in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        cfg = load_config(write_config(tmp_path / f'{name}.yml', tree, tmp_path / name))
        finalize_paths(cfg)
        run_training(cfg)
        assert distributed.get_world_size() == 1 and not torch.distributed.is_initialized()
        directory = snapshot_dir(tmp_path / name)
        states.append({part: torch.load(directory / f'model_{EARLY_STOP}{part}.pth', weights_only=True)
                       for part in ('', '_D_aux', '_D_main')})
    for part in states[0]:
        _assert_same_state(states[0][part], states[1][part], f'model{part}')


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == '--worker':
        sys.path.insert(0, str(PROJECT_ROOT))
        worker(sys.argv[2], sys.argv[3])
    else:
        sys.exit('usage: test_ddp.py --worker CFG OUT (started by torchrun)')
