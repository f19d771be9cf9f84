"""The run of the demo's stages: the real scripts' entry points with generated configs.

- a source-only baseline,
- a BatchNorm-only control (target images only pass through the network in train mode,
  so the batch statistics see them; no adaptation loss),
- stage 1 (AdvEnt) with best-snapshot selection,
- stage 2 (entropy ranking into easy and hard splits, pseudo-labels),
- stage 3 (IntraDA, easy -> hard), and every evaluation.

The control, the baseline and AdvEnt share their first iterations: the control and AdvEnt
continue the source-only run's snapshot at `warmup` iterations for `adapt` iterations,
while the baseline just goes on training on the source for as long. Every number in the
report is measured by the project's evaluation code on the generated val set.
"""
import contextlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from advent.cli import test_main, train_main
from advent.domain_adaptation.config import finalize_paths, load_config
from advent.domain_adaptation.eval_UDA import load_results_cache, miou_percent
from advent.utils.serialization import atomic_write_text, json_dump, json_load
from entropy_rank import entropy as entropy_script
from intrada.demo.report import easy_hard_figure, qualitative_figure, write_report
from intrada.demo.synthetic import generate_benchmark

# Benchmark and schedule. 'warmup' source-only iterations, then 'adapt' iterations of
# source-only / BN-only / AdvEnt from the same snapshot, then 'intra' IntraDA iterations.
SETTINGS = {
    'full': dict(n_source=600, n_target_train=400, n_target_val=300, size=(128, 64), batch=4,
                 warmup=500, adapt=200, intra=200, every=100, last_k=2, model='DeepLabv2-tiny'),
    'quick': dict(n_source=40, n_target_train=30, n_target_val=20, size=(128, 64), batch=2,
                  warmup=20, adapt=10, intra=10, every=10, last_k=1, model='DeepLabv2-tiny'),
}
LEARNING_RATE = 2.5e-3  # from scratch, a reduced model tolerates (and needs) more than 2.5e-4
LAMBDA1 = 0.67


def write_config(path, entries):
    """A YAML config (JSON is valid YAML, and keeps every path quoted)."""
    atomic_write_text(path, json.dumps(entries, indent=2) + '\n')
    return str(path)


def base_config(data, snapshots, settings, seed, original_sgd=True):
    width, height = settings['size']
    total = settings['warmup'] + settings['adapt'] + settings['intra']
    return {
        'SOURCE': 'GTA', 'TARGET': 'Cityscapes', 'NUM_WORKERS': 0,
        'DATA_DIRECTORY_SOURCE': data['source_root'], 'DATA_LIST_SOURCE': data['source_list'],
        'DATA_DIRECTORY_TARGET': data['target_root'], 'DATA_LIST_TARGET': data['target_list'],
        'EXP_ROOT_SNAPSHOT': str(snapshots),
        'TRAIN': {
            'MODEL': settings['model'], 'RESTORE_FROM': '',
            'INPUT_SIZE_SOURCE': [width, height], 'INPUT_SIZE_TARGET': [width, height],
            'BATCH_SIZE_SOURCE': settings['batch'], 'BATCH_SIZE_TARGET': settings['batch'],
            'LEARNING_RATE': LEARNING_RATE, 'MAX_ITERS': 4 * total,
            'SAVE_PRED_EVERY': settings['every'], 'RANDOM_SEED': 1234 + seed, 'ORIGINAL_SGD': original_sgd,
        },
        'TEST': {
            'MODE': 'best', 'MODEL': [settings['model']], 'MULTI_LEVEL': [True],
            'INPUT_SIZE_TARGET': [width, height], 'OUTPUT_SIZE_TARGET': [width, height],
            'SNAPSHOT_STEP': settings['every'], 'WAIT_MODEL': False,
        },
    }


def with_run(base, exp_name, method, iterations, restore_from='', **top_level):
    cfg = json.loads(json.dumps(base))
    cfg.update(top_level)
    cfg['EXP_NAME'] = exp_name
    cfg['TRAIN'].update({'DA_METHOD': method, 'EARLY_STOP': iterations, 'RESTORE_FROM': str(restore_from)})
    cfg['TEST']['SNAPSHOT_MAXITER'] = iterations
    return cfg


class Stages:
    """Runs the scripts' entry points with their output in DIR/logs/, timing each step."""

    def __init__(self, out):
        self.logs = out / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)
        self.seconds = {}

    def run(self, name, entry, argv):
        start = time.time()
        log = self.logs / f"{name.replace(' ', '_')}.log"
        print(f'-- {name}: {" ".join(argv)}  (log: {log})', flush=True)
        with open(log, 'w') as f, contextlib.redirect_stdout(f):
            status = entry(argv)
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.time() - start, 1)
        if status != 0:
            raise SystemExit(f'error: {name} failed (exit status {status}); see {log}')


def ranking_entry(argv):
    return entropy_script.run_guarded(entropy_script.main, entropy_script.get_arguments(argv))


