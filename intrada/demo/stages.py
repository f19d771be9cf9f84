"""The run of the demo's stages: the real scripts' entry points with generated configs.

- a warm-up: `warmup` iterations of source-only training from random weights, the start
  of the next three runs, which differ only in their method:
- a source-only baseline (`adapt` more iterations of the same),
- a BatchNorm-only control (target images only pass through the network in train mode,
  so the batch statistics see them; no adaptation loss),
- stage 1 (AdvEnt) with best-snapshot selection,
- stage 2 (entropy ranking into easy and hard splits, pseudo-labels),
- stage 3 (IntraDA, easy -> hard),
- the fair control of stage 3, AdvEnt continued: stage 1's method (GTA5 -> all of the
  target train set) from the same best AdvEnt snapshot, with a fresh discriminator, for as
  many iterations as stage 3, so that IntraDA is compared with a run that trained as long;
- with `ablation`, the paper's other rows: self-training (every target-train image
  pseudo-labelled, lambda1 = 1.0, trained with the segmentation loss only) and IntraDA
  with the ranking's entropy normalisation;
- every evaluation, and after the fact the pseudo-labels' accuracy against the generated
  target-train labels (the method never reads them).

Each row is a run of its own with a fresh optimiser and learning-rate schedule, evaluated
on its own snapshots (as many for every row); every number in the report is measured by
the project's evaluation code on the generated val set. Runs that do not wait for each
other run side by side (jobs.py).
"""
import json
import shutil
import time
from pathlib import Path

import numpy as np

from advent.cli import test_main, train_main
from advent.domain_adaptation.config import finalize_paths, load_config
from advent.domain_adaptation.eval_UDA import load_cache, miou_percent
from advent.domain_adaptation.selection import pick
from advent.utils.serialization import atomic_write_text, json_dump, json_load
from advent.utils.progress import print_line
from entropy_rank import entropy as entropy_script
from entropy_rank.quality import pseudo_label_quality
from intrada.demo.jobs import Stages
from intrada.demo.figures import easy_hard_figure, qualitative_figure, summary_figure
from intrada.demo.report import present_rows, write_report
from intrada.demo.selection import criterion_picks, report_section
from intrada.demo.synthetic import generate_benchmark

# Benchmark and schedule. 'warmup' source-only iterations, then 'adapt' iterations of
# source-only / BN-only / AdvEnt from that snapshot, then 'intra' IntraDA iterations.
# 100 adaptation iterations: over 5 seeds of the earlier 200-iteration schedule, every
# adapted row was at its level by iteration 100 (docs/demo.md).
SETTINGS = {
    'full': dict(n_source=600, n_target_train=400, n_target_val=300, size=(128, 64), batch=4,
                 warmup=500, adapt=100, intra=100, every=50, last_k=2, model='DeepLabv2-tiny'),
    'quick': dict(n_source=40, n_target_train=30, n_target_val=20, size=(128, 64), batch=2,
                  warmup=20, adapt=10, intra=10, every=10, last_k=1, model='DeepLabv2-tiny'),
}
LEARNING_RATE = 2.5e-3  # from scratch, a reduced model tolerates (and needs) more than 2.5e-4
LAMBDA1 = 0.67
SELF_TRAINING_LAMBDA1 = 1.0  # every target-train image in the easy split, as the paper's self-training row
# TRAIN.D_NDF: discriminators a quarter of the original's width, as DeepLabv2-tiny is a quarter of
# DeepLabv2's; at 64 they took two thirds of every adversarial iteration (docs/demo.md)
DISCRIMINATOR_WIDTH = 16


def write_config(path, entries):
    """A YAML config (JSON is valid YAML, and keeps every path quoted)."""
    atomic_write_text(path, json.dumps(entries, indent=2) + '\n')
    return str(path)


