"""The bad-input catalogue: every case is refused with one line `error: ...` on stderr
that names the culprit (a path, a config key or a flag) and what was expected, a non-zero
exit status, no traceback, and no output left behind.

Most cases call the scripts' entry points in-process (advent.cli.train_main / test_main,
entropy_rank.entropy's main); the cases marked SUBPROCESS run the real scripts with
sys.executable. Input with one clear meaning (blank lines, CRLF, a trailing slash) is
read correctly: see the tests at the end.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import folderdata
import tinydata
from advent.cli import run_guarded, train_main
from advent.cli import test_main as eval_main  # (a test_ name would be collected)
from advent.model.deeplabv2 import get_deeplab_v2

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {'train': ROOT / 'advent' / 'scripts' / 'train.py', 'test': ROOT / 'advent' / 'scripts' / 'test.py',
           'entropy': ROOT / 'entropy_rank' / 'entropy.py', 'intrada-train': ROOT / 'intrada' / 'train.py'}
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """State dicts of a fresh DeepLabv2-tiny: 19 and 16 classes."""
    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    for classes in (19, 16, 5):
        torch.save(get_deeplab_v2(classes, True, 'DeepLabv2-tiny').state_dict(), folder / f'tiny{classes}.pth')
    return folder


class Ctx:
    """One case's world: a fresh tiny tree, a stage-1 snapshot folder holding model_2.pth,
    a stage-2 ranking folder (splits + pseudo-labels), and config writers."""

    def __init__(self, tmp, weights):
        self.tmp = tmp
        self.tree = tinydata.make_tree(tmp / 'tree')
        self.snap_root = tmp / 'snap'
        self.snap = self.snap_root / 'run'
        self.snap.mkdir(parents=True)
        (self.snap / 'model_2.pth').write_bytes((weights / 'tiny19.pth').read_bytes())
        self.weights = weights
        self.rank = tmp / 'rank'
        tinydata.write_list(self.rank / 'easy_split.txt', tinydata.CS_TRAIN[:2])
        tinydata.write_list(self.rank / 'hard_split.txt', tinydata.CS_TRAIN[2:])
        tinydata.make_pseudo_labels(self.rank / 'color_masks', tinydata.CS_TRAIN[:2])
        self.out = tmp / 'out'  # entropy.py --out-dir
        self.before = None

    def cfg1(self, **sections):
        sections['TEST'] = {'SNAPSHOT_MAXITER': 2, **sections.get('TEST', {})}
        return tinydata.stage1_config(self.tree, self.snap_root, EXP_NAME='run', **sections)

    def write(self, cfg, name='cfg.yml'):
        return str(tinydata.write_config(self.tmp / name, cfg))

    def stage1(self, **sections):
        return self.write(self.cfg1(**sections))

    def stage3(self, **sections):
        cfg = self.cfg1(**sections)
        cfg.update(SOURCE='CityscapesEasy', TARGET='CityscapesHard',
                   DATA_DIRECTORY_SOURCE=str(self.tree / 'Cityscapes'),
                   DATA_LIST_SOURCE=str(self.rank / 'easy_split.txt'),
                   DATA_LIST_TARGET=str(self.rank / 'hard_split.txt'), EXP_NAME='stage3')
        for key, value in sections.items():
            if key not in ('TRAIN', 'TEST'):
                cfg[key] = value
        return self.write(cfg)

    def entropy(self, *extra, cfg=None):
        return ['--cfg', cfg or self.stage1(), '--best_iter', '2', '--out-dir', str(self.out), *extra]

    def snapshot(self):
        """Every file under tmp with its size and mtime (to prove nothing was written)."""
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in self.tmp.rglob('*')
                if not p.name.endswith('.yml')}


def cs_image(ctx, split, k):
    names = tinydata.CS_TRAIN if split == 'train' else tinydata.CS_VAL
    return ctx.tree / 'Cityscapes' / 'leftImg8bit' / split / names[k]


def cs_label(ctx, k):
    return ctx.tree / 'Cityscapes' / 'gtFine' / 'val' / tinydata.CS_VAL[k].replace('leftImg8bit', 'gtFine_labelIds')


def truncate(path):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:len(data) // 2])


# Each case: ctx -> (script, argv, needles the error line must contain).
# script: 'train' | 'test' | 'entropy' | 'intrada-train' | 'pipeline' (in-process only).
CASES = {}
SUBPROCESS = {'unknown_top_level_key', 'truncated_val_image', 'lambda1_above_one', 'pseudo_label_missing_file',
              'bad_boolean_flag'}
DURING_RUN = set()  # failures after a progress bar has started (the error still ends stderr)


def case(name, during_run=False):
    def register(fn):
        CASES[name] = fn
        if during_run:
            DURING_RUN.add(name)
        return fn
    return register


# --- configuration -------------------------------------------------------------------

@case('unknown_top_level_key')
def _(ctx):
    cfg = ctx.cfg1()
    cfg['NUM_CLASS'] = 19
    return 'train', ['--cfg', ctx.write(cfg)], ['NUM_CLASS', 'unknown', '(did you mean NUM_CLASSES?)']


@case('unknown_nested_key')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(TRAIN={'LEARNING_RAT': 0.1})], ['TRAIN.LEARNING_RAT',
                                                                         'did you mean TRAIN.LEARNING_RATE']


@case('wrong_type_number')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(TRAIN={'LEARNING_RATE': 'fast'})], ['TRAIN.LEARNING_RATE', 'number']


@case('wrong_type_integer')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(NUM_CLASSES=19.5)], ['NUM_CLASSES', 'integer']


@case('wrong_type_boolean')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(TRAIN={'MULTI_LEVEL': 'maybe'})], ['TRAIN.MULTI_LEVEL', 'true or false']


@case('wrong_type_list')
def _(ctx):
    return 'test', ['--cfg', ctx.stage1(TEST={'MODEL': 'DeepLabv2-tiny'})], ['TEST.MODEL', 'list']


@case('size_not_positive')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(TRAIN={'INPUT_SIZE_SOURCE': [0, 32]})], \
        ['TRAIN.INPUT_SIZE_SOURCE', 'positive']


@case('size_not_a_pair')
def _(ctx):
    return 'test', ['--cfg', ctx.stage1(TEST={'OUTPUT_SIZE_TARGET': [64]})], ['TEST.OUTPUT_SIZE_TARGET', 'width']


@case('batch_size_zero')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(TRAIN={'BATCH_SIZE_SOURCE': 0})], ['TRAIN.BATCH_SIZE_SOURCE', 'positive']


@case('negative_workers')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(NUM_WORKERS=-1)], ['NUM_WORKERS', '>= 0']


@case('unknown_method')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(TRAIN={'DA_METHOD': 'AdvEntt'})], ['TRAIN.DA_METHOD', 'AdvEntt', 'MinEnt']


@case('unknown_model')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(TRAIN={'MODEL': 'ResNet50'})], ['ResNet50', 'DeepLabv2']


@case('missing_config_file')
def _(ctx):
    return 'train', ['--cfg', str(ctx.tmp / 'nope.yml')], ['nope.yml', 'does not exist']


@case('config_named_like_a_packaged_one')
def _(ctx):
    # the original's `cd intrada; python test.py --cfg intrada_trained.yml`: the path given is the path used
    return 'test', ['--cfg', str(ctx.tmp / 'intrada_trained.yml')], [
        str(ctx.tmp / 'intrada_trained.yml'), 'does not exist', 'did you mean ', 'configs/intrada_trained.yml?']


@case('yaml_syntax_error')
def _(ctx):
    path = ctx.tmp / 'broken.yml'
    path.write_text('TRAIN:\n  EARLY_STOP: [1,\n')
    return 'train', ['--cfg', str(path)], [str(path), 'YAML']


@case('yaml_not_a_mapping')
def _(ctx):
    path = ctx.tmp / 'list.yml'
    path.write_text('- SOURCE\n- GTA\n')
    return 'test', ['--cfg', str(path)], [str(path), 'mapping']


@case('exp_suffix_leaves_the_snapshot_root')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(), '--exp-suffix', '../../escape'], ['EXP_NAME', '../../escape']


@case('bad_boolean_flag')
def _(ctx):
    return 'entropy', ctx.entropy('--normalize', 'maybe'), ['--normalize', 'maybe', 'boolean']


@case('unknown_flag')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(), '--learning-rate', '0.1'], ['--learning-rate', 'unrecognized']


@case('viz_rate_not_positive')
def _(ctx):
    return 'train', ['--cfg', ctx.stage1(), '--tensorboard', '--viz-every-iter', '0'], ['--viz-every-iter', 'positive']


# --- datasets ------------------------------------------------------------------------

@case('missing_dataset_folder')
def _(ctx):
    missing = ctx.tmp / 'GTA5-not-here'
    return 'train', ['--cfg', ctx.stage1(DATA_DIRECTORY_SOURCE=str(missing))], [str(missing), 'does not exist']


@case('empty_dataset_folder')
def _(ctx):
    empty = ctx.tmp / 'empty'
    empty.mkdir()
    return 'train', ['--cfg', ctx.stage1(DATA_DIRECTORY_TARGET=str(empty))], [str(empty), 'empty', 'leftImg8bit']


@case('missing_list_file')
def _(ctx):
    path = ctx.tmp / 'lists' / 'none.txt'
    return 'train', ['--cfg', ctx.stage1(DATA_LIST_SOURCE=str(path))], [str(path), 'does not exist']


@case('empty_list_file')
def _(ctx):
    path = tinydata.write_list(ctx.tmp / 'blank.txt', ['', '  ', ''])
    return 'train', ['--cfg', ctx.stage1(DATA_LIST_TARGET=str(path))], [str(path), 'no names']


@case('duplicate_names_in_list')
def _(ctx):
    path = tinydata.write_list(ctx.tmp / 'dup.txt', tinydata.GTA_NAMES + tinydata.GTA_NAMES[:1])
    return 'train', ['--cfg', ctx.stage1(DATA_LIST_SOURCE=str(path))], [f'{path}:4', 'duplicate', '00001.png']


@case('list_name_escapes_the_root')
def _(ctx):
    path = tinydata.write_list(ctx.tmp / 'escape.txt', ['00001.png', '../../../etc/passwd'])
    return 'train', ['--cfg', ctx.stage1(DATA_LIST_SOURCE=str(path))], [f'{path}:2', '../../../etc/passwd']


@case('list_name_is_absolute')
def _(ctx):
    path = tinydata.write_list(ctx.tmp / 'abs.txt', [str(cs_image(ctx, 'val', 0))])
    return 'test', ['--cfg', ctx.stage1(TEST={'DATA_LIST_TARGET': str(path)})], [f'{path}:1', 'relative']


@case('list_file_not_text')
def _(ctx):
    path = ctx.tmp / 'binary.txt'
    path.write_bytes(b'\xff\xfe\x00\x81 not utf-8')
    return 'train', ['--cfg', ctx.stage1(DATA_LIST_SOURCE=str(path))], [str(path), 'text']


@case('listed_image_missing')
def _(ctx):
    image = cs_image(ctx, 'train', 2)
    image.unlink()
    return 'train', ['--cfg', ctx.stage1()], [str(image), 'does not exist']


@case('unreadable_image', during_run=True)
def _(ctx):
    image = ctx.tree / 'GTA5' / 'images' / tinydata.GTA_NAMES[1]
    image.write_bytes(b'this is not a png')
    return 'train', ['--cfg', ctx.stage1(TRAIN={'DA_METHOD': 'SourceOnly'})], [str(image), 'not a readable image']


@case('truncated_val_image', during_run=True)
def _(ctx):
    image = cs_image(ctx, 'val', 1)
    truncate(image)
    return 'test', ['--cfg', ctx.stage1()], [str(image), 'not a readable image']


@case('label_in_rgb_mode', during_run=True)
def _(ctx):
    label = ctx.tree / 'GTA5' / 'labels' / tinydata.GTA_NAMES[0]
    Image.open(label).convert('RGB').save(label)
    return 'train', ['--cfg', ctx.stage1(TRAIN={'DA_METHOD': 'SourceOnly'})], [str(label), 'mode RGB']


@case('val_label_of_another_size', during_run=True)
def _(ctx):
    label = cs_label(ctx, 0)
    Image.open(label).resize((32, 32), Image.NEAREST).save(label)
    return 'test', ['--cfg', ctx.stage1()], [str(label), '32x32', '64x32', 'same size']


@case('missing_info_file')
def _(ctx):
    info = ctx.tmp / 'info.json'
    return 'test', ['--cfg', ctx.stage1(TEST={'INFO_TARGET': str(info)})], [str(info), 'does not exist']


# --- checkpoints and evaluation --------------------------------------------------------

@case('restore_from_missing')
def _(ctx):
    path = ctx.tmp / 'init.pth'
    return 'train', ['--cfg', ctx.stage1(TRAIN={'RESTORE_FROM': str(path)})], [str(path), 'does not exist']


@case('checkpoint_of_another_class_count')
def _(ctx):
    path = ctx.weights / 'tiny16.pth'
    return 'train', ['--cfg', ctx.stage1(TRAIN={'RESTORE_FROM': str(path)})], \
        [str(path), "'layer5.conv2d_list.0.weight'", '(16, 256, 3, 3)', '(19, 256, 3, 3)']


@case('truncated_checkpoint')
def _(ctx):
    truncate(ctx.snap / 'model_2.pth')
    return 'test', ['--cfg', ctx.stage1()], [str(ctx.snap / 'model_2.pth'), 'cannot load']


@case('single_mode_without_checkpoint')
def _(ctx):
    return 'test', ['--cfg', ctx.stage1(TEST={'MODE': 'single'})], ['TEST.RESTORE_FROM']


@case('best_mode_without_snapshot_folder')
def _(ctx):
    folder = ctx.tmp / 'no-snapshots'
    return 'test', ['--cfg', ctx.stage1(TEST={'SNAPSHOT_DIR': [str(folder)]})], [str(folder), 'does not exist']


@case('corrupt_result_cache')
def _(ctx):
    (ctx.snap / 'all_res.json').write_text('{"results": {"2": [0.5, ')
    return 'test', ['--cfg', ctx.stage1()], [str(ctx.snap / 'all_res.json'), 'delete it']


@case('corrupt_training_state')
def _(ctx):
    (ctx.snap / 'train_state_2.pth').write_bytes(b'\x80\x02 garbage')
    return 'train', ['--cfg', ctx.stage1(), '--resume'], [str(ctx.snap / 'train_state_2.pth')]


# --- stage 2 -------------------------------------------------------------------------

@case('lambda1_above_one')
def _(ctx):
    return 'entropy', ctx.entropy('--lambda1', '1.5'), ['--lambda1', '[0, 1]', '1.5']


@case('lambda1_negative')
def _(ctx):
    return 'entropy', ctx.entropy('--lambda1', '-0.1'), ['--lambda1', '[0, 1]']


@case('best_iter_without_snapshot')
def _(ctx):
    return 'entropy', ['--cfg', ctx.stage1(), '--best_iter', '4', '--out-dir', str(ctx.out)], \
        ['--best_iter 4', str(ctx.snap / 'model_4.pth')]


@case('no_best_iter_and_no_evaluation')
def _(ctx):
    return 'entropy', ['--cfg', ctx.stage1(), '--out-dir', str(ctx.out)], ['--best_iter', 'all_res.json']


@case('out_dir_not_writable')
def _(ctx):
    blocker = ctx.tmp / 'a-file'
    blocker.write_text('not a folder')
    ctx.out = blocker / 'ranking'
    return 'entropy', ctx.entropy(), ['--out-dir', str(blocker), 'not a folder']


@case('entropy_with_an_empty_list')
def _(ctx):
    path = tinydata.write_list(ctx.tmp / 'none.txt', [])
    return 'entropy', ctx.entropy(cfg=ctx.stage1(DATA_LIST_TARGET=str(path))), [str(path), 'no names']


@case('entropy_fails_half_way', during_run=True)
def _(ctx):
    image = cs_image(ctx, 'train', 2)  # the third of four images
    truncate(image)
    return 'entropy', ctx.entropy(), [str(image), 'not a readable image']


# --- stage 3 -------------------------------------------------------------------------

@case('empty_easy_split')
def _(ctx):
    tinydata.write_list(ctx.rank / 'easy_split.txt', [])
    return 'intrada-train', ['--cfg', ctx.stage3()], [str(ctx.rank / 'easy_split.txt'), 'no names']


@case('pseudo_label_folder_missing')
def _(ctx):
    folder = ctx.tmp / 'masks-not-here'
    return 'intrada-train', ['--cfg', ctx.stage3(DATA_DIRECTORY_PSEUDO_LABELS=str(folder))], \
        [str(folder), 'does not exist']


@case('pseudo_label_missing_file')
def _(ctx):
    missing = ctx.rank / 'color_masks' / tinydata.CS_TRAIN[1].split('/')[-1]
    missing.unlink()
    return 'intrada-train', ['--cfg', ctx.stage3()], [str(missing), 'does not exist']


@case('pseudo_label_in_colour', during_run=True)
def _(ctx):
    label = ctx.rank / 'color_masks' / tinydata.CS_TRAIN[0].split('/')[-1]
    Image.fromarray(np.zeros((tinydata.H, tinydata.W, 3), np.uint8)).save(label)
    return 'intrada-train', ['--cfg', ctx.stage3(TRAIN={'DA_METHOD': 'SourceOnly'})], \
        [str(label), 'mode RGB', 'single-channel']


@case('pseudo_label_with_an_unknown_class', during_run=True)
def _(ctx):
    label = ctx.rank / 'color_masks' / tinydata.CS_TRAIN[1].split('/')[-1]
    Image.fromarray(np.full((tinydata.H, tinydata.W), 77, np.uint8)).save(label)
    return 'intrada-train', ['--cfg', ctx.stage3(TRAIN={'DA_METHOD': 'SourceOnly'})], [str(label), '77', '0..18']


# --- folder datasets (SPEC 11) -------------------------------------------------------

def folder_tree(ctx):
    """A 5-class folder tree in the case's world, and a snapshot folder with a 5-class model_2.pth."""
    tree = folderdata.make_folder_tree(ctx.tmp / 'ftree')
    (ctx.snap_root / 'folder').mkdir()
    (ctx.snap_root / 'folder' / 'model_2.pth').write_bytes((ctx.weights / 'tiny5.pth').read_bytes())
    return tree


