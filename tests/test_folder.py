"""Folder datasets (SPEC 11): your own source and target, labelled or not, any class count,
through the three stages. Tiny 5-class trees (tests/folderdata.py), DeepLabv2-tiny on the CPU."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import folderdata as fd
from advent.dataset import base_dataset
from advent.dataset.folder import FolderDataSet
from advent.domain_adaptation.config import finalize_paths, load_config
from stage_utils import IMG_MEAN
from tinydata import write_config

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def folder_dataset(root, list_name, info, **kwargs):
    return FolderDataSet(root, Path(root) / list_name, crop_size=(fd.W, fd.H), info_path=info, **kwargs)


@pytest.mark.parametrize('raw, bits', [(True, 8), (True, 16), (False, 8), (False, 16)],
                         ids=['label2train-8bit', 'label2train-16bit', 'train-ids-8bit', 'train-ids-16bit'])
def test_labels_load_as_train_ids(tmp_path, raw, bits):
    root = tmp_path / 'data'
    fd.write_list(root / 'all.txt', fd.write_split(root, fd.SOURCE_NAMES, 100, True, raw, bits))
    info = fd.class_file(root / 'info.json', raw, bits)
    dataset = folder_dataset(root, 'all.txt', info, num_classes=5)
    assert dataset.labelled and len(dataset) == 3
    if bits == 16:
        assert Image.open(root / 'labels' / fd.SOURCE_NAMES[0]).mode in ('I', 'I;16')
    for k in range(3):
        image, label, shape, name = dataset[k]
        assert name == f'images/{fd.SOURCE_NAMES[k]}'
        assert image.shape == (3, fd.H, fd.W) and tuple(shape) == (3, fd.H, fd.W)
        np.testing.assert_array_equal(label, fd.scene(100 + k)[1])  # 255 stays ignore (raw: unmapped 0)


def test_unlabelled_items_open_no_label_file(tmp_path, monkeypatch):
    root = tmp_path / 'data'
    lines = fd.write_split(root, fd.SOURCE_NAMES[:2], 100, True) + fd.write_split(root, ['d/u.png'], 150, False)
    fd.write_list(root / 'mixed.txt', lines)
    fd.write_list(root / 'none.txt', [line.split()[0] for line in lines])
    info = fd.class_file(root / 'info.json')
    opened = []
    real_open = base_dataset.Image.open
    monkeypatch.setattr(base_dataset.Image, 'open', lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))

    mixed = folder_dataset(root, 'mixed.txt', info, labels_size=(8, 4))
    assert not mixed.labelled and mixed.first_unlabelled() == 'images/d/u.png'
    label = mixed[2][1]
    assert label.shape == (4, 8) and (label == 255).all()
    assert opened == [str(root / 'images' / 'd' / 'u.png')]
    assert not (mixed[0][1] == 255).all()

    opened.clear()
    unlabelled = folder_dataset(root, 'none.txt', info)
    assert not unlabelled.labelled
    assert all((unlabelled[k][1] == 255).all() for k in range(3))
    assert not [f for f in opened if '/labels/' in f]

    # a target training set: labels listed but never opened
    opened.clear()
    target = folder_dataset(root, 'mixed.txt', info, load_labels=False)
    assert (target[0][1] == 255).all() and not [f for f in opened if '/labels/' in f]


def test_canonical_datasets_are_labelled(tmp_path):
    import tinydata
    from advent.dataset.cityscapes import CityscapesDataSet
    from advent.dataset.gta5 import GTA5DataSet
    tree = tinydata.make_tree(tmp_path / 'tree')
    assert GTA5DataSet(tree / 'GTA5', tree / 'lists' / 'gta5_all.txt').labelled is True
    assert CityscapesDataSet(tree / 'Cityscapes', tree / 'lists' / 'cs_train.txt', set='train',
                             load_labels=False).labelled is True


def test_any_image_size_with_a_label_of_its_size(tmp_path):
    root = tmp_path / 'data'
    image, label = fd.scene(5, width=80, height=40)
    fd.write_image(root / 'x.jpg', image)
    fd.write_label(root / 'x_label.png', label)
    fd.write_list(root / 'l.txt', ['x.jpg x_label.png'])
    dataset = folder_dataset(root, 'l.txt', fd.class_file(root / 'info.json'))
    assert dataset[0][1].shape == (fd.H, fd.W)


# ------------------------------------------------------------ the three stages, end to end

@pytest.fixture(scope='module')
def pipeline(tmp_path_factory):
    """A 5-class Folder -> Folder run through intrada.pipeline (stage 1, best-mode evaluation,
    ranking without normalisation, stage 3), then a ranking with the class file's rare classes."""
    from entropy_rank.ranking import run_ranking
    from intrada.pipeline import load_stage_config, run_pipeline
    tmp = tmp_path_factory.mktemp('folder_pipeline')
    tree = fd.make_folder_tree(tmp / 'tree')
    # rare: 3 classes, one of which (0) the tiny model predicts, and not Cityscapes' rare ones
    fd.class_file(tree / 'target' / 'info.json', rare=[0, 2, 4])
    s1 = write_config(tmp / 's1.yml', fd.folder_stage1_config(tree, tmp / 'snap'))
    s3 = write_config(tmp / 's3.yml', fd.folder_stage3_config(tree, tmp / 'snap', tmp / 'rank'))
    summary = run_pipeline(str(s1), str(s3), normalize=False, lambda1=0.5)
    stage1 = load_stage_config(s1)
    best_iter = int(summary[1][3].split()[2].rstrip(','))
    run_ranking(stage1, best_iter, True, 0.5, tmp / 'rank_rare')
    return SimpleNamespace(tmp=tmp, tree=tree, summary=summary, best_iter=best_iter)


