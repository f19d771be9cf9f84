"""Shared fixtures of the library tests.

The parity data (outputs of the original IntraDA/ADVENT code on small deterministic
inputs) lives in tests/data/parity; its helper modules `detweights` and `make_trees`
are imported from there, so the tests never depend on files outside the project.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

TESTS_DIR = Path(__file__).resolve().parent
PARITY_DIR = TESTS_DIR / 'data' / 'parity'
if str(PARITY_DIR) not in sys.path:
    sys.path.insert(0, str(PARITY_DIR))

IMG_MEAN = np.array((104.00698793, 116.66876762, 122.67891434), dtype=np.float32)


def load_parity(name):
    """A file of the parity data: a .json file as parsed, a .npz file as {name: array}."""
    path = PARITY_DIR / name
    if path.suffix == '.npz':
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    return json.loads(path.read_text())


def rel_err(a, b):
    """||a - b|| / ||b|| in float64 (the measure of the parity checks); shapes must agree."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape, f'shape {a.shape} != golden {b.shape}'
    nb = np.linalg.norm(b.ravel())
    d = np.linalg.norm((a - b).ravel())
    return d / nb if nb > 0 else d


def _parity_fixture(fixture_name, file_name):
    """A session fixture that loads one parity file once."""
    return pytest.fixture(scope='session', name=fixture_name)(lambda: load_parity(file_name))


# g1, g3, g4: the golden outputs of the original checks' groups G1 (model), G3 (functions), G4 (datasets)
golden_multi_spec = _parity_fixture('golden_multi_spec', 'deeplab_multi.json')
golden_single_spec = _parity_fixture('golden_single_spec', 'deeplab_single.json')
golden_disc_spec = _parity_fixture('golden_disc_spec', 'disc.json')
g1 = _parity_fixture('g1', 'g1_model.npz')
g3 = _parity_fixture('g3', 'g3_funcs.npz')
g4 = _parity_fixture('g4', 'g4_datasets.npz')
parity_meta = _parity_fixture('parity_meta', 'meta.json')


@pytest.fixture(scope='session')
def r101_multi():
    """A freshly initialised ResNet-101 multi-level 19-class model. Tests must not modify it."""
    from advent.model.deeplabv2 import get_deeplab_v2
    torch.manual_seed(0)
    return get_deeplab_v2(num_classes=19, multi_level=True)


@pytest.fixture(scope='session')
def parity_trees(tmp_path_factory):
    """The tiny GTA5 / Cityscapes trees of the parity data (make_trees.py)."""
    import make_trees
    return make_trees.make_trees(str(tmp_path_factory.mktemp('parity') / 'trees'))


@pytest.fixture(scope='module')
def one_torch_thread():
    """Tiny in-process runs are fastest on one thread (and then compare among themselves)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    """Cases marked `cuda` (tests/devices.py) are deselected where no GPU is present."""
    if torch.cuda.is_available():
        return
    cuda_only = [item for item in items if item.get_closest_marker('cuda')]
    if cuda_only:
        config.hook.pytest_deselected(items=cuda_only)
        items[:] = [item for item in items if not item.get_closest_marker('cuda')]
