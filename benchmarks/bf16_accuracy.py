"""What bf16 training costs in accuracy: AdvEnt (stage 1) on the built-in synthetic benchmark,
the faithful fp32 path against TRAIN.AMP bf16, over several seeds.

    python benchmarks/bf16_accuracy.py OUT_DIR            # 3 seeds, a short schedule (meant for a GPU)
    python benchmarks/bf16_accuracy.py OUT_DIR --tiny     # seconds on a CPU: checks the plumbing only

The scenes come from the demo's generator (`intrada.demo.synthetic.generate_benchmark`, the
`python -m intrada.synthetic` command's; data seed 0, the same for every run).
Each seed trains DeepLabv2-tiny from scratch with TRAIN.RANDOM_SEED 1234 + seed, once in
fp32 (strict: ALLOW_TF32 off) and once with bf16 autocast (the rest of the config equal),
and evaluates every snapshot on the generated val set with the project's best mode. The
figure per run is the mIoU (percent, 19 classes) of its best snapshot and of its last one.
OUT_DIR/bf16_accuracy.json is rewritten after every run, so a run cut short keeps what it
finished; the summary (mean and sample standard deviation over the seeds, and every
seed's figures) is printed last.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from intrada.demo.aggregate import mean_sd  # noqa: E402
from intrada.demo.jobs import Stages  # noqa: E402
from intrada.demo.stages import base_config, run_result, run_steps, with_run, write_config  # noqa: E402
from intrada.demo.synthetic import generate_benchmark  # noqa: E402

SCHEDULES = {
    # scenes, image size (w, h), batch, iterations, snapshot every
    'short': dict(n_source=600, n_target_train=400, n_target_val=300, size=(128, 64), batch=4, iterations=400,
                  every=100),
    'tiny': dict(n_source=6, n_target_train=4, n_target_val=3, size=(64, 32), batch=1, iterations=2, every=1),
}
PRECISIONS = {'fp32': '', 'bf16': 'bf16'}
MODEL = 'DeepLabv2-tiny'


def run_config(scenes, out, schedule, seed, amp, device):
    """The demo's config (its learning rate, seed 1234 + seed, best-mode evaluation) for one
    AdvEnt run of schedule['iterations'], strict fp32 or TRAIN.AMP amp, on device."""
    settings = dict(size=schedule['size'], batch=schedule['batch'], every=schedule['every'], model=MODEL)
    base = base_config(scenes, out / 'snapshots', settings, seed, max_iters=4 * schedule['iterations'],
                       train={'AMP': amp})
    return with_run(base, f'seed{seed}_{amp or "fp32"}', 'AdvEnt', schedule['iterations'],
                    NUM_WORKERS=2 if device == 'cuda' else 0, GPU_ID=0 if device == 'cuda' else -1,
                    ALLOW_TF32=False)


def summarise(report):
    summary = {}
    for precision in PRECISIONS:
        runs = [r for r in report['runs'] if r['precision'] == precision]
        if runs:
            summary[precision] = {'seeds': [r['seed'] for r in runs],
                                  'best_mIoU': mean_sd([r['best_mIoU'] for r in runs]),
                                  'last_mIoU': mean_sd([r['last_mIoU'] for r in runs])}
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
    scenes = generate_benchmark(out / 'scenes', seed=0, n_source=schedule['n_source'],
                                n_target_train=schedule['n_target_train'], n_target_val=schedule['n_target_val'],
                                size=schedule['size'], workers=max(1, min(8, os.cpu_count() or 1)))
    report = {'device': device, 'schedule': schedule, 'torch': torch.__version__, 'runs': []}
    if device == 'cuda':
        report['gpu'] = torch.cuda.get_device_name(0)
    with Stages(out) as stages:  # the scripts' output in out/logs/
        for seed in range(args.seeds):
            for precision, amp in PRECISIONS.items():
                name = f'seed{seed}_{precision}'
                config_path = write_config(out / 'configs' / f'{name}.yml',
                                           run_config(scenes, out, schedule, seed, amp, device))
                start = time.time()
                stages.finish(stages.start(name, run_steps(name, config_path)))
                result, _ = run_result(config_path, last_k=1)
                best, last = result['mIoU'], result['mIoU_last_mean']  # the best snapshot's, the last one's
                report['runs'].append({'seed': seed, 'precision': precision, 'best_mIoU': best, 'last_mIoU': last,
                                       'seconds': round(time.time() - start, 1)})
                (out / 'bf16_accuracy.json').write_text(json.dumps(summarise(report), indent=1) + '\n')
                print(f'seed {seed} {precision}: best mIoU {best}, last {last}', flush=True)
    print_summary(report)
    return report


if __name__ == '__main__':
    main()