def base_config(data, snapshots, settings, seed, original_sgd=True, max_iters=None, train=None):
    """The entries every run shares. max_iters: TRAIN.MAX_ITERS (the learning-rate schedule's
    length; default 4 x the demo's warmup + adapt + intra); train: further TRAIN entries
    (e.g. AMP, CHANNELS_LAST), added after the others."""
    width, height = settings['size']
    if max_iters is None:
        max_iters = 4 * (settings['warmup'] + settings['adapt'] + settings['intra'])
    cfg = {
        'SOURCE': 'GTA', 'TARGET': 'Cityscapes', 'NUM_WORKERS': 0,
        'DATA_DIRECTORY_SOURCE': data['source_root'], 'DATA_LIST_SOURCE': data['source_list'],
        'DATA_DIRECTORY_TARGET': data['target_root'], 'DATA_LIST_TARGET': data['target_list'],
        'EXP_ROOT_SNAPSHOT': str(snapshots),
        'TRAIN': {
            'MODEL': settings['model'], 'RESTORE_FROM': '',
            'INPUT_SIZE_SOURCE': [width, height], 'INPUT_SIZE_TARGET': [width, height],
            'BATCH_SIZE_SOURCE': settings['batch'], 'BATCH_SIZE_TARGET': settings['batch'],
            'LEARNING_RATE': LEARNING_RATE, 'MAX_ITERS': max_iters, 'D_NDF': DISCRIMINATOR_WIDTH,
            'SAVE_PRED_EVERY': settings['every'], 'RANDOM_SEED': 1234 + seed, 'ORIGINAL_SGD': original_sgd,
        },
        'TEST': {
            'MODE': 'best', 'MODEL': [settings['model']], 'MULTI_LEVEL': [True],
            'INPUT_SIZE_TARGET': [width, height], 'OUTPUT_SIZE_TARGET': [width, height],
            'SNAPSHOT_STEP': settings['every'], 'WAIT_MODEL': False,
        },
    }
    cfg['TRAIN'].update(train or {})
    return cfg


def with_run(base, exp_name, method, iterations, restore_from='', **top_level):
    """A copy of `base` for one run: its name, method, length and starting weights."""
    cfg = json.loads(json.dumps(base))
    cfg.update(top_level)
    cfg['EXP_NAME'] = exp_name
    cfg['TRAIN'].update({'DA_METHOD': method, 'EARLY_STOP': iterations, 'RESTORE_FROM': str(restore_from)})
    cfg['TEST']['SNAPSHOT_MAXITER'] = iterations
    return cfg


def stage3_config(base, exp_name, iterations, checkpoint, rank_dir, data):
    """IntraDA: from `checkpoint`, easy split (with its pseudo-labels) -> hard split; evaluated on val."""
    cfg = with_run(base, exp_name, 'AdvEnt', iterations, checkpoint,
                   SOURCE='CityscapesEasy', TARGET='CityscapesHard',
                   DATA_LIST_SOURCE=str(Path(rank_dir) / 'easy_split.txt'),
                   DATA_LIST_TARGET=str(Path(rank_dir) / 'hard_split.txt'))
    cfg['TEST']['DATA_LIST_TARGET'] = data['target_list']
    return cfg


def self_training_config(base, iterations, checkpoint, rank_dir):
    """Self-training: from `checkpoint`, the segmentation loss on the pseudo-labels of the
    easy split (lambda1 = 1.0: every target-train image) and nothing else. That is
    DA_METHOD SourceOnly with the easy split as its source; the target set is never drawn
    from, so the empty hard split plays no part (the target list stays the train set's)."""
    return with_run(base, 'self_training', 'SourceOnly', iterations, checkpoint,
                    SOURCE='CityscapesEasy', DATA_LIST_SOURCE=str(Path(rank_dir) / 'easy_split.txt'))


def run_steps(name, cfg, evaluate=True):
    """The steps of one run: its training, then (evaluate) the evaluation of its snapshots."""
    return [(f'{name} train', train_main, ['--cfg', cfg])] + ([(f'{name} eval', test_main, ['--cfg', cfg])]
                                                              if evaluate else [])


def ranking_steps(name, stage1_cfg, best_iter, lambda1, normalize, rank_dir):
    """Stage 2 from stage 1's snapshot `best_iter`, into `rank_dir`."""
    return [(name, ranking_entry, ['--cfg', stage1_cfg, '--best_iter', str(best_iter), '--normalize', str(normalize),
                                   '--lambda1', str(lambda1), '--out-dir', str(rank_dir)])]


def ranking_entry(argv):
    return entropy_script.run_guarded(entropy_script.main, entropy_script.get_arguments(argv))


