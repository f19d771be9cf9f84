"""TRAIN.D_NDF, the discriminators' width: 64 (the original's) by default and in every shipped
config, a smaller one in the demo's configs, a training run and its files at another width,
one-line errors for a bad value and for resuming a state of another width; the profile script
that measured what the width costs."""
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

import tinydata
from advent.cli import train_main
from advent.dataset.loader import InfiniteBatches
from advent.domain_adaptation.config import ConfigError, load_config
from intrada.demo.stages import DISCRIMINATOR_WIDTH, SETTINGS, base_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONFIGS = sorted((ROOT / 'configs').glob('*.yml'))
NUM_CLASSES = 19
CONV_KEYS = ('0.weight', '2.weight', '4.weight', '6.weight', '8.weight')

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def conv_widths(state_dict):
    """Output channels of the five convolutions of a saved discriminator."""
    return [state_dict[key].shape[0] for key in CONV_KEYS]


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    return tinydata.make_tree(tmp_path_factory.mktemp('tree'))


def train_advent(tree, folder, **train):
    """Two AdvEnt iterations on the tiny tree (snapshot at 2); returns (config path, snapshot folder)."""
    cfg = tinydata.stage1_config(tree, folder, EXP_NAME='run',
                                 TRAIN={'EARLY_STOP': 2, 'MAX_ITERS': 4, **train})
    cfg_path = tinydata.write_config(folder / 'run.yml', cfg)
    assert train_main(['--cfg', str(cfg_path)]) == 0
    return cfg_path, folder / 'run'


def test_default_is_the_original_width():
    assert load_config().TRAIN.D_NDF == 64


def test_every_shipped_config_keeps_the_original_width():
    assert len(SHIPPED_CONFIGS) >= 9  # the original's configs and the SYNTHIA ones
    for path in SHIPPED_CONFIGS:
        assert load_config(path).TRAIN.D_NDF == 64, path.name


def test_the_demo_configs_use_their_width():
    assert DISCRIMINATOR_WIDTH == 16  # a quarter of 64, as DeepLabv2-tiny is a quarter of DeepLabv2's width
    data = dict.fromkeys(('source_root', 'source_list', 'target_root', 'target_list'), '/data')
    for settings in SETTINGS.values():
        assert base_config(data, '/snapshots', settings, seed=0)['TRAIN']['D_NDF'] == DISCRIMINATOR_WIDTH


@pytest.mark.parametrize('value, expected', [
    ('0', 'must be positive, got 0'),
    ('-8', 'must be positive, got -8'),
    ('8.5', 'must be an integer, got float 8.5'),
    ('wide', "must be an integer, got str 'wide'"),
])
def test_a_bad_width_is_one_config_error(tmp_path, value, expected):
    path = tmp_path / 'c.yml'
    path.write_text(f'TRAIN:\n  D_NDF: {value}\n')
    with pytest.raises(ConfigError, match='TRAIN.D_NDF') as error:
        load_config(path)
    assert expected in str(error.value)


