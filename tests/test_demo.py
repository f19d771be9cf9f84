"""The built-in demo: one quick run with the ablation (every row, through the real scripts)
checked by several tests, and the aggregation of several seeds on made-up results."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advent.domain_adaptation.eval_UDA import load_cache, load_results_cache, miou_percent
from intrada.demo.stages import DISCRIMINATOR_WIDTH

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED_KEYS = {'source_only', 'bn_only', 'advent', 'intrada', 'split', 'seconds', 'settings', 'seed',
                   'original_sgd', 'advent_continued', 'pseudo_labels'}
ABLATION_KEYS = {'self_training', 'intrada_norm'}
RUNS = ('source_only', 'bn_only', 'advent', 'advent_continued', 'intrada', 'self_training', 'intrada_norm')


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """`python -m intrada.demo --quick --ablation --selection im --jobs 2` once: (output folder, stdout,
    results). (The README's test runs the quick demo with the default selection.)"""
    out = tmp_path_factory.mktemp('demo') / 'demo'
    stdout = run_quick_demo(out, '--ablation', '--jobs', '2')
    return out, stdout, json.loads((out / 'results.json').read_text())


def run_quick_demo(out, *flags):
    """The quick demo of seed 3 with --selection im into `out`; its stdout."""
    proc = subprocess.run([sys.executable, '-m', 'intrada.demo', '--quick', '--seed', '3', '--selection', 'im',
                           '--out', str(out), *flags], cwd=out.parent, capture_output=True, text=True, timeout=900,
                          env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


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


def test_the_first_rows_continue_one_warm_up_alike(demo):
    """Source only, the BN-only control and AdvEnt: each a run of `adapt` iterations from the warm-up's
    last snapshot, with the same seed; they differ in their method only."""
    out, _, results = demo
    settings = results['settings']
    warmup = config(out, 'warmup')
    assert warmup['TRAIN']['DA_METHOD'] == 'SourceOnly' and warmup['TRAIN']['RESTORE_FROM'] == ''
    assert warmup['TRAIN']['EARLY_STOP'] == settings['warmup']
    warm_snapshot = out / 'snapshots' / 'warmup' / f'model_{settings["warmup"]}.pth'
    assert warm_snapshot.is_file()
    rest = {}
    for run, method in (('source_only', 'SourceOnly'), ('bn_only', 'BNOnly'), ('advent', 'AdvEnt')):
        cfg = config(out, run)
        assert (cfg.pop('EXP_NAME'), cfg['TRAIN'].pop('DA_METHOD')) == (run, method)
        rest[run] = cfg
        assert sorted(int(i) for i in results[run]['mIoU_by_iter']) == list(
            range(settings['every'], settings['adapt'] + 1, settings['every']))
    assert rest['source_only'] == rest['bn_only'] == rest['advent']
    assert rest['advent']['TRAIN']['RESTORE_FROM'] == str(warm_snapshot)
    assert rest['advent']['TRAIN']['EARLY_STOP'] == settings['adapt']


def test_the_numbers_do_not_depend_on_the_number_of_jobs(demo, tmp_path):
    """Every run has one thread whatever runs beside it: --jobs 1 gives the numbers of --jobs 2."""
    out, _, results = demo
    run_quick_demo(tmp_path / 'one_job', '--jobs', '1')
    alone = json.loads((tmp_path / 'one_job' / 'results.json').read_text())
    assert alone['jobs'] == 1 and results['jobs'] == 2
    for run in ('source_only', 'bn_only', 'advent', 'advent_continued', 'intrada'):
        assert alone[run]['mIoU_by_iter'] == results[run]['mIoU_by_iter'], run
        assert alone[run]['per_class'] == results[run]['per_class'], run
    assert all(alone['pseudo_labels'][split] == results['pseudo_labels'][split] for split in ('easy', 'hard'))


def test_every_run_uses_the_demo_discriminator_width(demo):
    """TRAIN.D_NDF in every generated config, and the adversarial runs' saved discriminators have it."""
    out, _, results = demo
    for run in RUNS:
        assert config(out, run)['TRAIN']['D_NDF'] == DISCRIMINATOR_WIDTH, run
    for run in ('advent', 'intrada', 'advent_continued', 'intrada_norm'):
        saved = torch.load(out / 'snapshots' / run / f'model_{results[run]["best_iter"]}_D_main.pth',
                           map_location='cpu', weights_only=True)
        assert saved['0.weight'].shape[0] == DISCRIMINATOR_WIDTH, run


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


def test_selection_of_every_run(demo):
    """Each criterion's pick, its mIoU and regret from the run's cache; with --selection im the
    im pick is every run's snapshot, stage 2's input included."""
    out, stdout, results = demo
    assert set(results['selection']) == set(RUNS)
    for run in RUNS:
        cache, label_free = load_cache(out / 'snapshots' / run)
        mious = {i: miou_percent(ious) for i, ious in cache.items()}
        assert set(label_free) == set(cache)
        picks = results['selection'][run]
        assert set(picks) == {'miou', 'entropy', 'im', 'last'}
        expected = {'miou': max(mious, key=lambda i: (mious[i], -i)), 'last': max(mious),
                    'entropy': min(label_free, key=lambda i: (label_free[i]['entropy'], i)),
                    'im': max(label_free, key=lambda i: (label_free[i]['im'], -i))}
        for criterion, i_iter in expected.items():
            assert picks[criterion]['iter'] == i_iter
            assert picks[criterion]['mIoU'] == mious[i_iter]
            assert picks[criterion]['regret'] == pytest.approx(max(mious.values()) - mious[i_iter], abs=0.006)
        assert picks['miou']['regret'] == 0
        assert results[run]['best_iter'] == picks['im']['iter'] and results[run]['mIoU'] == picks['im']['mIoU']
        assert config(out, run)['TEST']['SELECTION'] == 'im'
    ranking = json.loads((out / 'entropy_rank' / 'entropy_ranking.json').read_text())
    assert ranking['checkpoint'] == results['advent']['checkpoint']   # the im pick, checked above
    report = (out / 'report.md').read_text()
    assert '## Choosing the snapshot without target labels' in report and '`im`' in report
    advent = results['selection']['advent']['entropy']
    assert f'{advent["mIoU"]:.2f} (iter {advent["iter"]}, regret {advent["regret"]:.2f})' in report
    assert 'mean regret over the runs' in stdout


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
                    'split': {'precision': 0.5, 'recall': 0.4 + shift / 10, 'auroc': 0.6},
                    'selection': {key: {'miou': {'iter': 20, 'mIoU': value + shift, 'regret': 0.0},
                                        'entropy': {'iter': 10, 'mIoU': value + shift - 1, 'regret': 1.0 + shift},
                                        'im': {'iter': 20, 'mIoU': value + shift, 'regret': 0.0},
                                        'last': {'iter': 30, 'mIoU': value + shift - 2, 'regret': 2.0}}
                                  for key, value in rows.items()}})
    return results


