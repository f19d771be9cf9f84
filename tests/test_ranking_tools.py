"""Stage 2's overview (ranking_overview.png and the summary in entropy_ranking.json) and the
opt-in pseudo-label quality: by hand on a labelled tree built here (expected numbers worked
out by hand), through entropy.py --pseudo-label-quality on the parity trees (against a
computation here), and the default run, which opens no label file even where labels exist."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from devices import DEVICES
from stage_utils import CLASS_NAMES, TINY, write_yaml
from test_fast_paths import random_model

INPUT_SIZE = [64, 36]


# ------------------------------------------------------------------ the overview

@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('ranking_tools') / 'model_2.pth'
    torch.save(random_model(3, head_std=0.05).state_dict(), path)
    return path


def stage1_config(path, trees, snapshot_dir):
    return write_yaml(path, {
        'NUM_WORKERS': 0, 'DATA_DIRECTORY_TARGET': str(trees / 'Cityscapes'),
        'DATA_LIST_TARGET': str(trees / 'lists' / 'cs_{}.txt'),
        'TRAIN': {'MODEL': TINY, 'INPUT_SIZE_TARGET': INPUT_SIZE, 'SNAPSHOT_DIR': str(snapshot_dir)},
        'TEST': {'MODEL': [TINY]}})


def rank(trees, checkpoint, tmp_path, *extra):
    """entropy.py's main in this process on the parity trees' 4 target training images."""
    from advent.cli import run_guarded
    from entropy_rank import entropy
    snapshots = tmp_path / 'snap'
    snapshots.mkdir(exist_ok=True)
    shutil.copy(checkpoint, snapshots / 'model_2.pth')
    cfg = stage1_config(tmp_path / 'cfg.yml', trees, snapshots)
    out = tmp_path / 'rank'
    argv = ['--cfg', str(cfg), '--best_iter', '2', '--normalize', 'False', '--lambda1', '0.5', '--out-dir', str(out)]
    return run_guarded(entropy.main, entropy.get_arguments(argv + list(extra))), out


@pytest.fixture(scope='module')
def default_run(parity_trees, checkpoint, tmp_path_factory):
    """The default ranking (no quality flag) with gtFine/train present, recording every file
    Image.open opens."""
    from pathlib import Path
    opened = []
    real_open = Image.open

    def recording_open(fp, *args, **kwargs):
        opened.append(str(fp))
        return real_open(fp, *args, **kwargs)

    trees = Path(parity_trees)
    assert (trees / 'Cityscapes' / 'gtFine' / 'train').is_dir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Image, 'open', recording_open)
        status, out = rank(trees, checkpoint, tmp_path_factory.mktemp('default_rank'))
    return status, out, opened


def test_default_run_opens_no_label_file(default_run):
    status, out, opened = default_run
    assert status == 0
    assert opened and not [p for p in opened if 'gtFine' in p]
    assert 'pseudo_label_quality' not in json.loads((out / 'entropy_ranking.json').read_text())


def test_overview_written_and_readable(default_run):
    _, out, _ = default_run
    figure = Image.open(out / 'ranking_overview.png')
    figure.load()
    assert figure.mode == 'RGB'
    # 2 easiest + 2 hardest rows of 3 tiles at least 160 px wide (64 x 36 enlarged), then the histogram
    assert figure.width >= 3 * 160 and figure.height >= 4 * 90 + 150
    pixels = np.asarray(figure).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50   # pictures, not a blank canvas


def test_summary_matches_the_ranking(default_run):
    _, out, _ = default_run
    saved = json.loads((out / 'entropy_ranking.json').read_text())
    ranking, summary = saved['ranking'], saved['summary']
    scores = [r['score'] for r in ranking]
    easy = (out / 'easy_split.txt').read_text().split()
    assert summary['images'] == 4 and summary['easy'] == len(easy) == 2 and summary['hard'] == 2
    assert summary['lambda1'] == 0.5
    assert scores[1] <= summary['cut_score'] <= scores[2]
    assert sum(summary['histogram']['counts']) == 4
    edges = summary['histogram']['edges']
    assert edges[0] == pytest.approx(min(scores)) and edges[-1] == pytest.approx(max(scores))
    assert [e['name'] for e in summary['easiest']] == [r['name'] for r in ranking[:2]] == easy
    assert [e['name'] for e in summary['hardest']] == [r['name'] for r in ranking[::-1][:2]]
    assert [e['rank'] for e in summary['hardest']] == [4, 3]


def test_summary_never_shows_an_image_twice():
    from entropy_rank.overview import ranking_summary
    ranking = [{'name': f'n{i}', 'score': float(s)} for i, s in enumerate([0.1, 0.2, 0.2, 0.5, 0.9])]
    summary = ranking_summary(ranking, 0.67, count=4)
    shown = [e['name'] for e in summary['easiest'] + summary['hardest']]
    assert sorted(shown) == [f'n{i}' for i in range(5)]
    assert summary['easy'] == 3 and summary['cut_score'] == pytest.approx(0.35)
    assert ranking_summary(ranking, 1.0)['cut_score'] is None


# ------------------------------------------------------------------ stage 2 in one pass

class RepeatedImages(torch.utils.data.Dataset):
    """Target-like items (image, label, shape, name): `distinct` random images repeated, so
    that several images have exactly the same score."""

    def __init__(self, n, distinct, size=(40, 24)):
        rng = np.random.default_rng(0)
        self.images = [rng.normal(0, 60, (3, size[1], size[0])).astype(np.float32) for _ in range(distinct)]
        self.names = [f'c/c_{i:06d}_000019_leftImg8bit.png' for i in range(n)]

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        image = self.images[index % len(self.images)]
        return image, np.full(image.shape[1:], 255, np.int64), np.array(image.shape), self.names[index]


def test_extreme_images_are_the_ends_of_the_sorted_ranking():
    from entropy_rank.overview import ExtremeImages
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, 40).astype(float)   # many ties
    extremes, kept = ExtremeImages(3), []

    for position, score in enumerate(scores):
        extremes.offer(f'n{position}', score, lambda p=position: kept.append(p) or (p,))
        assert len(extremes.images()) <= 6   # bounded by the overview, not by the list
    ranked = [f'n{p}' for p in sorted(range(len(scores)), key=lambda p: scores[p])]   # stable, as the ranking
    assert set(extremes.images()) == set(ranked[:3] + ranked[-3:])
    assert len(kept) < len(scores)   # tiles() only for the images kept at the time


@pytest.mark.parametrize('device', DEVICES)
def test_ranking_runs_the_model_once_per_image_and_draws_the_same_overview(tmp_path, device):
    """The overview drawn from the images kept while ranking is, pixel for pixel, the one
    drawn by predicting its images again (the former second pass, render_ranking_overview)."""
    from entropy_rank.overview import OVERVIEW_NAME, render_ranking_overview
    from entropy_rank.ranking import rank_target_images
    device = torch.device(device)
    model = random_model(3, head_std=0.05).to(device)
    forwards = []
    model.register_forward_hook(lambda *_: forwards.append(1))
    dataset = RepeatedImages(11, distinct=4)
    easy, hard, _ = rank_target_images(model, dataset, (40, 24), device, tmp_path, True, 0.67, overview_count=2)
    assert len(forwards) == len(dataset)
    saved = json.loads((tmp_path / 'entropy_ranking.json').read_text())
    summary = saved['summary']
    assert [r['name'] for r in saved['ranking']] == easy + hard
    assert len(summary['easiest']) == len(summary['hardest']) == 2
    reference = render_ranking_overview(model, dataset, device, summary, 0)
    drawn = Image.open(tmp_path / OVERVIEW_NAME)
    assert drawn.size == reference.size
    assert np.array_equal(np.asarray(drawn.convert('RGB')), np.asarray(reference.convert('RGB')))
    # without the figure the ranking writes the same files but ranking_overview.png
    plain = tmp_path / 'plain'
    rank_target_images(model, dataset, (40, 24), device, plain, True, 0.67, overview_count=2, overview=False)
    assert not (plain / OVERVIEW_NAME).exists()
    assert json.loads((plain / 'entropy_ranking.json').read_text()) == saved


# ------------------------------------------------------------------ pseudo-label quality

# Cityscapes labelIds: 7 road (train id 0), 8 sidewalk (1), 11 building (2), 0 unlabelled (ignored)
HAND = {  # name: (split, labelIds 2 x 4, pseudo-label train ids 2 x 4)
    'c/c_000000_000001_leftImg8bit.png': ('easy', [[7, 7, 8, 8], [11, 11, 0, 0]], [[0, 1, 1, 1], [2, 0, 5, 5]]),
    'c/c_000000_000002_leftImg8bit.png': ('easy', [[7, 7, 7, 7], [7, 7, 7, 7]], [[0, 0, 13, 0], [0, 13, 0, 0]]),
    'c/c_000000_000003_leftImg8bit.png': ('hard', [[7, 7, 7, 7], [8, 8, 8, 8]], [[0, 0, 0, 0], [0, 0, 0, 0]]),
}


@pytest.fixture
def hand_tree(tmp_path):
    """A ranking folder and gtFine/train written by hand; the labels at twice the pseudo-labels'
    size (2 x 2 blocks), which NEAREST brings back to the 4 x 2 patterns."""
    rank_dir, labels = tmp_path / 'rank', tmp_path / 'gtFine' / 'train'
    (rank_dir / 'color_masks').mkdir(parents=True)
    for name, (_, label_ids, pseudo) in HAND.items():
        label_file = labels / name.replace('leftImg8bit', 'gtFine_labelIds')
        label_file.parent.mkdir(parents=True, exist_ok=True)
        big = np.kron(np.array(label_ids, np.uint8), np.ones((2, 2), np.uint8))
        Image.fromarray(big).save(label_file)
        Image.fromarray(np.array(pseudo, np.uint8)).save(rank_dir / 'color_masks' / name.split('/')[-1])
    for split in ('easy', 'hard'):
        (rank_dir / f'{split}_split.txt').write_text(''.join(f'{n}\n' for n, v in HAND.items() if v[0] == split))
    (rank_dir / 'entropy_ranking.json').write_text(json.dumps({'lambda1': 0.67, 'ranking': []}))
    return rank_dir, labels


def test_quality_by_hand(hand_tree, capsys):
    from entropy_rank.quality import main
    rank_dir, labels = hand_tree
    assert main([str(rank_dir), '--labels', str(labels)]) == 0
    saved = json.loads((rank_dir / 'entropy_ranking.json').read_text())
    assert saved['lambda1'] == 0.67 and saved['ranking'] == []   # the rest of the file is kept
    easy, hard = saved['pseudo_label_quality']['easy'], saved['pseudo_label_quality']['hard']
    # easy: image 1 has 6 labelled pixels, 4 right; image 2 has 8, 6 right -> 10 of 14
    assert (easy['images'], easy['pixels']) == (2, 14)
    assert easy['pixel_accuracy'] == round(100 * 10 / 14, 2)
    # road in easy: 10 labelled, 8 predicted, 7 both -> IoU 7 / 11; building: 2 labelled, 1 predicted, 1 both
    assert easy['per_class']['road'] == round(100 * 7 / 11, 2)
    assert easy['per_class']['building'] == 50.0
    assert easy['per_class']['sidewalk'] == round(100 * 2 / 3, 2)   # 2 labelled, 3 predicted, 2 both
    assert easy['per_class']['car'] == 0.0                            # predicted only
    # pole is predicted only on unlabelled pixels, which do not count: absent like sky
    assert easy['per_class']['pole'] is None and easy['per_class']['sky'] is None
    assert easy['mIoU'] == round(100 * np.mean([7 / 11, 2 / 3, 1 / 2, 0]), 2)   # road, sidewalk, building, car
    assert (hard['images'], hard['pixels'], hard['pixel_accuracy']) == (1, 8, 50.0)
    out = capsys.readouterr().out
    assert f'pixel accuracy {round(100 * 10 / 14, 2):.2f}' in out and 'pixel accuracy 50.00' in out


def test_quality_missing_label_is_one_line_and_changes_nothing(hand_tree, capsys):
    from entropy_rank.quality import main
    rank_dir, labels = hand_tree
    before = (rank_dir / 'entropy_ranking.json').read_bytes()
    missing = labels / 'c' / 'c_000000_000003_gtFine_labelIds.png'
    missing.unlink()
    assert main([str(rank_dir), '--labels', str(labels)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error:') and missing.name in err[0], err
    assert (rank_dir / 'entropy_ranking.json').read_bytes() == before


def test_entropy_flag_measures_the_written_pseudo_labels(parity_trees, checkpoint, tmp_path, capsys):
    from pathlib import Path
    from advent.dataset.base_dataset import IdMapper
    trees = Path(parity_trees)
    labels = trees / 'Cityscapes' / 'gtFine' / 'train'
    status, out = rank(trees, checkpoint, tmp_path, '--pseudo-label-quality', str(labels))
    assert status == 0
    quality = json.loads((out / 'entropy_ranking.json').read_text())['pseudo_label_quality']
    info = json.loads((Path(__file__).resolve().parents[1] / 'advent' / 'dataset' / 'cityscapes_list' /
                       'info.json').read_text())
    to_train = IdMapper(info['label2train'])
    for split in ('easy', 'hard'):
        right = total = 0
        for name in (out / f'{split}_split.txt').read_text().split():
            pseudo = np.asarray(Image.open(out / 'color_masks' / name.split('/')[-1]))
            gt = Image.open(labels / name.replace('leftImg8bit', 'gtFine_labelIds'))
            gt = to_train(np.asarray(gt.resize(tuple(INPUT_SIZE), Image.NEAREST)))
            counted = gt < 19
            right += int((gt[counted] == pseudo[counted]).sum())
            total += int(counted.sum())
        assert quality[split]['pixels'] == total > 0
        assert quality[split]['pixel_accuracy'] == round(100 * right / total, 2)
        assert set(quality[split]['per_class']) == set(CLASS_NAMES)
    printed = capsys.readouterr().out
    assert 'never used for training' in printed
    # written elsewhere than the packaged stage-3 config reads: the note says how to chain stage 3
    assert 'note: configs/intrada.yml reads the splits from' in printed and 'without --out-dir' in printed


def test_entropy_flag_checks_the_label_folder_first(parity_trees, checkpoint, tmp_path, capsys):
    from pathlib import Path
    status, out = rank(Path(parity_trees), checkpoint, tmp_path, '--pseudo-label-quality', str(tmp_path / 'nope'))
    assert status == 2
    assert '--pseudo-label-quality' in capsys.readouterr().err
    assert not out.exists()