def test_the_pipeline_runs_every_stage_on_folders(pipeline):
    assert [status for _, status, *_ in pipeline.summary] == ['ran'] * 5
    for name in ('folder1', 'folder3'):
        snap = pipeline.tmp / 'snap' / name
        assert (snap / 'model_4.pth').is_file()
        cache = json.loads((snap / 'all_res.json').read_text())
        assert cache['class_names'] == fd.CLASSES and len(cache['results']['2']) == 5
    rank = pipeline.tmp / 'rank'
    easy, hard = ((rank / f).read_text().split() for f in ('easy_split.txt', 'hard_split.txt'))
    assert sorted(easy + hard) == sorted(f'images/{n}' for n in fd.TARGET_TRAIN) and len(easy) == 2


def test_pseudo_labels_keep_the_image_path(pipeline):
    """scene.png in two folders: two pseudo-labels, each the prediction of its own image."""
    import torch

    import torch.nn.functional as F

    from advent.domain_adaptation.eval_UDA import load_for_evaluation
    from advent.model.deeplabv2 import get_deeplab_v2
    masks = pipeline.tmp / 'rank' / 'color_masks'
    model = get_deeplab_v2(5, True, 'DeepLabv2-tiny')
    load_for_evaluation(model, pipeline.tmp / 'snap' / 'folder1' / f'model_{pipeline.best_iter}.pth',
                        torch.device('cpu'))
    target = folder_dataset(pipeline.tree / 'target', 'train.txt', pipeline.tree / 'target' / 'info.json',
                            mean=IMG_MEAN)
    predictions = {}
    with torch.no_grad():  # as SPEC 9: main head, bilinear (align_corners) to the input size, argmax
        for image, _, _, name in (target[k] for k in range(len(target))):
            main = F.interpolate(model(torch.from_numpy(image)[None])[1], size=(fd.H, fd.W), mode='bilinear',
                                 align_corners=True)
            predictions[name] = main[0].argmax(0).numpy()
    for folder in ('north', 'south'):
        mask = np.asarray(Image.open(masks / 'images' / folder / 'scene.png'))
        np.testing.assert_array_equal(mask, predictions[f'images/{folder}/scene.png'])
        colour = np.asarray(Image.open(masks / 'images' / folder / 'scene_color.png').convert('RGB'))
        np.testing.assert_array_equal(colour, np.array(fd.PALETTE, np.uint8)[mask])  # the class file's palette
    assert not np.array_equal(*[predictions[f'images/{f}/scene.png'] for f in ('north', 'south')])


