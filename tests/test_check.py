"""python -m intrada.check on a tiny complete tree (all green) and on trees with one defect
each: the defect is reported in one line, the summary names it, the exit status is 1."""
import shutil

import numpy as np
import pytest
import torch

from advent.model.deeplabv2 import get_deeplab_v2
from intrada.check import console_main
from tinydata import CS_VAL, GTA_NAMES, make_tree, stage1_config, write_config, write_png


@pytest.fixture
def setup(tmp_path):
    """A tiny tree, an init checkpoint for the tiny model, and a function that writes the config."""
    tree = make_tree(tmp_path / 'tree')
    init = tmp_path / 'init.pth'
    torch.save(get_deeplab_v2(num_classes=19, multi_level=True, variant='DeepLabv2-tiny').state_dict(), init)

    def config(**train):
        cfg = stage1_config(tree, tmp_path / 'experiments', TRAIN={'RESTORE_FROM': str(init), **train})
        return str(write_config(tmp_path / 'cfg.yml', cfg))
    return tree, config


def run_check(cfg_path, capsys):
    status = console_main(['--cfg', cfg_path])
    out = capsys.readouterr().out
    checks = [line for line in out.splitlines() if line.split('  ')[0] in ('ok', 'WARN', 'FAIL')]
    return status, checks, out


def test_complete_tree_is_all_green(setup, capsys):
    _, config = setup
    status, checks, out = run_check(config(), capsys)
    assert status == 0, out
    names = [line[6:22].strip() for line in checks]
    assert names == ['device', 'output folders', 'init checkpoint', 'source data', 'source labels',
                     'source sample', 'target data', 'target sample', 'val data', 'val labels', 'val sample']
    assert all(line.startswith('ok  ') for line in checks), out
    assert f'All {len(checks)} checks passed.' in out


def remove_listed_image(tree, config):
    (tree / 'GTA5' / 'images' / GTA_NAMES[1]).unlink()
    return config(), 'source data', [str(tree / 'GTA5' / 'images' / GTA_NAMES[1]), '1 of the 3 listed images']


def remove_list_file(tree, config):
    (tree / 'lists' / 'gta5_all.txt').unlink()
    return config(), 'source data', ['list file', str(tree / 'lists' / 'gta5_all.txt'), 'does not exist']


def remove_val_label(tree, config):
    label = tree / 'Cityscapes' / 'gtFine' / 'val' / CS_VAL[0].replace('leftImg8bit', 'gtFine_labelIds')
    label.unlink()
    return config(), 'val labels', [str(label), 'does not exist', '1 of the 2 labels']


def unreadable_image(tree, config):
    image = tree / 'Cityscapes' / 'leftImg8bit' / 'val' / CS_VAL[1]
    image.write_bytes(b'this is not a PNG')
    return config(), 'val sample', [str(image), 'not a readable image']


def wrong_label_ids(tree, config):
    label = tree / 'GTA5' / 'labels' / GTA_NAMES[2]
    write_png(label, np.full((32, 64), 200, np.uint8), 'L')
    return config(), 'source sample', [str(label), 'holds the id 200', 'GTA5 label ids']


def missing_checkpoint(tree, config):
    path = tree.parent / 'pretrained_models' / 'DeepLab_resnet_pretrained_imagenet.pth'
    return config(RESTORE_FROM=str(path)), 'init checkpoint', [str(path), 'pretrained_models/README.md']


def missing_dataset(tree, config):
    shutil.rmtree(tree / 'GTA5')
    return config(), 'source data', [str(tree / 'GTA5'), "docs/reproducing.md, section 'Data and weights'"]


@pytest.mark.parametrize('defect', [remove_listed_image, remove_list_file, remove_val_label, unreadable_image,
                                    wrong_label_ids, missing_checkpoint, missing_dataset])
def test_each_defect_is_one_failing_line(setup, capsys, defect):
    tree, config = setup
    cfg_path, name, words = defect(tree, config)
    status, checks, out = run_check(cfg_path, capsys)
    assert status == 1, out
    failed = [line for line in checks if line.startswith('FAIL')]
    assert len(failed) == 1, out
    assert failed[0][6:22].strip() == name
    assert all(word in failed[0] for word in words), failed[0]
    assert f'checks failed: {name}.' in out
    assert 'Traceback' not in out


