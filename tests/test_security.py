"""Safe loading: checkpoints load with weights_only=True (a crafted pickle that would run
code is refused and its payload never runs), YAML loads with the safe loader (a Python
object tag is refused), and the scripts read and write only inside the configured folders."""
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
import yaml

import tinydata
from advent.cli import train_main
from advent.cli import test_main as eval_main  # (a test_ name would be collected)
from advent.domain_adaptation.config import ConfigError, load_config
from advent.model.deeplabv2 import get_deeplab_v2
from advent.utils.serialization import CheckpointError, load_checkpoint, load_model_weights

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures('one_torch_thread')


class Payload:
    """Unpickling this runs `touch <marker>`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def crafted_checkpoints(folder, marker):
    """The same payload in torch's zip format (beside real weights) and as a legacy plain pickle."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = get_deeplab_v2(19, True, 'DeepLabv2-tiny').state_dict()
    zip_file = folder / 'crafted_zip.pth'
    torch.save({**weights, 'payload': Payload(marker)}, zip_file)
    legacy = folder / 'crafted_legacy.pth'
    with open(legacy, 'wb') as f:
        pickle.dump({'payload': Payload(marker)}, f, protocol=2)
    return zip_file, legacy


def one_error_line(err):
    lines = [line for line in err.replace('\r', '\n').splitlines() if line.strip()]
    assert 'Traceback' not in err and len(lines) == 1 and lines[0].startswith('error: '), err
    return lines[0]


def test_the_payload_would_run_with_plain_pickle(tmp_path):
    """Control: the crafted file really runs code when loaded without weights_only."""
    marker = tmp_path / 'ran'
    _, legacy = crafted_checkpoints(tmp_path, marker)
    with open(legacy, 'rb') as f:
        pickle.load(f)
    assert marker.exists()


def test_crafted_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'PWNED'
    for path in crafted_checkpoints(tmp_path, marker):
        with pytest.raises(CheckpointError, match=re.escape(str(path))):
            load_checkpoint(path)
        with pytest.raises(CheckpointError, match='weights_only=True'):
            load_model_weights(get_deeplab_v2(19, True, 'DeepLabv2-tiny'), path)
    assert not marker.exists()


@pytest.fixture
def world(tmp_path):
    tree = tinydata.make_tree(tmp_path / 'tree')
    snap = tmp_path / 'snap' / 'run'
    snap.mkdir(parents=True)
    return tree, snap


def write_cfg(tmp_path, tree, **sections):
    cfg = tinydata.stage1_config(tree, tmp_path / 'snap', EXP_NAME='run', **sections)
    return str(tinydata.write_config(tmp_path / 'cfg.yml', cfg))


def test_crafted_checkpoints_are_refused_by_every_script(tmp_path, world, capsys):
    tree, snap = world
    marker = tmp_path / 'PWNED'
    zip_file, legacy = crafted_checkpoints(tmp_path / 'evil', marker)

    # stage-1/3 initialisation
    assert train_main(['--cfg', write_cfg(tmp_path, tree, TRAIN={'RESTORE_FROM': str(zip_file)})]) == 2
    assert str(zip_file) in one_error_line(capsys.readouterr().err)
    # evaluation of a snapshot ('best' mode) and of a given checkpoint ('single' mode)
    (snap / 'model_2.pth').write_bytes(legacy.read_bytes())
    assert eval_main(['--cfg', write_cfg(tmp_path, tree, TEST={'SNAPSHOT_MAXITER': 2})]) == 2
    assert str(snap / 'model_2.pth') in one_error_line(capsys.readouterr().err)
    assert eval_main(['--cfg', write_cfg(tmp_path, tree, TEST={'MODE': 'single',
                                                               'RESTORE_FROM': [str(zip_file)]})]) == 2
    assert str(zip_file) in one_error_line(capsys.readouterr().err)
    # stage 2
    from entropy_rank.entropy import get_arguments, main
    from advent.cli import run_guarded
    out = tmp_path / 'rank'
    assert run_guarded(main, get_arguments(['--cfg', write_cfg(tmp_path, tree), '--best_iter', '2',
                                            '--out-dir', str(out)])) == 2
    assert str(snap / 'model_2.pth') in one_error_line(capsys.readouterr().err)
    assert not out.exists()
    # a training state for --resume
    (snap / 'train_state_2.pth').write_bytes(zip_file.read_bytes())
    assert train_main(['--cfg', write_cfg(tmp_path, tree), '--resume']) == 2
    assert str(snap / 'train_state_2.pth') in one_error_line(capsys.readouterr().err)

    assert not marker.exists()
    assert sorted(p.name for p in snap.iterdir()) == ['model_2.pth', 'train_state_2.pth']