def folder_config(ctx, tree, **sections):
    cfg = folderdata.folder_stage1_config(tree, ctx.snap_root, EXP_NAME='folder', **sections)
    cfg['TEST'].update(SNAPSHOT_MAXITER=2)
    return ctx.write(cfg)


def edit_lines(path, edit):
    lines = Path(path).read_text().splitlines()
    Path(path).write_text(''.join(f'{line}\n' for line in edit(lines)))


@case('folder_list_line_with_three_fields')
def _(ctx):
    tree = folder_tree(ctx)
    edit_lines(tree / 'source' / 'all.txt', lambda lines: [lines[0], lines[1] + ' extra', *lines[2:]])
    return 'train', ['--cfg', folder_config(ctx, tree)], [f'{tree / "source" / "all.txt"}:2', '3 fields', 'IMAGE LABEL']


@case('folder_duplicate_image')
def _(ctx):
    tree = folder_tree(ctx)
    edit_lines(tree / 'source' / 'all.txt', lambda lines: lines + [lines[0].split()[0] + ' ' + lines[1].split()[1]])
    return 'train', ['--cfg', folder_config(ctx, tree)], [f'{tree / "source" / "all.txt"}:4', 'duplicate',
                                                          'images/a/scene.png']


@case('folder_missing_label')
def _(ctx):
    tree = folder_tree(ctx)
    label = tree / 'source' / 'labels' / folderdata.SOURCE_NAMES[1]
    label.unlink()
    return 'train', ['--cfg', folder_config(ctx, tree)], [str(label), 'does not exist']


