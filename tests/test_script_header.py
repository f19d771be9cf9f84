"""What the scripts print first: a short header, the full config only when asked; and
where stage 2 writes by default."""
from pathlib import Path

from advent.cli import test_main as eval_main  # (a test_ name would be collected)
from advent.domain_adaptation.config import PROJECT_ROOT, load_config
from tinydata import make_tree, stage1_config, write_config


def single_mode_config(tmp_path):
    """A tiny config whose evaluation stops at once: its checkpoint does not exist."""
    tree = make_tree(tmp_path / 'tree')
    missing = tmp_path / 'missing.pth'
    cfg = stage1_config(tree, tmp_path / 'snap', TEST={'MODE': 'single', 'RESTORE_FROM': [str(missing)]})
    return write_config(tmp_path / 'cfg.yml', cfg), missing


def test_header_then_one_line_error_without_the_config_dump(tmp_path, capsys):
    cfg_path, missing = single_mode_config(tmp_path)
    assert eval_main(['--cfg', str(cfg_path)]) == 2
    out, err = capsys.readouterr()
    assert 'Using config' not in out and 'DATA_DIRECTORY_SOURCE' not in out
    assert [line.split(':')[0] for line in out.splitlines()] == ['config', 'experiment', 'checkpoints', 'device']
    assert f'config: {cfg_path}' in out and f'checkpoints: {missing}' in out
    assert err.splitlines() == [f'error: TEST.RESTORE_FROM: checkpoint {missing} does not exist']


def test_print_config_adds_the_merged_config(tmp_path, capsys):
    cfg_path, _ = single_mode_config(tmp_path)
    assert eval_main(['--cfg', str(cfg_path), '--print-config']) == 2
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f'config: {cfg_path}'
    assert 'Using config:' in out and f"'DATA_DIRECTORY_TARGET': '{tmp_path / 'tree' / 'Cityscapes'}'" in out


def test_ranking_defaults_to_the_folder_the_packaged_stage3_config_reads(tmp_path, monkeypatch):
    from entropy_rank.entropy import get_arguments, stage3_ranking_folder
    folder = PROJECT_ROOT / 'experiments' / 'entropy_rank'  # SPEC 2: the default --out-dir
    monkeypatch.chdir(tmp_path)  # from any working directory: not the current one, as the original's was
    assert Path(get_arguments(['--cfg', 'x.yml']).out_dir) == folder
    assert Path(get_arguments(['--cfg', 'x.yml', '--out-dir', 'here']).out_dir) == Path('here')
    assert stage3_ranking_folder() == folder
    stage3 = load_config(PROJECT_ROOT / 'configs' / 'intrada.yml')
    assert stage3.DATA_LIST_SOURCE == str(folder / 'easy_split.txt')
    assert stage3.DATA_LIST_TARGET == str(folder / 'hard_split.txt')