def test_t_quantile_against_the_table():
    from intrada.demo.paired import t_quantile
    # Student's t, 0.975 quantile (two-sided 95 %), and one 0.95 quantile, from the standard tables
    for df, expected in ((1, 12.706205), (2, 4.302653), (3, 3.182446), (4, 2.776445), (9, 2.262157),
                         (30, 2.042272)):
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-6)
    assert t_quantile(0.95, 5) == pytest.approx(2.015048, abs=1e-6)


def test_paired_interval_by_hand():
    """IntraDA minus AdvEnt continued on three seeds: +0.94, +0.36, +0.70."""
    from intrada.demo.paired import paired_comparison, paired_interval
    differences = [0.94, 0.36, 0.70]
    mean = (0.94 + 0.36 + 0.70) / 3
    sd = (sum((d - mean) ** 2 for d in differences) / 2) ** 0.5
    half = 4.302653 * sd / 3 ** 0.5   # t_{0.975, 2}
    got_mean, low, high = paired_interval(differences)
    assert got_mean == pytest.approx(0.6667, abs=1e-4)
    assert (low, high) == (pytest.approx(mean - half, abs=1e-5), pytest.approx(mean + half, abs=1e-5))
    assert low < 0 < high   # three seeds, all won, and still the interval holds 0
    entry = paired_comparison('intrada', 'advent_continued', [11.94, 11.36, 11.70], [11.0, 11.0, 11.0])
    assert entry['differences'] == differences and entry['mean'] == 0.667 and entry['wins'] == 3
    assert entry['ci95'] == [round(mean - half, 3), round(mean + half, 3)] and not entry['excludes_zero']


def test_aggregate_mean_sd_and_the_paired_comparisons():
    from intrada.demo.aggregate import aggregate
    summary = aggregate({5: fake_results(5, 1.0), 4: fake_results(4, -1.0)})
    assert summary['seeds'] == [4, 5] and list(summary['per_seed']) == ['4', '5']
    advent = summary['rows']['advent']
    assert advent['mIoU'] == [10.0, 12.0] and advent['mean'] == 11.0
    assert advent['sd'] == pytest.approx(np.std([10.0, 12.0], ddof=1), abs=0.005)
    assert advent['last_mean'] == 10.5
    comparisons = {(c['row'], c['against']): c for c in summary['comparisons']}
    assert list(comparisons) == [('intrada', 'advent_continued'), ('intrada', 'advent'), ('advent', 'source_only'),
                                 ('advent', 'bn_only')]   # self-training and normalisation not run
    # every row has sd 1.41, but the rows move together over the seeds: the paired differences do not vary
    paired = comparisons['intrada', 'advent_continued']
    assert paired['differences'] == [0.3, 0.3] and paired['mean'] == 0.3 and paired['wins'] == 2
    assert paired['ci95'] == [0.3, 0.3] and paired['excludes_zero']
    assert summary['paper'] == {'advent': 43.8, 'intrada': 46.3}
    assert summary['pseudo_labels']['easy']['pixel_accuracy']['mean'] == 60.0
    assert summary['pseudo_labels']['hard']['mIoU']['mean'] is None