@case('folder_label_of_another_size', during_run=True)
def _(ctx):
    tree = folder_tree(ctx)
    label = tree / 'target' / 'labels' / folderdata.TARGET_VAL[1]
    Image.open(label).resize((32, 16), Image.NEAREST).save(label)
    return 'test', ['--cfg', folder_config(ctx, tree)], [str(label), '32x16', 'same size']


@case('folder_label_value_outside_the_classes', during_run=True)
def _(ctx):
    tree = folder_tree(ctx)
    label = tree / 'target' / 'labels' / folderdata.TARGET_VAL[0]
    folderdata.write_label(label, np.full((folderdata.H, folderdata.W), 7, np.uint8))
    return 'test', ['--cfg', folder_config(ctx, tree)], [str(label), 'value 7', '0..4']


@case('folder_val_item_without_label')
def _(ctx):
    tree = folder_tree(ctx)
    edit_lines(tree / 'target' / 'val.txt', lambda lines: [lines[0], lines[1].split()[0]])
    return 'test', ['--cfg', folder_config(ctx, tree)], [str(tree / 'target' / 'val.txt'), 'no label',
                                                         folderdata.TARGET_VAL[1]]


@case('folder_unlabelled_val_list_with_miou_in_the_pipeline')
def _(ctx):
    """No target label at all and the default TEST.SELECTION: refused before stage 1 trains."""
    tree = folder_tree(ctx)
    edit_lines(tree / 'target' / 'val.txt', lambda lines: [line.split()[0] for line in lines])
    stage3 = folderdata.folder_stage3_config(tree, ctx.snap_root, ctx.rank)
    stage3['TEST'].update(SELECTION='im')
    return 'pipeline', ['--stage1-cfg', folder_config(ctx, tree), '--stage3-cfg', ctx.write(stage3, 's3.yml')], \
        ["TEST.SELECTION 'miou'", str(tree / 'target' / 'val.txt'), folderdata.TARGET_VAL[0], "'im'"]