def run_result(cfg_path, last_k):
    """From the run's all_res.json: (the row: mIoU of the best snapshot, the one TEST.SELECTION
    picks, whether it is the last, the mean of the last ones...; every criterion's pick, see
    criterion_picks)."""
    cfg = finalize_paths(load_config(cfg_path))
    results, label_free = load_cache(cfg.TEST.SNAPSHOT_DIR[0])
    iterations = sorted(results)
    mious = {i: miou_percent(results[i]) for i in iterations}
    best = pick(cfg.TEST.SELECTION, iterations, mious, label_free)
    names = json_load(Path(cfg.TEST.SNAPSHOT_DIR[0]) / 'all_res.json')['class_names']
    row = {
        'mIoU': mious[best], 'best_iter': best, 'best_is_last': best == iterations[-1],
        'mIoU_last_mean': round(float(np.mean([mious[i] for i in iterations[-last_k:]])), 2),
        'mIoU_by_iter': {str(i): mious[i] for i in iterations},
        'per_class': {n: (None if np.isnan(v) else round(float(v) * 100, 2)) for n, v in zip(names, results[best])},
        'checkpoint': str(Path(cfg.TEST.SNAPSHOT_DIR[0]) / f'model_{best}.pth'),
    }
    return row, criterion_picks(mious, label_free)


def split_quality(rank_dir, manifest_path):
    """How well the hard split matches the generator's hard-condition flag; per condition the
    images, how many went to the hard split and which fraction."""
    target_train = json_load(manifest_path)['target_train']
    truly_hard = {n for n, v in target_train.items() if v['hard']}
    conditions = {n: v['condition'] for n, v in target_train.items()}
    hard = set((Path(rank_dir) / 'hard_split.txt').read_text().split())
    ranking = json_load(Path(rank_dir) / 'entropy_ranking.json')['ranking']
    hit = len(hard & truly_hard)
    per_condition = {}
    for name in conditions:
        entry = per_condition.setdefault(conditions[name], {'images': 0, 'in_hard_split': 0})
        entry['images'] += 1
        entry['in_hard_split'] += name in hard
    for entry in per_condition.values():
        entry['fraction_in_hard_split'] = round(entry['in_hard_split'] / entry['images'], 3)
    return {
        'precision': round(hit / len(hard), 3) if hard else None,
        'recall': round(hit / len(truly_hard), 3) if truly_hard else None,
        'auroc': auroc([r['score'] for r in ranking], [r['name'] in truly_hard for r in ranking]),
        'hard_split_size': len(hard), 'truly_hard': len(truly_hard), 'by_condition': per_condition,
    }


def auroc(scores, positives):
    """Probability that a hard image scores above a normal one (ties count half)."""
    scores, positives = np.asarray(scores, np.float64), np.asarray(positives, bool)
    pos, neg = scores[positives], scores[~positives]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return round(float(greater / (len(pos) * len(neg))), 3)


def ranking_quality(rank_dir, data):
    """The hard split against the generator's flags, and the pseudo-labels of both splits
    against the generated target-train labels: measured after the ranking, never used by it."""
    return (split_quality(rank_dir, data['manifest']),
            pseudo_label_quality(rank_dir, Path(data['target_root']) / 'gtFine' / 'train'))