def test_the_ranking_normalises_with_the_class_files_rare_classes(pipeline):
    rare = [0, 2, 4]
    plain = json.loads((pipeline.tmp / 'rank' / 'entropy_ranking.json').read_text())
    normalised = json.loads((pipeline.tmp / 'rank_rare' / 'entropy_ranking.json').read_text())
    assert {r['normalizer'] for r in plain['ranking']} == {1}
    assert len(normalised['ranking']) == len(plain['ranking']) > 0
    factors = []
    for record in normalised['ranking']:
        mask = np.asarray(Image.open(pipeline.tmp / 'rank_rare' / 'color_masks' / record['name']))
        k = len(set(np.unique(mask).tolist()) & set(rare))
        assert record['normalizer'] == pytest.approx((3 - k) / 3 + 0.5)
        assert record['score'] == pytest.approx(record['mean_entropy'] * record['normalizer'])
        factors.append(record['normalizer'])
    assert set(factors) != {1}  # the normalisation changes something
    scores = [r['score'] for r in normalised['ranking']]
    assert scores == sorted(scores)


def test_the_stage3_source_reads_the_pseudo_labels(pipeline):
    from advent.domain_adaptation.experiment import build_source_dataset, build_target_dataset
    cfg = finalize_paths(load_config(pipeline.tmp / 's3.yml'))
    source, target = build_source_dataset(cfg), build_target_dataset(cfg)
    easy = (pipeline.tmp / 'rank' / 'easy_split.txt').read_text().split()
    assert source.img_ids[:len(easy)] == easy and source.labelled
    mask = np.asarray(Image.open(pipeline.tmp / 'rank' / 'color_masks' / Path(easy[0])))
    np.testing.assert_array_equal(source[0][1], mask)
    assert (target[0][1] == 255).all()


def test_check_understands_folder_datasets(pipeline, capsys):
    from intrada.check import run_checks
    cfg = finalize_paths(load_config(pipeline.tmp / 's1.yml'))
    report = run_checks(cfg, samples=3)
    out = capsys.readouterr().out
    assert not report.failed(), out
    assert 'FolderDataSet: the 3 images listed' in out and 'val labels' in out


def test_check_reports_a_label_value_outside_the_classes(tmp_path, capsys):
    from intrada.check import run_checks
    tree = fd.make_folder_tree(tmp_path / 'tree')
    bad = tree / 'target' / 'labels' / fd.TARGET_VAL[0]
    fd.write_label(bad, np.full((fd.H, fd.W), 9, np.uint8))
    cfg = finalize_paths(load_config(write_config(tmp_path / 's1.yml', fd.folder_stage1_config(tree, tmp_path))))
    report = run_checks(cfg, samples=2)
    out = capsys.readouterr().out
    assert report.failed() == ['val sample'] and str(bad) in out and 'holds the id 9' in out


def test_predict_uses_the_class_files_palette(pipeline, tmp_path):
    from intrada.predict import main
    out = tmp_path / 'pred'
    checkpoint = pipeline.tmp / 'snap' / 'folder1' / 'model_2.pth'
    image = pipeline.tree / 'target' / 'images' / fd.TARGET_TRAIN[0]
    assert main([str(image), '--cfg', str(pipeline.tmp / 's1.yml'), '--checkpoint', str(checkpoint),
                 '--out-dir', str(out), '--device', 'cpu']) == 0
    ids = np.asarray(Image.open(next(out.rglob('*_trainIds.png'))))
    colour = np.asarray(Image.open(next(out.rglob('*_color.png'))).convert('RGB'))
    np.testing.assert_array_equal(colour, np.array(fd.PALETTE, np.uint8)[ids])


