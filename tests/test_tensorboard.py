"""TensorBoard logging of the training loop (TRAIN.TENSORBOARD_LOGDIR, TENSORBOARD_VIZRATE),
read back with tensorboard's EventAccumulator.

As in the original, the losses of every iteration and, every VIZRATE iterations, the image,
colour prediction and entropy map of the source ('S') and target ('T') batches are logged;
the iteration that takes the last snapshot stops before its logging. The scripts log only
with --tensorboard (the original cleared TENSORBOARD_LOGDIR otherwise)."""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from advent.domain_adaptation import experiment
from advent.domain_adaptation.config import finalize_paths, load_config

from stage_utils import TINY, info_palette, save_tiny_init, write_yaml

SRC_SIZE = [96, 54]   # (width, height); the trees' images are 16:9
TRG_SIZE = [80, 45]
IMAGE_TAGS = [f'{kind} - {domain}' for domain in ('S', 'T') for kind in ('Image', 'Prediction', 'Entropy')]
LOSS_TAGS = {
    'AdvEnt': ['data/loss_seg_src_aux', 'data/loss_seg_src_main', 'data/loss_adv_trg_aux', 'data/loss_adv_trg_main'],
    'MinEnt': ['data/loss_seg_src_aux', 'data/loss_seg_src_main', 'data/loss_ent_aux', 'data/loss_ent_main'],
}



pytestmark = pytest.mark.usefixtures('one_torch_thread')

@pytest.fixture(scope='module')
def setup(tmp_path_factory, parity_trees):
    root = tmp_path_factory.mktemp('tb')
    return Path(parity_trees), save_tiny_init(root / 'init.pth', seed=5)


def config_dict(trees, init, tmp_path, method='AdvEnt', **train):
    return {
        'SOURCE': 'GTA', 'TARGET': 'Cityscapes', 'NUM_WORKERS': 0,
        'DATA_DIRECTORY_SOURCE': str(trees / 'GTA5'), 'DATA_LIST_SOURCE': str(trees / 'lists' / 'gta5_all.txt'),
        'DATA_DIRECTORY_TARGET': str(trees / 'Cityscapes'), 'DATA_LIST_TARGET': str(trees / 'lists' / 'cs_{}.txt'),
        'EXP_ROOT_SNAPSHOT': str(tmp_path / 'snap'), 'EXP_ROOT_LOGS': str(tmp_path / 'logs'),
        'TRAIN': {'MODEL': TINY, 'RESTORE_FROM': str(init), 'DA_METHOD': method, 'INPUT_SIZE_SOURCE': SRC_SIZE,
                  'INPUT_SIZE_TARGET': TRG_SIZE, 'MAX_ITERS': 10, 'EARLY_STOP': 2, 'SAVE_PRED_EVERY': 2, **train},
    }


def read_events(logdir):
    files = list(Path(logdir).rglob('events.out.tfevents.*'))
    assert files, f'no events file under {logdir}'
    acc = EventAccumulator(str(logdir), size_guidance={'scalars': 0, 'images': 0})
    acc.Reload()
    return acc


@pytest.mark.parametrize('method', ['AdvEnt', 'MinEnt'])
def test_losses_and_images_are_logged(method, setup, tmp_path):
    trees, init = setup
    logdir = tmp_path / 'tb'
    cfg = load_config(write_yaml(tmp_path / 'cfg.yml', config_dict(
        trees, init, tmp_path, method, TENSORBOARD_LOGDIR=str(logdir), TENSORBOARD_VIZRATE=1)))
    finalize_paths(cfg)
    experiment.run_training(cfg)
    acc = read_events(logdir)
    tags = acc.Tags()
    # iterations 0 and 1 are logged; iteration 2 takes the snapshot and stops
    for tag in LOSS_TAGS[method]:
        assert tag in tags['scalars'], (tag, tags['scalars'])
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [0, 1]
        assert all(np.isfinite(e.value) for e in events)
    if method == 'AdvEnt':
        assert any(t.startswith('data/loss_d_aux') for t in tags['scalars'])
        assert any(t.startswith('data/loss_d_main') for t in tags['scalars'])
        # a fresh discriminator: the adversarial BCE starts near log 2
        assert abs(acc.Scalars('data/loss_adv_trg_main')[0].value - np.log(2)) < 0.2
    assert sorted(tags['images']) == sorted(IMAGE_TAGS)
    palette = {tuple(c) for c in info_palette()} | {(0, 0, 0)}
    for tag in IMAGE_TAGS:
        events = acc.Images(tag)
        assert [e.step for e in events] == [0, 1]
        width, height = SRC_SIZE if tag.endswith('S') else TRG_SIZE
        for event in events:
            assert (event.width, event.height) == (width, height), tag
            image = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert('RGB'))
            assert image.shape == (height, width, 3)
            if tag.startswith('Prediction'):
                assert {tuple(c) for c in image.reshape(-1, 3)} <= palette, tag


def test_vizrate_spaces_the_images(setup, tmp_path):
    """Images at the iterations i with i % VIZRATE == VIZRATE - 1; losses at every iteration."""
    trees, init = setup
    logdir = tmp_path / 'tb'
    cfg = load_config(write_yaml(tmp_path / 'cfg.yml', config_dict(
        trees, init, tmp_path, 'MinEnt', TENSORBOARD_LOGDIR=str(logdir), TENSORBOARD_VIZRATE=2,
        EARLY_STOP=4, SAVE_PRED_EVERY=4)))
    finalize_paths(cfg)
    experiment.run_training(cfg)
    acc = read_events(logdir)
    assert [e.step for e in acc.Scalars('data/loss_seg_src_main')] == [0, 1, 2, 3]
    for tag in IMAGE_TAGS:
        assert [e.step for e in acc.Images(tag)] == [1, 3]


def test_train_command_logs_only_with_the_flag(setup, tmp_path):
    """The train scripts' main (advent.cli.train_main, what advent/scripts/train.py and
    intrada/train.py call): --tensorboard --viz-every-iter 1 logs under
    EXP_ROOT_LOGS/tensorboard/EXP_NAME; without the flag nothing is logged, even with
    TRAIN.TENSORBOARD_LOGDIR in the config."""
    from advent.cli import train_main
    trees, init = setup
    on = config_dict(trees, init, tmp_path / 'on')
    off = config_dict(trees, init, tmp_path / 'off', TENSORBOARD_LOGDIR=str(tmp_path / 'off' / 'tb'))
    assert train_main(['--cfg', str(write_yaml(tmp_path / 'on.yml', on)), '--tensorboard',
                       '--viz-every-iter', '1']) == 0
    assert train_main(['--cfg', str(write_yaml(tmp_path / 'off.yml', off))]) == 0
    acc = read_events(tmp_path / 'on' / 'logs' / 'tensorboard' / f'GTA2Cityscapes_{TINY}_AdvEnt')
    assert sorted(acc.Tags()['images']) == sorted(IMAGE_TAGS)
    assert [e.step for e in acc.Images('Prediction - T')] == [0, 1]
    assert (tmp_path / 'off' / 'snap' / f'GTA2Cityscapes_{TINY}_AdvEnt' / 'model_2.pth').is_file()
    assert not list((tmp_path / 'off').rglob('events.out.tfevents.*'))
