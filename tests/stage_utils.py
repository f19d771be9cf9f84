"""Helpers shared by the stage tests (test_stages, test_train_faithful, test_tensorboard):
configs written as YAML, the stage scripts run as subprocesses, tiny deterministic weights."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from advent.utils.serialization import save_checkpoint

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY = 'DeepLabv2-tiny'
IMG_MEAN = np.array((104.00698793, 116.66876762, 122.67891434), dtype=np.float32)
CLASS_NAMES = ['road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'light', 'sign', 'vegetation',
               'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motocycle', 'bicycle']
RARE_CLASSES = (3, 4, 5, 6, 7, 9, 12, 14, 15, 16, 17)
GTA_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}

SCRIPTS = {
    'train1': 'advent/scripts/train.py',
    'test1': 'advent/scripts/test.py',
    'entropy': 'entropy_rank/entropy.py',
    'train3': 'intrada/train.py',
    'test3': 'intrada/test.py',
}


def write_yaml(path, mapping):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(mapping, default_flow_style=False, sort_keys=False))
    return path


def script_env():
    env = dict(os.environ)
    # one intra-op thread: the tiny runs gain nothing from more, and on a busy two-core
    # machine spin-waiting threads make them many times slower
    env['OMP_NUM_THREADS'] = '1'
    env['MKL_NUM_THREADS'] = '1'
    env['CUDA_VISIBLE_DEVICES'] = ''   # tiny runs: on the CPU wherever the tests run
    env['PYTHONWARNINGS'] = 'ignore'
    return env


def run_script(name, *args, cwd=None, timeout=300):
    """Run a stage script (a key of SCRIPTS) with this interpreter; returns CompletedProcess."""
    cmd = [sys.executable, str(PROJECT_ROOT / SCRIPTS[name]), *[str(a) for a in args]]
    return subprocess.run(cmd, cwd=str(cwd or PROJECT_ROOT), capture_output=True, text=True, timeout=timeout,
                          env=script_env())


def start_script(name, *args, cwd=None):
    """Start a stage script without waiting; finish it with finish_script."""
    cmd = [sys.executable, str(PROJECT_ROOT / SCRIPTS[name]), *[str(a) for a in args]]
    return subprocess.Popen(cmd, cwd=str(cwd or PROJECT_ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=script_env())


def finish_script(popen, timeout=300):
    try:
        stdout, stderr = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        stdout, stderr = popen.communicate()
    return subprocess.CompletedProcess(popen.args, popen.returncode, stdout, stderr)


def run_scripts(*jobs):
    """Run several (name, args, cwd) jobs at once (each on one thread); CompletedProcess list."""
    started = [start_script(name, *args, cwd=cwd) for name, args, cwd in jobs]
    return [finish_script(p) for p in started]


def check_ok(proc):
    assert proc.returncode == 0, \
        f'exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}'
    return proc


def tiny_model(seed, multi_level=True, num_classes=19):
    from advent.model.deeplabv2 import get_deeplab_v2
    torch.manual_seed(seed)
    return get_deeplab_v2(num_classes=num_classes, multi_level=multi_level, variant=TINY)


def save_tiny_init(path, seed=0, multi_level=True):
    """A plain state dict of a seeded tiny model, with the head weights enlarged a little so
    the predictions are not all alike (a fresh N(0, 0.01) head gives near-uniform softmax)."""
    model = tiny_model(seed, multi_level)
    state = model.state_dict()
    gen = torch.Generator().manual_seed(seed + 100)
    for key, value in state.items():
        if key.startswith(('layer5', 'layer6')) and key.endswith('weight'):
            state[key] = torch.randn(value.shape, generator=gen) * 0.05
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, path)   # renamed into place, as training writes its snapshots
    return path


def load_bgr_image(path, size):
    """The preprocessing of SPEC 6, written out: PIL RGB, BICUBIC to (w, h), float32,
    RGB -> BGR, minus IMG_MEAN, (1, 3, h, w) tensor."""
    from PIL import Image
    arr = np.asarray(Image.open(path).convert('RGB').resize(tuple(size), Image.BICUBIC), np.float32)
    arr = arr[:, :, ::-1] - IMG_MEAN
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def info_palette():
    import json
    info = json.loads((PROJECT_ROOT / 'advent' / 'dataset' / 'cityscapes_list' / 'info.json').read_text())
    return np.array(info['palette'], np.uint8)