def test_bad_flag_is_one_line(setup, capsys):
    _, config = setup
    assert console_main(['--cfg', config(), '--samples', '0']) == 2
    assert capsys.readouterr().err.strip() == 'error: --samples must be positive, got 0'


def truncate(path):
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def test_full_decodes_every_file_and_names_every_unreadable_one(setup, capsys):
    tree, config = setup
    image, label = tree / 'GTA5' / 'images' / GTA_NAMES[1], tree / 'GTA5' / 'labels' / GTA_NAMES[2]
    truncate(image)
    truncate(label)
    cfg_path = config()
    # a sample of one item per dataset misses both, and says how much it decoded
    status = console_main(['--cfg', cfg_path, '--samples', '1'])
    out = capsys.readouterr().out
    assert status == 0, out
    assert 'Decoded 3 of the ' in out and '(a sample); --full decodes every image and label' in out
    status = console_main(['--cfg', cfg_path, '--full'])
    captured = capsys.readouterr()
    assert status == 1, captured.out
    lines = captured.out.splitlines()
    failed = [i for i, line in enumerate(lines) if line.startswith('FAIL')]
    assert len(failed) == 1 and lines[failed[0]][6:22].strip() == 'source sample', captured.out
    assert '2 problems in the 3 items decoded' in lines[failed[0]]
    named = lines[failed[0]] + '\n' + lines[failed[0] + 1]
    assert str(image) in named and str(label) in named, captured.out
    assert 'checks failed: source sample.' in captured.out and 'Traceback' not in captured.err
    assert 'Decoded all ' in captured.out


def test_full_on_a_complete_tree_decodes_everything(setup, capsys):
    _, config = setup
    assert console_main(['--cfg', config(), '--full']) == 0
    out = capsys.readouterr().out
    assert 'All 11 checks passed.' in out and 'Decoded all ' in out and '--full decodes' not in out


@pytest.mark.parametrize('mode, selection, needs', [('best', 'entropy', None), ('best', 'miou', "TEST.SELECTION 'miou'"),
                                                    ('single', 'entropy', "TEST.MODE 'single'"),
                                                    ('single', 'miou', "TEST.MODE 'single'")])
def test_val_labels_are_checked_as_the_evaluation_needs_them(tmp_path, capsys, mode, selection, needs):
    """A val list with an item without a label: single mode (the mIoU) needs every label
    whatever TEST.SELECTION says, best mode only for 'miou'; the check fails with the
    evaluation's own error."""
    import folderdata as fd
    from advent.domain_adaptation.config import finalize_paths, load_config
    from advent.domain_adaptation.experiment import run_evaluation
    from advent.errors import UserError
    tree = fd.make_folder_tree(tmp_path / 'tree')
    fd.write_list(tree / 'target' / 'val.txt', [f'images/{fd.TARGET_VAL[0]} labels/{fd.TARGET_VAL[0]}',
                                                f'images/{fd.TARGET_VAL[1]}'])
    checkpoint = tmp_path / 'model.pth'
    torch.save(get_deeplab_v2(num_classes=5, multi_level=True, variant='DeepLabv2-tiny').state_dict(), checkpoint)
    test = {'MODE': mode, 'SELECTION': selection, 'RESTORE_FROM': [str(checkpoint)]}
    cfg_path = str(write_config(tmp_path / 'cfg.yml', fd.folder_stage1_config(tree, tmp_path / 'snap', TEST=test)))
    status, checks, out = run_check(cfg_path, capsys)
    val_labels = [line for line in checks if line[6:22].strip() == 'val labels']
    assert len(val_labels) == 1, out
    if needs is None:
        assert status == 0 and val_labels[0].startswith('ok') and '1 items without a label' in val_labels[0], out
        return
    assert status == 1 and val_labels[0].startswith('FAIL') and needs in val_labels[0], out
    assert f"{tree / 'target' / 'val.txt'}" in val_labels[0] and repr(f'images/{fd.TARGET_VAL[1]}') in val_labels[0]
    with pytest.raises(UserError) as error:
        run_evaluation(finalize_paths(load_config(cfg_path)))
    assert str(error.value) in val_labels[0]
