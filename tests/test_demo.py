"""The built-in demo: one quick run with the ablation (every row, through the real scripts)
checked by several tests, and the aggregation of several seeds on made-up results."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advent.domain_adaptation.eval_UDA import load_results_cache, miou_percent

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED_KEYS = {'source_only', 'bn_only', 'advent', 'intrada', 'split', 'seconds', 'settings', 'seed',
                   'original_sgd', 'advent_continued', 'pseudo_labels'}
ABLATION_KEYS = {'self_training', 'intrada_norm'}
RUNS = ('source_only', 'bn_only', 'advent', 'advent_continued', 'intrada', 'self_training', 'intrada_norm')


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """`python -m intrada.demo --quick --ablation` once: (output folder, stdout, results)."""
    tmp = tmp_path_factory.mktemp('demo')
    out = tmp / 'demo'
    proc = subprocess.run([sys.executable, '-m', 'intrada.demo', '--quick', '--ablation', '--seed', '3',
                           '--out', str(out)], cwd=tmp, capture_output=True, text=True, timeout=900,
                          env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc.stdout, json.loads((out / 'results.json').read_text())


def config(out, run):
    return json.loads((out / 'configs' / f'{run}.yml').read_text())


def test_every_row_is_measured_by_the_evaluation(demo):
    out, stdout, results = demo
    assert DOCUMENTED_KEYS | ABLATION_KEYS <= set(results)
    for run in RUNS:
        assert 0.0 <= results[run]['mIoU'] <= 100.0 and len(results[run]['per_class']) == 19
        # the number in results.json is the one the evaluation cached for that snapshot
        cache = load_results_cache(out / 'snapshots' / run)
        assert results[run]['mIoU'] == miou_percent(cache[results[run]['best_iter']])
        assert results[run]['best_is_last'] == (results[run]['best_iter'] == max(cache))
    for title in ('AdvEnt continued', 'IntraDA (stage 3)', 'self-training', 'IntraDA + normalisation'):
        assert title in stdout
    assert {'data', 'total'} <= set(results['seconds']) and results['seed'] == 3 and results['original_sgd']


def test_control_and_ablation_start_as_intrada(demo):
    out, _, results = demo
    intra = results['settings']['intra']
    intrada = config(out, 'intrada')
    assert intrada['TRAIN']['RESTORE_FROM'] == results['advent']['checkpoint']
    for run in ('advent_continued', 'self_training', 'intrada_norm'):
        cfg = config(out, run)
        assert cfg['TRAIN']['RESTORE_FROM'] == intrada['TRAIN']['RESTORE_FROM']
        assert cfg['TRAIN']['EARLY_STOP'] == intrada['TRAIN']['EARLY_STOP'] == intra
        assert cfg['TRAIN']['RANDOM_SEED'] == intrada['TRAIN']['RANDOM_SEED']
    control = config(out, 'advent_continued')
    assert control['TRAIN']['DA_METHOD'] == 'AdvEnt' and control['SOURCE'] == 'GTA'
    assert control['DATA_LIST_TARGET'] == config(out, 'advent')['DATA_LIST_TARGET']
    # self-training: the segmentation loss only, on the pseudo-labels of every target-train image
    st = config(out, 'self_training')
    assert st['TRAIN']['DA_METHOD'] == 'SourceOnly' and st['SOURCE'] == 'CityscapesEasy'
    names = (out / 'data' / 'Cityscapes' / 'train.txt').read_text().split()
    st_rank = Path(st['DATA_LIST_SOURCE']).parent
    assert sorted(Path(st['DATA_LIST_SOURCE']).read_text().split()) == sorted(names)
    assert (st_rank / 'hard_split.txt').read_text().split() == []
    norm = config(out, 'intrada_norm')
    assert json.loads((Path(norm['DATA_LIST_SOURCE']).parent / 'entropy_ranking.json').read_text())['normalize']


def test_splits_and_their_conditions(demo):
    out, _, results = demo
    names = (out / 'data' / 'Cityscapes' / 'train.txt').read_text().split()
    easy = (out / 'entropy_rank' / 'easy_split.txt').read_text().split()
    hard = (out / 'entropy_rank' / 'hard_split.txt').read_text().split()
    assert sorted(easy + hard) == sorted(names) and len(easy) == int(len(names) * 0.67)
    manifest = json.loads((out / 'data' / 'manifest.json').read_text())['target_train']
    by_condition = results['split']['by_condition']
    for condition, entry in by_condition.items():
        expected = [n for n in hard if manifest[n]['condition'] == condition]
        assert entry['in_hard_split'] == len(expected)
        assert entry['fraction_in_hard_split'] == round(len(expected) / entry['images'], 3)
    assert sum(e['images'] for e in by_condition.values()) == len(names)


def _pixel_accuracy(out, names):
    """The pseudo-labels against the generated labels, computed here from the files."""
    info = json.loads((ROOT / 'advent' / 'dataset' / 'cityscapes_list' / 'info.json').read_text())
    to_train = np.full(256, 255, np.int64)
    for label_id, train_id in info['label2train']:
        to_train[label_id] = train_id
    right = counted = 0
    for name in names:
        pseudo = np.asarray(Image.open(out / 'entropy_rank' / 'color_masks' / Path(name).name), np.int64)
        label = to_train[np.asarray(Image.open(out / 'data' / 'Cityscapes' / 'gtFine' / 'train' /
                                               name.replace('leftImg8bit', 'gtFine_labelIds')))]
        valid = label != 255
        right += int((pseudo[valid] == label[valid]).sum())
        counted += int(valid.sum())
    return round(100 * right / counted, 2)


def test_pseudo_label_accuracy_per_split(demo):
    out, _, results = demo
    for split in ('easy', 'hard'):
        names = (out / 'entropy_rank' / f'{split}_split.txt').read_text().split()
        measured = results['pseudo_labels'][split]
        assert measured['images'] == len(names)
        assert measured['pixel_accuracy'] == pytest.approx(_pixel_accuracy(out, names), abs=0.011)
        assert 0.0 <= measured['mIoU'] <= 100.0
    assert set(results['pseudo_labels_norm']) >= {'easy', 'hard'}


def test_report_and_figures(demo):
    out, _, results = demo
    report = (out / 'report.md').read_text()
    first_image = next(line for line in report.splitlines() if line.startswith('!['))
    assert first_image.endswith('(summary.png)')  # the summary figure at the top
    assert 'AdvEnt continued' in report and f'{results["advent_continued"]["mIoU"]:.2f}' in report
    assert f'{results["pseudo_labels"]["easy"]["pixel_accuracy"]:.2f}' in report
    assert ('is not its last' in report) != results['source_only']['best_is_last']
    for figure in ('summary.png', 'qualitative.png', 'easy_hard.png'):
        image = np.asarray(Image.open(out / figure))
        assert image.ndim == 3 and image.std() > 10  # a real picture, not a blank canvas


def test_qualitative_figure_names_the_black_of_unlabelled_pixels(demo, tmp_path, monkeypatch):
    from advent.utils.viz_segmask import IGNORE_COLOUR, colorize_rgb
    from intrada.demo import figures
    out, _, results = demo
    legends = []
    real_legend = figures.colour_legend
    monkeypatch.setattr(figures, 'colour_legend', lambda entries, width: legends.append(entries)
                        or real_legend(entries, width))
    figures.qualitative_figure(out / 'configs' / 'advent.yml', [('AdvEnt', results['advent']['checkpoint'])],
                               tmp_path / 'q.png', count=1)
    assert IGNORE_COLOUR in legends[0] and legends[0][-1] == ('ignore / unlabelled', (0, 0, 0))
    assert (colorize_rgb(np.full((2, 2), 255, np.uint8)) == 0).all()   # how the ground truth draws it


def test_summary_chart_has_a_y_axis_with_a_title():
    from advent.utils.figures import axis_ticks, bar_chart
    assert axis_ticks(12.05) == [0, 5, 10] and axis_ticks(47) == [0, 10, 20, 30, 40]
    assert axis_ticks(0.5) == [0, 0.1, 0.2, 0.3, 0.4, 0.5] and axis_ticks(100)[-1] == 100
    labelled, plain = (np.asarray(bar_chart(['a', 'b'], [5.0, 10.0], title='t', size=(300, 200), y_label=label)
                                  .convert('L')) for label in ('mIoU (%)', ''))
    height, width = labelled.shape

    def left_of_the_axis(chart):
        axis = [x for x in range(width) if (chart[:, x] < 80).sum() > height / 2]
        assert axis and axis[0] < width / 4       # a vertical axis left of the bars
        return (chart[:, :axis[0]] < 80).sum()    # the dark pixels of its tick values (and title)
    assert left_of_the_axis(labelled) > left_of_the_axis(plain) + 20 > 20


# ------------------------------------------------------------------ several seeds

def fake_results(seed, shift):
    """What run_demo returns, reduced to what the aggregation reads."""
    rows = {'source_only': 7.0, 'bn_only': 10.0, 'advent': 11.0, 'advent_continued': 11.2, 'intrada': 11.5}
    results = {key: {'mIoU': value + shift, 'mIoU_last_mean': value + shift - 0.5} for key, value in rows.items()}
    results.update({'seed': seed,
                    'pseudo_labels': {'easy': {'pixel_accuracy': 60.0 + shift, 'mIoU': 10.0},
                                      'hard': {'pixel_accuracy': 50.0, 'mIoU': None}},
                    'split': {'precision': 0.5, 'recall': 0.4 + shift / 10, 'auroc': 0.6}})
    return results


def test_aggregate_mean_sd_and_the_spread_rule():
    from intrada.demo.aggregate import aggregate
    summary = aggregate({5: fake_results(5, 1.0), 4: fake_results(4, -1.0)})
    assert summary['seeds'] == [4, 5] and list(summary['per_seed']) == ['4', '5']
    advent = summary['rows']['advent']
    assert advent['mIoU'] == [10.0, 12.0] and advent['mean'] == 11.0
    assert advent['sd'] == pytest.approx(np.std([10.0, 12.0], ddof=1), abs=0.005)
    assert advent['last_mean'] == 10.5
    differences = {(c['row'], c['against']): c for c in summary['comparisons']}
    # every row has sd 1.41: AdvEnt - source only (4.0) exceeds it, IntraDA - AdvEnt continued (0.3) does not
    assert differences['advent', 'source_only']['exceeds_spread']
    assert differences['intrada', 'advent_continued']['difference'] == pytest.approx(0.3)
    assert not differences['intrada', 'advent_continued']['exceeds_spread']
    assert ('self_training', 'advent_continued') not in differences  # not run without --ablation
    assert summary['paper'] == {'advent': 43.8, 'intrada': 46.3}
    assert summary['pseudo_labels']['easy']['pixel_accuracy']['mean'] == 60.0
    assert summary['pseudo_labels']['hard']['mIoU']['mean'] is None


def test_seeds_flag_writes_the_aggregate(tmp_path, monkeypatch):
    """--seeds 2 runs seed and seed + 1 in OUT/seed_K/ and writes OUT/results.json and
    report.md; the runs themselves are replaced by made-up results."""
    from intrada.demo import cli
    calls = []

    def fake_run_demo(out, seed, **settings):
        calls.append((Path(out), seed))
        return {**fake_results(seed, seed - 7.5), 'seconds': {'total': 1.0}}

    monkeypatch.setattr(cli, 'run_demo', fake_run_demo)
    assert cli.main(['--seeds', '2', '--seed', '7', '--out', str(tmp_path)]) == 0
    assert calls == [(tmp_path / 'seed_7', 7), (tmp_path / 'seed_8', 8)]
    summary = json.loads((tmp_path / 'results.json').read_text())
    assert summary['rows']['intrada']['mIoU'] == [11.0, 12.0]
    report = (tmp_path / 'report.md').read_text()
    assert '11.50 ± 0.71' in report and '| 46.3 |' in report and 'exceed the spread' in report
    assert np.asarray(Image.open(tmp_path / 'summary.png')).std() > 10