@case('folder_images_sharing_a_pseudo_label')
def _(ctx):
    tree = folder_tree(ctx)
    image = tree / 'target' / 'images' / folderdata.TARGET_TRAIN[0]
    Image.open(image).save(image.with_suffix('.jpg'))
    edit_lines(tree / 'target' / 'train.txt', lambda lines: lines + [lines[0].replace('.png', '.jpg')])
    return 'entropy', ctx.entropy(cfg=folder_config(ctx, tree)), [str(tree / 'target' / 'train.txt'),
                                                                   'share the pseudo-label']


@case('folder_class_file_without_label')
def _(ctx):
    tree = folder_tree(ctx)
    info = folderdata.class_file(tree / 'source' / 'info.json', raw=True, label=None)
    return 'train', ['--cfg', folder_config(ctx, tree)], [str(info), "'label'"]


@case('folder_class_file_without_palette')
def _(ctx):
    tree = folder_tree(ctx)
    info = folderdata.class_file(tree / 'target' / 'info.json', palette=None)
    return 'train', ['--cfg', folder_config(ctx, tree)], [str(info), "'palette'"]


@case('folder_palette_of_the_wrong_length')
def _(ctx):
    tree = folder_tree(ctx)
    info = folderdata.class_file(tree / 'source' / 'info.json', raw=True, palette=folderdata.PALETTE[:4])
    return 'train', ['--cfg', folder_config(ctx, tree)], [str(info), 'palette', '4 colours', '5 classes']