def run_result(cfg_path, last_k):
    """mIoU of the best snapshot and the mean of the last ones, from the run's all_res.json."""
    cfg = finalize_paths(load_config(cfg_path))
    results = load_results_cache(cfg.TEST.SNAPSHOT_DIR[0])
    iterations = sorted(results)
    mious = {i: miou_percent(results[i]) for i in iterations}
    best = max(iterations, key=lambda i: (mious[i], -i))
    names = json_load(Path(cfg.TEST.SNAPSHOT_DIR[0]) / 'all_res.json')['class_names']
    return {
        'mIoU': mious[best], 'best_iter': best,
        'mIoU_last_mean': round(float(np.mean([mious[i] for i in iterations[-last_k:]])), 2),
        'mIoU_by_iter': {str(i): mious[i] for i in iterations},
        'per_class': {n: (None if np.isnan(v) else round(float(v) * 100, 2)) for n, v in zip(names, results[best])},
        'checkpoint': str(Path(cfg.TEST.SNAPSHOT_DIR[0]) / f'model_{best}.pth'),
    }


def split_quality(rank_dir, manifest_path):
    """How well the hard split matches the generator's hard-condition flag."""
    truly_hard = {n for n, v in json_load(manifest_path)['target_train'].items() if v['hard']}
    conditions = {n: v['condition'] for n, v in json_load(manifest_path)['target_train'].items()}
    hard = set((Path(rank_dir) / 'hard_split.txt').read_text().split())
    ranking = json_load(Path(rank_dir) / 'entropy_ranking.json')['ranking']
    hit = len(hard & truly_hard)
    per_condition = {}
    for name in conditions:
        entry = per_condition.setdefault(conditions[name], {'images': 0, 'in_hard_split': 0})
        entry['images'] += 1
        entry['in_hard_split'] += name in hard
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


def run_demo(out, seed=0, quick=False, args=None, original_sgd=True):
    settings = SETTINGS['quick' if quick else 'full']
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out)
    started = time.time()

    print(f'== generating the synthetic benchmark in {out / "data"}', flush=True)
    data = generate_benchmark(out / 'data', seed=seed, n_source=settings['n_source'],
                              n_target_train=settings['n_target_train'], n_target_val=settings['n_target_val'],
                              size=settings['size'])
    stages.seconds['data'] = round(data['seconds'], 1)

    snapshots, configs, rank_dir = out / 'snapshots', out / 'configs', out / 'entropy_rank'
    for stale in (snapshots, configs, rank_dir):  # earlier runs' outputs; the generated data is kept
        shutil.rmtree(stale, ignore_errors=True)
    base = base_config(data, snapshots, settings, seed, original_sgd)
    warmup, adapt, intra = settings['warmup'], settings['adapt'], settings['intra']
    source_only = write_config(configs / 'source_only.yml',
                               with_run(base, 'source_only', 'SourceOnly', warmup + adapt))
    warm_snapshot = snapshots / 'source_only' / f'model_{warmup}.pth'
    bn_only = write_config(configs / 'bn_only.yml', with_run(base, 'bn_only', 'BNOnly', adapt, warm_snapshot))
    advent = write_config(configs / 'advent.yml', with_run(base, 'advent', 'AdvEnt', adapt, warm_snapshot))

    for name, cfg in (('source_only', source_only), ('bn_only', bn_only), ('advent', advent)):
        stages.run(f'{name} train', train_main, ['--cfg', cfg])
        stages.run(f'{name} eval', test_main, ['--cfg', cfg])
    results = {name: run_result(cfg, settings['last_k'])
               for name, cfg in (('source_only', source_only), ('bn_only', bn_only), ('advent', advent))}

    best = results['advent']['best_iter']
    stages.run('stage 2 ranking', ranking_entry, ['--cfg', advent, '--best_iter', str(best), '--normalize', 'False',
                                                 '--lambda1', str(LAMBDA1), '--out-dir', str(rank_dir)])
    intrada_cfg = with_run(base, 'intrada', 'AdvEnt', intra, results['advent']['checkpoint'],
                           SOURCE='CityscapesEasy', TARGET='CityscapesHard',
                           DATA_LIST_SOURCE=str(rank_dir / 'easy_split.txt'),
                           DATA_LIST_TARGET=str(rank_dir / 'hard_split.txt'))
    intrada_cfg['TEST']['DATA_LIST_TARGET'] = data['target_list']
    intrada = write_config(configs / 'intrada.yml', intrada_cfg)
    stages.run('intrada train', train_main, ['--cfg', intrada])
    stages.run('intrada eval', test_main, ['--cfg', intrada])
    results['intrada'] = run_result(intrada, settings['last_k'])
    results['split'] = split_quality(rank_dir, data['manifest'])

    start = time.time()
    qualitative_figure(advent, results['advent']['checkpoint'], results['intrada']['checkpoint'],
                       out / 'qualitative.png')
    easy_hard_figure(advent, results['advent']['checkpoint'], rank_dir, data['manifest'], out / 'easy_hard.png')
    stages.seconds['figures'] = round(time.time() - start, 1)
    stages.seconds['total'] = round(time.time() - started, 1)
    results['seconds'] = stages.seconds
    results['settings'] = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    results['seed'] = seed
    results['original_sgd'] = original_sgd
    json_dump(results, out / 'results.json')
    write_report(out, results, settings, args, LAMBDA1)
    return results