def test_a_canonical_source_needs_the_same_classes_on_the_folder_side(tmp_path):
    from advent.dataset.base_dataset import DatasetError
    from advent.domain_adaptation.experiment import check_class_files
    tree = fd.make_folder_tree(tmp_path / 'tree')
    cfg = finalize_paths(load_config(write_config(tmp_path / 's1.yml', fd.folder_stage1_config(tree, tmp_path))))
    cfg.SOURCE = 'GTA'
    with pytest.raises(DatasetError, match=r'cityscapes_list/info.json \(SOURCE GTA\) and .*target/info.json'):
        check_class_files(cfg)
    cfg.SOURCE = 'Folder'
    check_class_files(cfg)


def test_tensorboard_draws_predictions_in_the_class_files_palette():
    import torch

    from advent.domain_adaptation.train_UDA import draw_in_tensorboard

    class Writer:
        def __init__(self):
            self.images = {}

        def add_image(self, tag, image, step):
            self.images[tag] = np.asarray(image)

    logits = torch.zeros(1, 5, 4, 6)
    logits[0, 4, :, :3] = 5.0  # class 4 on the left half, class 0 on the right
    writer = Writer()
    draw_in_tensorboard(writer, torch.zeros(1, 3, 4, 6), 0, logits, 5, 'T', fd.PALETTE)
    drawn = writer.images['Prediction - T'].transpose(1, 2, 0)
    assert (drawn[:, :3] == fd.PALETTE[4]).all() and (drawn[:, 3:] == fd.PALETTE[0]).all()


def test_only_the_synthia_classes_report_an_miou13():
    from advent.domain_adaptation.eval_UDA import SYNTHIA_16_NAMES, reports_miou13
    assert reports_miou13(np.array(SYNTHIA_16_NAMES, dtype=str))
    assert not reports_miou13([f'class{i}' for i in range(16)]) and not reports_miou13(fd.CLASSES)


# ------------------------------------------------- the whole method without one target label

def unlabelled_target_tree(root):
    """The tiny tree with no target label at all: val.txt lists images only, and the target's
    label folder is gone (an attempt to read a label would fail)."""
    import shutil
    tree = fd.make_folder_tree(root)
    fd.write_list(tree / 'target' / 'val.txt', [f'images/{name}' for name in fd.TARGET_VAL])
    shutil.rmtree(tree / 'target' / 'labels')
    return tree


def cached_pick(snapshot_dir, criterion):
    """The iteration `criterion` picks from the label-free scores of all_res.json, as SPEC 11
    says: the lowest entropy, the highest im, the last; ties to the earlier snapshot."""
    scores = {int(k): v for k, v in json.loads((Path(snapshot_dir) / 'all_res.json').read_text())['label_free'].items()}
    order = sorted(scores)
    if criterion == 'last':
        return order[-1]
    sign = 1 if criterion == 'entropy' else -1
    return min(order, key=lambda i: (sign * scores[i][criterion], i))