def test_a_bad_width_stops_the_train_script_in_one_line(tree, tmp_path, capsys):
    cfg = tinydata.stage1_config(tree, tmp_path / 'snap', EXP_NAME='bad', TRAIN={'D_NDF': 0})
    cfg_path = tinydata.write_config(tmp_path / 'bad.yml', cfg)
    assert train_main(['--cfg', str(cfg_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error:') and 'TRAIN.D_NDF must be positive, got 0' in err[0]
    assert not (tmp_path / 'snap').exists()


@pytest.mark.parametrize('width, expected', [
    (None, [64, 128, 256, 512, 1]),  # the default: the original's network
    (8, [8, 16, 32, 64, 1]),
])
def test_training_builds_and_saves_discriminators_of_the_configured_width(tree, tmp_path, width, expected):
    _, snap = train_advent(tree, tmp_path, **({} if width is None else {'D_NDF': width}))
    state = torch.load(snap / 'train_state_2.pth', map_location='cpu', weights_only=True)
    for name in ('D_aux', 'D_main'):
        saved = torch.load(snap / f'model_2_{name}.pth', map_location='cpu', weights_only=True)
        assert conv_widths(saved) == expected
        assert saved['0.weight'].shape == (expected[0], NUM_CLASSES, 4, 4)
        assert conv_widths(state['discriminators'][f'd_{name[2:].lower()}']) == expected


def test_resuming_a_state_of_another_width_is_refused_in_one_line(tree, tmp_path, capsys):
    cfg_path, snap = train_advent(tree, tmp_path, D_NDF=8)
    # the same width: the check passes (the run is complete, so there is nothing to do)
    assert train_main(['--cfg', str(cfg_path), '--resume']) == 0
    assert 'is complete' in capsys.readouterr().out

    other = tmp_path / 'other'
    shutil.copytree(snap, other / 'run')
    cfg = tinydata.stage1_config(tree, other, EXP_NAME='run', TRAIN={'EARLY_STOP': 2, 'MAX_ITERS': 4})
    cfg_path = tinydata.write_config(other / 'run.yml', cfg)
    before = {p.name: p.stat().st_mtime_ns for p in (other / 'run').iterdir()}
    assert train_main(['--cfg', str(cfg_path), '--resume']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error:') and 'train_state_2.pth' in err[0]
    assert 'TRAIN.D_NDF 8, the config has 64' in err[0]
    # refused before anything was written (train_cfg.yml still describes the saved run)
    assert {p.name: p.stat().st_mtime_ns for p in (other / 'run').iterdir()} == before


def test_resuming_a_discriminator_of_another_shape_is_refused_in_one_line(tree, tmp_path, capsys):
    """The first convolution as wide as TRAIN.D_NDF, a later key of another shape or missing:
    every key and shape is compared, the run is refused before it goes on."""
    _, snap = train_advent(tree, tmp_path, D_NDF=8)
    capsys.readouterr()
    changes = {'6.weight': lambda d: d.update({'6.weight': d['6.weight'][:, :16]}), '8.bias': lambda d: d.pop('8.bias')}
    for key, change in changes.items():
        other = tmp_path / key
        shutil.copytree(snap, other / 'run')
        state = torch.load(other / 'run' / 'train_state_2.pth', map_location='cpu', weights_only=True)
        change(state['discriminators']['d_main'])
        torch.save(state, other / 'run' / 'train_state_2.pth')
        cfg = tinydata.stage1_config(tree, other, EXP_NAME='run', TRAIN={'EARLY_STOP': 4, 'MAX_ITERS': 4, 'D_NDF': 8})
        resume = tinydata.write_config(other / 'run.yml', cfg)
        before = {p.name: p.stat().st_mtime_ns for p in (other / 'run').iterdir()}
        assert train_main(['--cfg', str(resume), '--resume']) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('error:') and 'train_state_2.pth (d_main)' in err[0], err
        assert repr(key) in err[0] and 'D_NDF' not in err[0], err
        assert {p.name: p.stat().st_mtime_ns for p in (other / 'run').iterdir()} == before


def test_the_profile_script_times_every_part_of_an_iteration(tmp_path):
    spec = importlib.util.spec_from_file_location('adversarial_profile', ROOT / 'benchmarks' / 'adversarial_profile.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main([str(tmp_path), '--tiny', '--iterations', '2', '--rounds', '1', '--widths', '8'])
    assert list(report['runs']) == ['SourceOnly', 'BNOnly', 'MinEnt', 'AdvEnt D_NDF 8']
    assert report['runs']['SourceOnly']['ratio_to_source_only'] == 1.0
    for name, run in report['runs'].items():
        assert 0 < run['fetching_per_iteration'] < run['seconds_per_iteration'], name
    assert json.loads((tmp_path / 'adversarial_profile.json').read_text())['runs'] == report['runs']
    assert module.train_UDA.InfiniteBatches is InfiniteBatches  # the loop's own again, once done
    saved = json.loads((tmp_path / 'configs' / 'AdvEnt_D_NDF_8.yml').read_text())
    assert saved['TRAIN']['D_NDF'] == 8 and saved['TRAIN']['DA_METHOD'] == 'AdvEnt'