@case('folder_classes_differ_between_source_and_target')
def _(ctx):
    tree = folder_tree(ctx)
    target_info = folderdata.class_file(tree / 'target' / 'info.json', label=folderdata.CLASSES[::-1])
    return 'train', ['--cfg', folder_config(ctx, tree)], [str(tree / 'source' / 'info.json'), str(target_info),
                                                          'different classes']


@case('folder_num_classes_disagrees_with_the_class_file')
def _(ctx):
    tree = folder_tree(ctx)
    return 'train', ['--cfg', folder_config(ctx, tree, NUM_CLASSES=6)], [str(tree / 'source' / 'info.json'),
                                                                         '5 classes', 'NUM_CLASSES 6']


# -------------------------------------------------------------------------------------

def run_in_process(script, argv, capsys):
    try:
        if script in ('train', 'intrada-train'):
            code = train_main(argv)
        elif script == 'test':
            code = eval_main(argv)
        elif script == 'pipeline':
            from intrada.pipeline import main as pipeline_main
            code = pipeline_main(argv)
        else:
            from entropy_rank.entropy import get_arguments, main
            code = run_guarded(main, get_arguments(argv))
    except SystemExit as e:  # argparse
        code = e.code
    captured = capsys.readouterr()
    return code, captured.err


def run_subprocess(script, argv):
    proc = subprocess.run([sys.executable, str(SCRIPTS[script]), *argv], env=ENV, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stderr


def error_line(err, during_run):
    """The one `error:` line, checked: nothing else on stderr (or only progress bars before it)."""
    assert 'Traceback' not in err, err
    lines = [line for line in err.replace('\r', '\n').splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith('error:')]
    assert len(errors) == 1, err
    assert lines[-1] == errors[0], err
    if not during_run:
        assert len(lines) == 1, err
    return errors[0]


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize('name', sorted(CASES))
def test_bad_input_is_refused(name, tmp_path, weights, capsys):
    ctx = Ctx(tmp_path, weights)
    script, argv, needles = CASES[name](ctx)
    before = ctx.snapshot()
    if name in SUBPROCESS:
        code, err = run_subprocess(script, argv)
    else:
        code, err = run_in_process(script, argv, capsys)
    assert code not in (0, None), err
    line = error_line(err, name in DURING_RUN)
    for needle in needles:
        assert needle in line, f'{needle!r} not in {line!r}'
    # no output: nothing new or changed in the case's world, except a training run's
    # snapshot folder with its train_cfg.yml when the failure came during the run
    after = ctx.snapshot()
    changed = {p for p in after if before.get(p) != after[p]} | (set(before) - set(after))
    if name in DURING_RUN and script.endswith('train'):
        changed = {p for p in changed if Path(p).name != 'train_cfg.yml' and not Path(p).is_dir()}
    assert not changed, changed
    assert not ctx.out.exists()


def test_debug_flag_shows_the_traceback(tmp_path, weights, capsys):
    ctx = Ctx(tmp_path, weights)
    code, err = run_in_process('train', ['--cfg', ctx.stage1(NUM_WORKERS=-1), '--debug'], capsys)
    assert code == 2 and 'Traceback' in err and err.rstrip().splitlines()[-1].startswith('error: ')


# --- input with one clear meaning is read correctly -----------------------------------

def test_blank_lines_crlf_and_trailing_slash_are_read(tmp_path, weights, capsys):
    ctx = Ctx(tmp_path, weights)
    val_list = ctx.tmp / 'val_crlf.txt'
    val_list.write_bytes(b'\r\n' + b'\r\n\r\n'.join(n.encode() for n in tinydata.CS_VAL) + b'\r\n\r\n')
    cfg = ctx.stage1(DATA_DIRECTORY_TARGET=str(ctx.tree / 'Cityscapes') + '/',
                     TEST={'DATA_LIST_TARGET': str(val_list), 'SNAPSHOT_DIR': [str(ctx.snap) + '/']})
    assert eval_main(['--cfg', cfg]) == 0, capsys.readouterr().err
    assert 'Best iteration: 2' in capsys.readouterr().out

    from advent.dataset.base_dataset import read_list_file
    assert read_list_file(val_list) == tinydata.CS_VAL


def test_gta5_label_of_another_size_is_resized_not_refused(tmp_path):
    """GTA5 holds a few real image/label size mismatches: they are resized, as the original did."""
    from advent.dataset.gta5 import GTA5DataSet
    tree = tinydata.make_tree(tmp_path / 'tree')
    label = tree / 'GTA5' / 'labels' / tinydata.GTA_NAMES[0]
    Image.open(label).resize((60, 30), Image.NEAREST).save(label)
    dataset = GTA5DataSet(tree / 'GTA5', tree / 'lists' / 'gta5_all.txt', crop_size=(tinydata.W, tinydata.H))
    assert dataset[0][1].shape == (tinydata.H, tinydata.W)


def test_pseudo_labels_at_another_scale_are_accepted(tmp_path):
    """Stage 2 writes pseudo-labels at the training input size (1024x512 for 2048x1024 images)."""
    from advent.dataset.cityscapes import CityscapesPseudoDataSet
    tree = tinydata.make_tree(tmp_path / 'tree')
    masks = tinydata.make_pseudo_labels(tmp_path / 'masks', size=(tinydata.W // 2, tinydata.H // 2))
    dataset = CityscapesPseudoDataSet(tree / 'Cityscapes', tree / 'lists' / 'cs_train.txt', masks,
                                      crop_size=(tinydata.W, tinydata.H))
    assert dataset[0][1].shape == (tinydata.H, tinydata.W)
