"""What bf16 training costs in accuracy: AdvEnt (stage 1) on the built-in synthetic benchmark,
the faithful fp32 path against TRAIN.AMP bf16, over several seeds.

    python benchmarks/bf16_accuracy.py OUT_DIR            # 3 seeds, a short schedule (meant for a GPU)
    python benchmarks/bf16_accuracy.py OUT_DIR --tiny     # seconds on a CPU: checks the plumbing only

The scenes come from `python -m intrada.synthetic` (data seed 0, the same for every run).
Each seed trains DeepLabv2-tiny from scratch with TRAIN.RANDOM_SEED 1234 + seed, once in
fp32 (strict: ALLOW_TF32 off) and once with bf16 autocast (the rest of the config equal),
and evaluates every snapshot on the generated val set with the project's best mode. The
figure per run is the mIoU (percent, 19 classes) of its best snapshot and of its last one.
OUT_DIR/bf16_accuracy.json is rewritten after every run, so a run cut short keeps what it
finished; the summary (mean and sample standard deviation over the seeds, and every
seed's figures) is printed last.
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from advent.cli import test_main as evaluation_main, train_main  # noqa: E402
from advent.domain_adaptation.config import finalize_paths, load_config  # noqa: E402
from advent.domain_adaptation.eval_UDA import load_results_cache, miou_percent  # noqa: E402

SCHEDULES = {
    # scenes, image size (w, h), batch, iterations, snapshot every
    'short': dict(n_source=600, n_target_train=400, n_target_val=300, size=(128, 64), batch=4, iterations=400,
                  every=100),
    'tiny': dict(n_source=6, n_target_train=4, n_target_val=3, size=(64, 32), batch=1, iterations=2, every=1),
}
PRECISIONS = {'fp32': '', 'bf16': 'bf16'}
LEARNING_RATE = 2.5e-3  # from scratch, the reduced model needs more than the published 2.5e-4


def generate_scenes(out, schedule):
    """The synthetic GTA5 / Cityscapes trees under out (the command reuses a complete tree)."""
    width, height = schedule['size']
    cmd = [sys.executable, '-m', 'intrada.synthetic', str(out), '--seed', '0',
           '--n-source', str(schedule['n_source']), '--n-target-train', str(schedule['n_target_train']),
           '--n-target-val', str(schedule['n_target_val']), '--size', str(width), str(height),
           '--workers', str(max(1, min(8, os.cpu_count() or 1)))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), os.environ.get('PYTHONPATH', '')]))
    subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return {'source_root': out / 'GTA5', 'source_list': out / 'GTA5' / '{}.txt',
            'target_root': out / 'Cityscapes', 'target_list': out / 'Cityscapes' / '{}.txt'}


def run_config(scenes, out, schedule, seed, amp, device):
    width, height = schedule['size']
    return {
        'SOURCE': 'GTA', 'TARGET': 'Cityscapes', 'NUM_WORKERS': 2 if device == 'cuda' else 0,
        'GPU_ID': 0 if device == 'cuda' else -1, 'ALLOW_TF32': False,
        'DATA_DIRECTORY_SOURCE': str(scenes['source_root']), 'DATA_LIST_SOURCE': str(scenes['source_list']),
        'DATA_DIRECTORY_TARGET': str(scenes['target_root']), 'DATA_LIST_TARGET': str(scenes['target_list']),
        'EXP_ROOT_SNAPSHOT': str(out / 'snapshots'), 'EXP_NAME': f'seed{seed}_{amp or "fp32"}',
        'TRAIN': {'MODEL': 'DeepLabv2-tiny', 'RESTORE_FROM': '', 'DA_METHOD': 'AdvEnt', 'AMP': amp,
                  'INPUT_SIZE_SOURCE': [width, height], 'INPUT_SIZE_TARGET': [width, height],
                  'BATCH_SIZE_SOURCE': schedule['batch'], 'BATCH_SIZE_TARGET': schedule['batch'],
                  'LEARNING_RATE': LEARNING_RATE, 'MAX_ITERS': 4 * schedule['iterations'],
                  'EARLY_STOP': schedule['iterations'], 'SAVE_PRED_EVERY': schedule['every'],
                  'RANDOM_SEED': 1234 + seed},
        'TEST': {'MODE': 'best', 'MODEL': ['DeepLabv2-tiny'], 'MULTI_LEVEL': [True],
                 'INPUT_SIZE_TARGET': [width, height], 'OUTPUT_SIZE_TARGET': [width, height],
                 'SNAPSHOT_STEP': schedule['every'], 'SNAPSHOT_MAXITER': schedule['iterations'],
                 'WAIT_MODEL': False},
    }


def train_and_evaluate(config_path, log_path):
    """Training, then best-mode evaluation, through the scripts' entry points; their output
    goes to log_path. Returns (best mIoU, mIoU of the last snapshot)."""
    with open(log_path, 'w') as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        for name, entry in (('training', train_main), ('evaluation', evaluation_main)):
            if entry(['--cfg', str(config_path)]) != 0:
                raise SystemExit(f'error: {name} of {config_path} failed; see {log_path}')
    cfg = finalize_paths(load_config(config_path))
    results = load_results_cache(cfg.TEST.SNAPSHOT_DIR[0])
    mious = {i: miou_percent(ious) for i, ious in results.items()}
    return max(mious.values()), mious[max(mious)]


def spread(values):
    """(mean, sample standard deviation) rounded to 2 decimals; sd None for one value."""
    sd = statistics.stdev(values) if len(values) > 1 else None
    return round(statistics.mean(values), 2), (None if sd is None else round(sd, 2))


def summarise(report):
    summary = {}
    for precision in PRECISIONS:
        runs = [r for r in report['runs'] if r['precision'] == precision]
        if runs:
            summary[precision] = {'seeds': [r['seed'] for r in runs],
                                  'best_mIoU': spread([r['best_mIoU'] for r in runs]),
                                  'last_mIoU': spread([r['last_mIoU'] for r in runs])}
    report['summary'] = summary
    return report


def print_summary(report):
    print(f'\nbf16 against fp32 (AdvEnt, DeepLabv2-tiny, {report["schedule"]["iterations"]} iterations, '
          f'{report["device"]}); mIoU percent, mean ± sd over seeds')
    for precision, s in report['summary'].items():
        best, last = (f'{mean} ± {"n/a" if sd is None else sd}' for mean, sd in (s['best_mIoU'], s['last_mIoU']))
        print(f'  {precision}: best snapshot {best}, last snapshot {last} (seeds {s["seeds"]})')
    for run in report['runs']:
        print(f'    seed {run["seed"]} {run["precision"]}: best {run["best_mIoU"]}, last {run["last_mIoU"]}, '
              f'{run["seconds"]} s')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out', help='output folder (scenes, configs, snapshots, logs, bf16_accuracy.json)')
    parser.add_argument('--seeds', type=int, default=3, help='training seeds 0..N-1 (default 3)')
    parser.add_argument('--tiny', action='store_true', help='a few images and iterations: the plumbing only')
    parser.add_argument('--device', choices=('cuda', 'cpu'), help='default: cuda when available')
    args = parser.parse_args(argv)
    import torch
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA GPU is available')
    if args.seeds < 1:
        parser.error(f'--seeds must be at least 1, got {args.seeds}')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    schedule = SCHEDULES['tiny' if args.tiny else 'short']
    out = Path(args.out).resolve()
    (out / 'configs').mkdir(parents=True, exist_ok=True)
    (out / 'logs').mkdir(exist_ok=True)
    scenes = generate_scenes(out / 'scenes', schedule)
    report = {'device': device, 'schedule': schedule, 'torch': torch.__version__, 'runs': []}
    if device == 'cuda':
        report['gpu'] = torch.cuda.get_device_name(0)
    for seed in range(args.seeds):
        for precision, amp in PRECISIONS.items():
            name = f'seed{seed}_{precision}'
            config_path = out / 'configs' / f'{name}.yml'
            config_path.write_text(json.dumps(run_config(scenes, out, schedule, seed, amp, device), indent=1))
            start = time.time()
            best, last = train_and_evaluate(config_path, out / 'logs' / f'{name}.log')
            report['runs'].append({'seed': seed, 'precision': precision, 'best_mIoU': best, 'last_mIoU': last,
                                   'seconds': round(time.time() - start, 1)})
            (out / 'bf16_accuracy.json').write_text(json.dumps(summarise(report), indent=1) + '\n')
            print(f'seed {seed} {precision}: best mIoU {best}, last {last}', flush=True)
    print_summary(report)
    return report


if __name__ == '__main__':
    main()