def run_demo(out, seed=0, quick=False, original_sgd=True, ablation=False, command='python -m intrada.demo',
             selection='miou', jobs=1):
    """All the runs of one seed in `out`: results.json, report.md and the figures; returns the results.
    selection: the TEST.SELECTION that picks every run's snapshot (stage 2's input included);
    jobs: how many runs at the same time (the numbers do not depend on it, see jobs.py)."""
    settings = SETTINGS['quick' if quick else 'full']
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    print_line(f'== generating the synthetic benchmark in {out / "data"}')
    data = generate_benchmark(out / 'data', seed=seed, n_source=settings['n_source'],
                              n_target_train=settings['n_target_train'], n_target_val=settings['n_target_val'],
                              size=settings['size'], workers=jobs)

    snapshots, configs, rank_dir = out / 'snapshots', out / 'configs', out / 'entropy_rank'
    ablation_ranks = {'self_training': out / 'entropy_rank_self_training', 'intrada_norm': out / 'entropy_rank_norm'}
    for stale in (snapshots, configs, rank_dir, *ablation_ranks.values()):  # earlier runs' outputs, not the data
        shutil.rmtree(stale, ignore_errors=True)
    base = base_config(data, snapshots, settings, seed, original_sgd)
    base['TEST']['SELECTION'] = selection
    warmup, adapt, intra, last_k = settings['warmup'], settings['adapt'], settings['intra'], settings['last_k']
    warm_snapshot = snapshots / 'warmup' / f'model_{warmup}.pth'
    warmup_run = with_run(base, 'warmup', 'SourceOnly', warmup)
    warmup_run['TRAIN']['SAVE_PRED_EVERY'] = warmup  # its last snapshot is all the others need
    cfgs = {name: write_config(configs / f'{name}.yml', cfg) for name, cfg in {
        'warmup': warmup_run,
        'source_only': with_run(base, 'source_only', 'SourceOnly', adapt, warm_snapshot),
        'bn_only': with_run(base, 'bn_only', 'BNOnly', adapt, warm_snapshot),
        'advent': with_run(base, 'advent', 'AdvEnt', adapt, warm_snapshot),
    }.items()}
    results, picks = {}, {}

    total_steps = 12 + (6 if ablation else 0)  # a run: training and evaluation; the warm-up, a ranking: one step
    with Stages(out, jobs, total_steps) as stages:
        def start(name):
            return stages.start(name, run_steps(name, cfgs[name]))

        def finish(job):
            stages.finish(job)
            results[job.name], picks[job.name] = run_result(cfgs[job.name], last_k)

        # Started in the order of the longest chain (warm-up -> AdvEnt -> stage 2 -> IntraDA),
        # so that a free worker always takes the run the others wait for.
        stages.finish(stages.start('warmup', run_steps('warmup', cfgs['warmup'], evaluate=False)))
        advent_job, source_only, bn_only = start('advent'), start('source_only'), start('bn_only')
        finish(advent_job)
        advent, best = results['advent']['checkpoint'], results['advent']['best_iter']
        stages.finish(stages.start('stage 2 ranking',
                                   ranking_steps('stage 2 ranking', cfgs['advent'], best, LAMBDA1, False, rank_dir)))
        cfgs['intrada'] = write_config(configs / 'intrada.yml',
                                       stage3_config(base, 'intrada', intra, advent, rank_dir, data))
        cfgs['advent_continued'] = write_config(configs / 'advent_continued.yml',
                                                with_run(base, 'advent_continued', 'AdvEnt', intra, advent))
        later = [start('intrada'), start('advent_continued')]
        results['split'], results['pseudo_labels'] = ranking_quality(rank_dir, data)

        if ablation:
            rankings = [stages.start(name, ranking_steps(name, cfgs['advent'], best, lambda1, normalize,
                                                         ablation_ranks[key]))
                        for name, key, lambda1, normalize in (
                            ('self-training ranking', 'self_training', SELF_TRAINING_LAMBDA1, False),
                            ('normalised ranking', 'intrada_norm', LAMBDA1, True))]
            for job in rankings:
                stages.finish(job)
            cfgs['self_training'] = write_config(configs / 'self_training.yml', self_training_config(
                base, intra, advent, ablation_ranks['self_training']))
            cfgs['intrada_norm'] = write_config(configs / 'intrada_norm.yml', stage3_config(
                base, 'intrada_norm', intra, advent, ablation_ranks['intrada_norm'], data))
            later += [start('self_training'), start('intrada_norm')]
            results['split_norm'], results['pseudo_labels_norm'] = ranking_quality(ablation_ranks['intrada_norm'],
                                                                                   data)
        for job in (source_only, bn_only, *later):
            finish(job)
    seconds = {'data': round(data['seconds'], 1), **stages.seconds}

    figures_started = time.time()
    rows = present_rows(results)
    summary_figure([(title, results[key]['mIoU'], None) for key, title in rows],
                   f'mIoU (percent) on the target val set, best snapshot; seed {seed}', out / 'summary.png')
    qualitative_figure(cfgs['advent'], [(f'{title}\niter {results[key]["best_iter"]}', results[key]['checkpoint'])
                                        for key, title in rows if key != 'bn_only'], out / 'qualitative.png')
    easy_hard_figure(cfgs['advent'], advent, f'AdvEnt (stage 1, iter {best})', rank_dir, data['manifest'],
                     out / 'easy_hard.png')
    seconds['figures'] = round(time.time() - figures_started, 1)
    seconds['total'] = round(time.time() - started, 1)
    results['seconds'] = seconds
    results['jobs'] = jobs
    results['settings'] = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    results['seed'] = seed
    results['original_sgd'] = original_sgd
    results['selection'] = {key: picks[key] for key, _ in rows}
    json_dump(results, out / 'results.json')
    write_report(out, results, settings, command, LAMBDA1, report_section(results['selection'], selection))
    return results