def test_the_whole_method_runs_without_one_target_label(tmp_path, monkeypatch, capsys):
    """intrada.pipeline with TEST.SELECTION im on a target without labels: stage 1, the
    snapshot im picks (from the cache's scores), stage 2 on that snapshot (also as
    entropy.py's default --best_iter), stage 3; then `entropy` and `last` in best mode."""
    import builtins

    from advent.cli import test_main
    from entropy_rank import entropy
    from intrada.pipeline import main as pipeline_main
    tree = unlabelled_target_tree(tmp_path / 'tree')
    s1 = write_config(tmp_path / 's1.yml', fd.folder_stage1_config(tree, tmp_path / 'snap', TEST={'SELECTION': 'im'}))
    s3 = write_config(tmp_path / 's3.yml', fd.folder_stage3_config(tree, tmp_path / 'snap', tmp_path / 'rank',
                                                                   TEST={'SELECTION': 'im'}))
    target = tree / 'target'
    opened = []
    real_open, real_image_open = builtins.open, base_dataset.Image.open

    def record(file):
        if str(file).startswith(str(target)):
            opened.append(Path(file).relative_to(target).as_posix())

    monkeypatch.setattr(builtins, 'open', lambda file, *a, **k: record(file) or real_open(file, *a, **k))
    monkeypatch.setattr(base_dataset.Image, 'open', lambda f, *a, **k: record(f) or real_image_open(f, *a, **k))
    assert pipeline_main(['--stage1-cfg', str(s1), '--stage3-cfg', str(s3), '--lambda1', '0.5']) == 0
    out = capsys.readouterr().out
    monkeypatch.undo()
    # every target file read is a list, the class file or an image
    assert {f for f in opened if f.startswith('images/')} == {f'images/{n}' for n in fd.TARGET_TRAIN + fd.TARGET_VAL}
    assert {f for f in opened if not f.startswith('images/')} <= {'train.txt', 'val.txt', 'info.json'}

    snap1, snap3 = tmp_path / 'snap' / 'folder1', tmp_path / 'snap' / 'folder3'
    finals = [line for line in out.splitlines() if line.startswith('Best iteration:')]
    assert len(finals) == 2 and 'mIoU' not in out
    for snapshot_dir, final in zip((snap1, snap3), finals):
        cache = json.loads((snapshot_dir / 'all_res.json').read_text())
        assert cache['results'] == {} and set(cache['label_free']) == {'2', '4'}
        pick = cached_pick(snapshot_dir, 'im')
        assert final.startswith(f'Best iteration: {pick} (selected by im: im ') and \
            final.endswith(f'{snapshot_dir}/model_{pick}.pth)')
    best_iter = cached_pick(snap1, 'im')
    ranked = json.loads((tmp_path / 'rank' / 'entropy_ranking.json').read_text())
    assert ranked['checkpoint'] == str(snap1 / f'model_{best_iter}.pth')
    assert (snap3 / 'model_4.pth').is_file()

    # stage 2 on its own: without --best_iter, the snapshot TEST.SELECTION picks
    args = entropy.get_arguments(['--cfg', str(s1), '--lambda1', '0.5', '--out-dir', str(tmp_path / 'rank2')])
    entropy.main(args)
    assert json.loads((tmp_path / 'rank2' / 'entropy_ranking.json').read_text())['checkpoint'] == ranked['checkpoint']

    # the other label-free criteria, from the cache (nothing evaluated again)
    before = (snap1 / 'all_res.json').read_bytes()
    for criterion in ('entropy', 'last'):
        cfg = write_config(tmp_path / f'{criterion}.yml',
                           fd.folder_stage1_config(tree, tmp_path / 'snap', TEST={'SELECTION': criterion}))
        capsys.readouterr()
        assert test_main(['--cfg', str(cfg)]) == 0
        final = capsys.readouterr().out.strip().splitlines()[-1]
        pick = cached_pick(snap1, criterion)
        assert final.startswith(f'Best iteration: {pick} (') and final.endswith(f'{snap1}/model_{pick}.pth)')
    assert (snap1 / 'all_res.json').read_bytes() == before


@pytest.mark.parametrize('selection', ['im', 'miou'])
def test_check_on_an_unlabelled_val_list(tmp_path, capsys, selection):
    from intrada.check import console_main
    tree = unlabelled_target_tree(tmp_path / 'tree')
    cfg = write_config(tmp_path / 's1.yml', fd.folder_stage1_config(tree, tmp_path / 'snap',
                                                                     TEST={'SELECTION': selection}))
    status = console_main(['--cfg', str(cfg)])
    out = capsys.readouterr().out
    failures = [line for line in out.splitlines() if line.startswith('FAIL')]
    if selection == 'im':
        assert status == 0 and not failures, out
        assert 'val labels        all 0 present; 2 items without a label' in out
    else:
        assert status == 1 and len(failures) == 1, out
        assert failures[0].startswith('FAIL  val labels') and "TEST.SELECTION 'miou'" in failures[0]
        assert f"{tree / 'target' / 'val.txt'} 'images/{fd.TARGET_VAL[0]}' has no label" in failures[0]