@pytest.mark.parametrize('tag', [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/new:os.system ["touch {marker}"]',
    '!!python/name:os.system',
    '!!python/object:__main__.Anything {{}}',
])
def test_yaml_python_tags_are_refused(tmp_path, tag, capsys):
    marker = tmp_path / 'PWNED'
    path = tmp_path / 'evil.yml'
    path.write_text(f'SOURCE: GTA\nEXP_NAME: {tag.format(marker=marker)}\n')
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)
    assert train_main(['--cfg', str(path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(path) in line and 'safe YAML' in line
    assert not marker.exists()


def test_library_code_loads_only_safely():
    """Every torch.load in the project passes weights_only=True; YAML goes through safe_load;
    no pickle or unsafe numpy loads."""
    sources = [p for folder in ('advent', 'entropy_rank', 'intrada') for p in (ROOT / folder).rglob('*.py')]
    assert sources
    for path in sources:
        text = path.read_text()
        for match in re.finditer(r'torch\.load\((.*)', text):
            assert 'weights_only=True' in match.group(1), f'{path}: {match.group(0)}'
        assert not re.search(r'yaml\.(load|unsafe_load|full_load)\(', text), path
        assert not re.search(r'\bpickle\.loads?\(|allow_pickle=True', text), path


def files_under(folder):
    return {p for p in Path(folder).rglob('*') if p.is_file()}


def test_scripts_write_only_inside_the_configured_folders(tmp_path, world, monkeypatch, capsys):
    """Train, evaluate and rank from an empty working directory: the new files appear only in
    the snapshot folder and --out-dir; the dataset tree and the working directory stay as they were."""
    tree, snap = world
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    cfg = write_cfg(tmp_path, tree, TRAIN={'DA_METHOD': 'SourceOnly', 'EARLY_STOP': 2},
                    TEST={'SNAPSHOT_MAXITER': 2})
    before = files_under(tmp_path)
    assert train_main(['--cfg', cfg]) == 0
    assert eval_main(['--cfg', cfg]) == 0
    from entropy_rank.entropy import get_arguments, main
    from advent.cli import run_guarded
    out = tmp_path / 'rank'
    assert run_guarded(main, get_arguments(['--cfg', cfg, '--best_iter', '2', '--out-dir', str(out)])) == 0
    capsys.readouterr()
    new = files_under(tmp_path) - before
    assert new and all(snap in p.parents or out in p.parents for p in new), sorted(map(str, new))
    assert {p.name for p in out.iterdir()} == {'easy_split.txt', 'hard_split.txt', 'entropy_ranking.json',
                                              'ranking_overview.png', 'color_masks'}
    # list entries hold sub-folders (city/...): the pseudo-labels take only the file name
    assert len(list((out / 'color_masks').iterdir())) == 2 * len(tinydata.CS_TRAIN)
    assert not list(cwd.iterdir())
    assert not [p for p in files_under(tmp_path) if p.name.endswith('.tmp')]  # no temporary left behind


@pytest.mark.parametrize('dataset', ['gta5', 'cityscapes', 'synthia', 'pseudo'])
@pytest.mark.parametrize('name', ['../outside.png', '/etc/passwd', 'sub/../../outside.png', '..\\outside.png'])
def test_no_dataset_reads_outside_its_root(tmp_path, dataset, name):
    from advent.dataset.base_dataset import DatasetError
    from advent.dataset.cityscapes import CityscapesDataSet, CityscapesPseudoDataSet
    from advent.dataset.gta5 import GTA5DataSet
    from advent.dataset.synthia import SYNTHIADataSet
    root = tmp_path / 'root'
    (root / 'x').mkdir(parents=True)
    masks = tmp_path / 'masks'
    (masks / 'x').mkdir(parents=True)
    lst = tinydata.write_list(tmp_path / 'list.txt', [name])
    build = {'gta5': lambda: GTA5DataSet(root, lst), 'synthia': lambda: SYNTHIADataSet(root, lst),
             'cityscapes': lambda: CityscapesDataSet(root, lst),
             'pseudo': lambda: CityscapesPseudoDataSet(root, lst, masks)}[dataset]
    with pytest.raises(DatasetError, match='leaves the dataset folder'):
        build()


def test_exp_name_cannot_lead_outside_the_snapshot_root(tmp_path, capsys):
    tree = tinydata.make_tree(tmp_path / 'tree')
    for name in ('..', '../elsewhere', 'a/b'):
        cfg = tinydata.stage1_config(tree, tmp_path / 'snap', EXP_NAME=name)
        path = tinydata.write_config(tmp_path / 'cfg.yml', cfg)
        assert train_main(['--cfg', str(path)]) == 2
        assert 'EXP_NAME' in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / 'snap').exists() and not (tmp_path / 'elsewhere').exists()