def test_seeds_flag_writes_the_aggregate(tmp_path, monkeypatch, capsys):
    """--seeds 2 runs seed and seed + 1 in OUT/seed_K/ and writes OUT/results.json and
    report.md; the runs themselves are replaced by made-up results."""
    from intrada.demo import cli
    calls = []

    def fake_run_demo(out, seed, **settings):
        calls.append((Path(out), seed))
        results = {**fake_results(seed, seed - 7.5), 'seconds': {'total': 1.0}}
        results['bn_only']['mIoU'] += 2 * (seed - 7)   # 9.5 then 12.5: AdvEnt wins one seed of two
        return results

    monkeypatch.setattr(cli, 'run_demo', fake_run_demo)
    assert cli.main(['--seeds', '2', '--seed', '7', '--out', str(tmp_path)]) == 0
    assert calls == [(tmp_path / 'seed_7', 7), (tmp_path / 'seed_8', 8)]
    summary = json.loads((tmp_path / 'results.json').read_text())
    assert summary['rows']['intrada']['mIoU'] == [11.0, 12.0]
    for comparison in summary['comparisons']:
        assert {'differences', 'mean', 'ci95', 'wins', 'excludes_zero'} <= set(comparison)
    comparisons = {(c['row'], c['against']): c for c in summary['comparisons']}
    assert comparisons['advent', 'bn_only']['differences'] == [1.0, -1.0]
    assert comparisons['advent', 'bn_only']['wins'] == 1 and not comparisons['advent', 'bn_only']['excludes_zero']
    assert comparisons['advent', 'source_only']['ci95'] == [4.0, 4.0]
    report = (tmp_path / 'report.md').read_text()
    assert '11.50 ± 0.71' in report and '| 46.3 |' in report
    assert '| AdvEnt (stage 1) against BN-only control | +1.00 / -1.00 |' in report
    excluding = next(line for line in report.splitlines() if line.startswith('- Intervals that exclude 0'))
    assert 'AdvEnt (stage 1) against source only' in excluding and 'BN-only' not in excluding
    out = capsys.readouterr().out
    assert 'intervals that exclude 0:' in out and 'AdvEnt (stage 1) against BN-only control' in out
    # the regret of each criterion over the seeds (entropy: 0.5 and 1.5 in every row)
    assert summary['selection']['mean_regret'] == {'miou': 0.0, 'entropy': 1.0, 'im': 0.0, 'last': 2.0}
    assert summary['selection']['rows']['advent']['entropy']['regret'] == [0.5, 1.5]
    assert '| AdvEnt (stage 1) | 0.00 ± 0.00 | 1.00 ± 0.71 | 0.00 ± 0.00 | 2.00 ± 0.00 |' in report
    assert np.asarray(Image.open(tmp_path / 'summary.png')).std() > 10


def test_jobs_flag_takes_a_positive_count(capsys):
    from intrada.demo import cli
    assert cli.get_arguments(['--jobs', '3']).jobs == 3
    with pytest.raises(SystemExit) as exit_info:
        cli.get_arguments(['--jobs', '0'])
    assert exit_info.value.code == 2 and '--jobs must be at least 1, got 0' in capsys.readouterr().err


def test_a_failed_step_ends_the_demo_with_its_log_named(tmp_path):
    from advent.cli import train_main
    from intrada.demo.jobs import Stages
    with pytest.raises(SystemExit) as exit_info:
        with Stages(tmp_path, jobs=2) as stages:
            stages.finish(stages.start('broken', [('broken train', train_main, ['--cfg', str(tmp_path / 'no.yml')])]))
    log = tmp_path / 'logs' / 'broken_train.log'
    assert str(exit_info.value) == f'error: broken failed (exit status 2); see {log}'
    assert log.read_text().startswith('error: ') and 'no.yml' in log.read_text()


def test_ctrl_c_ends_the_demo_and_its_workers_in_one_line(tmp_path):
    import signal
    import time
    proc = subprocess.Popen([sys.executable, '-m', 'intrada.demo', '--quick', '--jobs', '2', '--out', str(tmp_path / 'd')],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    deadline = time.time() + 120
    while not list((tmp_path / 'd' / 'logs').glob('*_train.log')) and time.time() < deadline:
        time.sleep(0.2)   # a step has started in one worker (the other may still be importing)
    os.killpg(proc.pid, signal.SIGINT)   # as Ctrl-C in a terminal: the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and 'error: interrupted' in err and 'Traceback' not in err, err[-2000:]
