"""Speed benchmark: this project's evaluation, ranking and training against the original's way.

    python benchmarks/run.py                 # full sizes (meant for a GPU: a few minutes on an H100)
    python benchmarks/run.py --quick         # about two minutes on 2 CPU cores
    python benchmarks/run.py --json OUT.json # also write the figures as JSON

Everything runs on random inputs with the real DeepLabv2 ResNet-101 (`get_deeplab_v2()`; --model
picks a reduced variant, which only checks the plumbing), on the machine at hand (CUDA when
present, else the CPU). Each measurement runs "ours"
(the project's own functions) and a baseline that does the same work the original's way,
in the same process, and reports ours / baseline:

- eval: images/s of the evaluation, input 1024x512, output 2048x1024.
    ours: advent.domain_adaptation.eval_UDA.confusion_matrix (upsampling, argmax and counts
    on the device); baseline: ADVENT's loop (fp32 score map to the host with .cpu().numpy(),
    np.argmax over the channels, fast_hist). Both must give the same confusion matrix.
- rank: images/s of the entropy ranking at 1024x512, with normalisation (the original
    always normalised: its --normalize flag read 'False' as true).
    ours: entropy_rank.ranking.rank_target_images without the overview figure, which the
    original does not draw (device-side argmax / entropy / rare classes, PNGs written by a
    thread pool); baseline: IntraDA's entropy.py loop (find_rare_class and colorize_save on
    host numpy copies, PNGs saved in line). The same outputs on both sides (pseudo-labels and
    splits); both must give the same split.
- rank_overview: the cost of stage 2's overview figure (ranking_overview.png, drawn from the
    images kept while ranking): images/s of ours' ranking with the figure ("ours") against
    the same ranking without it ("baseline").
- train: iterations/s of AdvEnt training (segmenter and both discriminators, GTA5 1280x720 +
    Cityscapes 1024x512 batches of one).
    ours: train_UDA with TRAIN.AMP bf16, TRAIN.CHANNELS_LAST, TRAIN.CUDNN_BENCHMARK and
    ALLOW_TF32 on a GPU; on the CPU the default fp32 path (bf16 is emulated and slow on most
    CPUs), so there the ratio only shows the noise (--train-amp, --train-channels-last and
    --train-tf32 choose otherwise); baseline: the faithful strict-fp32 path of the same loop.
- eval_postprocess, rank_postprocess: images/s of only the work after the forward pass (the
    part the two sides do differently), on fixed scores: on a CPU the forward pass takes
    seconds and its noise drowns the difference in the end-to-end figures.
- eval_memory, rank_memory, train_memory: peak memory of each side. On a GPU the peak of
    torch.cuda.max_memory_allocated; on the CPU the peak resident set size of the process
    sampled every 5 ms while that side runs (it includes the model, the PyTorch runtime and
    whatever the allocator kept from before, so it is only a rough figure).

Evaluation and ranking run both sides in strict fp32 (TF32 off, the faithful default);
`precision` in the JSON records the TF32 setting every side ran with. The baseline loops
are in benchmarks/original_way.py; every figure is taken by benchmarks/measure.py's
`measure` (the clock stops when the device has finished).

Evaluation and ranking run `--rounds` rounds of each side, alternating, and count the
fastest; training runs each side once and counts its fastest iteration after the warm-up
ones. On a busy machine (other processes on the same cores) the figures are noisy all
the same.

--quick runs fewer images and iterations and, on the CPU, every size at a quarter of its
width and height (--scale, --train-scale); the sizes used are in the output.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from advent.dataset.loader import build_train_loader  # noqa: E402
from advent.domain_adaptation import eval_UDA, train_UDA  # noqa: E402
from advent.domain_adaptation.config import default_config  # noqa: E402
from advent.model.deeplabv2 import MODEL_VARIANTS, get_deeplab_v2  # noqa: E402
from advent.utils.func import prob_2_entropy  # noqa: E402
from advent.utils.precision import fp32_precision, numeric_settings  # noqa: E402
from benchmarks import original_way  # noqa: E402
from benchmarks.measure import (NUM_CLASSES, RandomImages, compare, loader_for, measure, memory_unit,  # noqa: E402
                                peaks, rates, ratio)
from entropy_rank import ranking  # noqa: E402

EVAL_INPUT, EVAL_OUTPUT = (1024, 512), (2048, 1024)     # (width, height)
RANK_INPUT = (1024, 512)
TRAIN_SOURCE, TRAIN_TARGET = (1280, 720), (1024, 512)
EVAL_RANK_TF32 = False  # both sides of eval and rank: the faithful strict fp32


def upsampler(size_wh):
    return nn.Upsample(size=(size_wh[1], size_wh[0]), mode='bilinear', align_corners=True)


# ------------------------------------------------------------------ evaluation

def ours_eval_post(pred_main, label, interp, device):
    """eval_UDA.confusion_matrix's work after the forward pass, with its own functions."""
    hist = torch.zeros(NUM_CLASSES * NUM_CLASSES + 1, dtype=torch.int64, device=device)
    label = label.to(device, non_blocking=True)
    with torch.no_grad():
        prediction = eval_UDA.argmax_channels(interp(pred_main))
    eval_UDA.accumulate_hist(hist, label, prediction, NUM_CLASSES)
    return hist[:-1].view(NUM_CLASSES, NUM_CLASSES).cpu().numpy()


def bench_eval(model, device, args, sizes):
    interp = upsampler(sizes['eval_output'])

    def ours(dataset, workers):
        return eval_UDA.confusion_matrix([model], [1.0], loader_for(dataset, device, workers), NUM_CLASSES, device,
                                         interp, True)

    def baseline(dataset, workers):
        return original_way.evaluate(model, loader_for(dataset, device, workers), device, interp)

    warm = RandomImages(args.warmup, sizes['eval_input'], sizes['eval_output'], seed=1)
    ours(warm, 0)
    baseline(warm, 0)
    dataset = RandomImages(args.eval_images, sizes['eval_input'], sizes['eval_output'], seed=2)
    sides = compare(lambda: ours(dataset, args.workers), lambda: baseline(dataset, args.workers), args.rounds,
                    device)
    return (rates(sides, args.eval_images, 'images/s'), peaks(sides, device),
            bool(np.array_equal(sides['ours'].result, sides['baseline'].result)))


def bench_eval_post(model, device, args, sizes, reps=3):
    """Only the work after the forward pass (the part the two sides do differently), on
    one image's scores, `reps` times: a figure the noise of the forward pass does not drown."""
    interp = upsampler(sizes['eval_output'])
    items = RandomImages(1, sizes['eval_input'], sizes['eval_output'], seed=7)
    label = torch.from_numpy(items.labels[0])[None]
    with torch.no_grad():
        pred_main = model(torch.from_numpy(items.images[0])[None].to(device))[1]
    same = np.array_equal(ours_eval_post(pred_main, label, interp, device),
                          original_way.evaluation_after_forward(pred_main, label, interp))
    sides = compare(lambda: [ours_eval_post(pred_main, label, interp, device) for _ in range(reps)],
                    lambda: [original_way.evaluation_after_forward(pred_main, label, interp) for _ in range(reps)],
                    max(2, args.rounds), device)
    return rates(sides, reps, 'images/s'), same


# ------------------------------------------------------------------ ranking

def fresh_dirs(root):
    """A function giving a new empty folder under root at every call (a ranking per folder)."""
    numbers = iter(range(10 ** 6))

    def fresh(side):
        path = Path(root) / f'{side}{next(numbers)}'
        path.mkdir()
        return path
    return fresh


def ours_rank(model, size, device, out_dir, workers, dataset, overview=False):
    """ranking.rank_target_images with normalisation and lambda1 0.67; the split."""
    easy, hard, _ = ranking.rank_target_images(model, dataset, size, device, out_dir, True, 0.67, workers,
                                               overview=overview)
    return easy, hard


def bench_rank(model, device, args, sizes):
    size = sizes['rank_input']
    interp = upsampler(size)
    with tempfile.TemporaryDirectory(prefix='intrada-bench-') as tmp:
        out_dir = fresh_dirs(tmp)

        def ours(dataset, workers):
            return ours_rank(model, size, device, out_dir('ours'), workers, dataset)

        def baseline(dataset, workers):
            return original_way.rank(model, loader_for(dataset, device, workers), device, interp, out_dir('baseline'))

        warm = RandomImages(args.warmup, size, size, ignore_only=True, seed=3)
        ours(warm, 0)
        baseline(warm, 0)
        dataset = RandomImages(args.rank_images, size, size, ignore_only=True, seed=4)
        sides = compare(lambda: ours(dataset, args.workers), lambda: baseline(dataset, args.workers), args.rounds,
                        device)
    return (rates(sides, args.rank_images, 'images/s'), peaks(sides, device),
            sides['ours'].result == sides['baseline'].result)


def bench_rank_overview(model, device, args, sizes):
    """Ours' ranking with the overview figure against without it, on warm models."""
    size = sizes['rank_input']
    dataset = RandomImages(args.rank_images, size, size, ignore_only=True, seed=4)
    with tempfile.TemporaryDirectory(prefix='intrada-bench-') as tmp:
        out_dir = fresh_dirs(tmp)
        sides = compare(lambda: ours_rank(model, size, device, out_dir('figure'), args.workers, dataset, True),
                        lambda: ours_rank(model, size, device, out_dir('plain'), args.workers, dataset),
                        args.rounds, device)
    return rates(sides, args.rank_images, 'images/s')


def ours_rank_post(pred_mains, names, interp, out_dir):
    """ranking._rank_into's work after the forward passes, with its own functions: results
    copied to the host without blocking, PNGs written by the thread pool."""
    records, pending = [], None
    with ranking.ImageWriter() as writer:
        for pred, name in zip(pred_mains, names):
            with torch.no_grad():
                pred_main = interp(pred)
                mean_entropy = prob_2_entropy(F.softmax(pred_main, dim=1)).mean()
                prediction = eval_UDA.argmax_channels(pred_main)[0].to(torch.uint8)
                rare = ranking.rare_class_count(prediction)
            current = ranking._HostCopy(name, mean_entropy, prediction, rare)
            if pending is not None:
                ranking._finish_image(pending, records, writer, out_dir)
            pending = current
        ranking._finish_image(pending, records, writer, out_dir)
    return [r['score'] for r in records]


def bench_rank_post(model, device, args, sizes, reps=3):
    """Only the work after the forward pass, on `reps` images' scores (see bench_eval_post)."""
    size = sizes['rank_input']
    interp = upsampler(size)
    items = RandomImages(reps, size, size, ignore_only=True, distinct=reps, seed=8)
    with torch.no_grad():
        preds = [model(torch.from_numpy(image)[None].to(device))[1] for image in items.images]
    names = [items[k][3] for k in range(reps)]
    with tempfile.TemporaryDirectory(prefix='intrada-bench-') as tmp:
        ours_dir, base_dir = Path(tmp) / 'ours', Path(tmp) / 'baseline'
        ours_dir.mkdir()
        base_dir.mkdir()

        def ours():
            return ours_rank_post(preds, names, interp, ours_dir)

        def baseline():
            return [original_way.ranking_after_forward(p, n, interp, base_dir) for p, n in zip(preds, names)]

        same = ours() == baseline()
        sides = compare(ours, baseline, max(2, args.rounds), device)
    return rates(sides, reps, 'images/s'), same


# ------------------------------------------------------------------ training

BASELINE_TRAINING = {'amp': '', 'channels_last': False, 'cudnn_benchmark': False, 'allow_tf32': False}


def train_cfg(sizes, iterations, snapshot_dir, device, amp='', channels_last=False, cudnn_benchmark=False,
              allow_tf32=False, model='DeepLabv2'):
    cfg = default_config()
    cfg.GPU_ID = -1 if device.type == 'cpu' else (device.index or 0)
    cfg.ALLOW_TF32 = allow_tf32
    cfg.TRAIN.update(MODEL=model, INPUT_SIZE_SOURCE=list(sizes['train_source']),
                     INPUT_SIZE_TARGET=list(sizes['train_target']), MAX_ITERS=100000, EARLY_STOP=iterations - 1,
                     SAVE_PRED_EVERY=10 ** 9, SNAPSHOT_DIR=str(snapshot_dir), TENSORBOARD_LOGDIR='',
                     AMP=amp, CHANNELS_LAST=channels_last, CUDNN_BENCHMARK=cudnn_benchmark)
    return cfg


def run_training(device, sizes, warmup, iterations, settings, model_name):
    """Seconds of the fastest iteration after `warmup` iterations, the peak memory of the
    run and every iteration's seconds."""
    source = RandomImages(warmup + iterations, sizes['train_source'], sizes['train_source'], seed=5)
    target = RandomImages(warmup + iterations, sizes['train_target'], sizes['train_target'], ignore_only=True,
                          seed=6)
    stamps = []  # when each iteration fetches its source batch (the previous one has synchronised)
    source.on_item = lambda index: stamps.append(time.perf_counter())
    torch.manual_seed(0)
    model = get_deeplab_v2(NUM_CLASSES, True, model_name)
    with tempfile.TemporaryDirectory(prefix='intrada-bench-') as tmp:
        cfg = train_cfg(sizes, warmup + iterations, tmp, device, model=model_name, **settings)
        torch.manual_seed(0)
        timing = measure(lambda: train_UDA.train_domain_adaptation(model, build_train_loader(source, 1, 0),
                                                                   build_train_loader(target, 1, 0), cfg), device)
    del model
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    stamps.append(timing.end)
    seconds = [round(b - a, 3) for a, b in zip(stamps, stamps[1:])]
    return min(seconds[warmup:]), timing.peak, seconds


def ours_training_settings(device, args):
    gpu = device.type == 'cuda'
    settings = {'amp': 'bf16' if gpu else '', 'channels_last': gpu, 'cudnn_benchmark': gpu, 'allow_tf32': gpu}
    if args.train_amp is not None:
        settings['amp'] = '' if args.train_amp == 'fp32' else args.train_amp
    if args.train_channels_last is not None:
        settings['channels_last'] = args.train_channels_last
    if args.train_tf32 is not None:
        settings['allow_tf32'] = args.train_tf32
    return settings


def bench_train(device, args, sizes):
    ours_settings = ours_training_settings(device, args)
    warmup = max(1, args.warmup)
    baseline_s, baseline_peak, baseline_all = run_training(device, sizes, warmup, args.train_iters,
                                                           BASELINE_TRAINING, args.model)
    ours_s, ours_peak, ours_all = run_training(device, sizes, warmup, args.train_iters, ours_settings, args.model)
    return (ratio(1 / ours_s, 1 / baseline_s, 'iterations/s'),
            ratio(ours_peak, baseline_peak, memory_unit(device)), ours_settings,
            {'ours': ours_all, 'baseline': baseline_all})


# ------------------------------------------------------------------ report

def machine_info(device):
    info = {'device': str(device), 'python': platform.python_version(), 'torch': torch.__version__,
            'numpy': np.__version__, 'pillow': Image.__version__, 'platform': platform.platform(),
            'cpu': _cpu_name(), 'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads()}
    if device.type == 'cuda':
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(),
                    gpu_memory_gib=round(torch.cuda.get_device_properties(device).total_memory / 2 ** 30, 1))
    return info


def _cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def scaled(size, scale):
    return [max(64, int(round(side * scale))) for side in size]


def true_or_false(text):
    return text.lower() in ('1', 'true', 'yes')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='a short run (about two minutes on 2 CPU cores)')
    parser.add_argument('--json', metavar='OUT', help='write the figures to this JSON file')
    parser.add_argument('--device', choices=('cuda', 'cpu'), help='default: cuda when available')
    parser.add_argument('--model', default='DeepLabv2', choices=sorted(MODEL_VARIANTS),
                        help='segmenter (default DeepLabv2, ResNet-101; the reduced ones only check the plumbing)')
    parser.add_argument('--only', default='eval,rank,train', help='comma-separated subset of eval,rank,train')
    parser.add_argument('--scale', type=float, help='size factor for every image (default 1; 0.25 for --quick '
                                                    'on the CPU)')
    parser.add_argument('--train-scale', type=float, help='size factor for training (default: --scale)')
    parser.add_argument('--eval-images', type=int)
    parser.add_argument('--rank-images', type=int)
    parser.add_argument('--train-iters', type=int)
    parser.add_argument('--warmup', type=int, help='warm-up images / iterations before each measurement')
    parser.add_argument('--rounds', type=int, default=2,
                        help='eval and rank: rounds of each side, alternating; the fastest counts (default 2)')
    parser.add_argument('--workers', type=int, help='data-loader workers (default 2 on a GPU, 0 on the CPU)')
    parser.add_argument('--train-amp', choices=('fp32', 'bf16', 'fp16'), help="ours' training precision")
    parser.add_argument('--train-channels-last', type=true_or_false, help="ours' channels_last (true/false)")
    parser.add_argument('--train-tf32', type=true_or_false, help="ours' ALLOW_TF32 (true/false; default: true on "
                                                               "a GPU)")
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA GPU is available')
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    gpu = device.type == 'cuda'
    if args.quick:
        defaults = dict(scale=1.0 if gpu else 0.25, eval_images=4 if gpu else 2, rank_images=4 if gpu else 2,
                        train_iters=3 if gpu else 2, warmup=1)
    else:
        defaults = dict(scale=1.0, eval_images=20, rank_images=20, train_iters=10, warmup=2)
    defaults['workers'] = 2 if gpu else 0
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.train_scale is None:
        args.train_scale = args.scale
    args.only = [part.strip() for part in args.only.split(',') if part.strip()]
    unknown = set(args.only) - {'eval', 'rank', 'train'}
    if unknown:
        parser.error(f'--only: unknown part(s) {sorted(unknown)}')
    return args, device


def main(argv=None):
    args, device = parse_args(argv)
    sizes = {'eval_input': scaled(EVAL_INPUT, args.scale), 'eval_output': scaled(EVAL_OUTPUT, args.scale),
             'rank_input': scaled(RANK_INPUT, args.scale), 'train_source': scaled(TRAIN_SOURCE, args.train_scale),
             'train_target': scaled(TRAIN_TARGET, args.train_scale)}
    report = {'device': str(device), 'versions': machine_info(device),
              'command': ' '.join(['python', 'benchmarks/run.py', *sys.argv[1:]]) if argv is None else None,
              'settings': {'model': args.model, 'quick': args.quick, 'scale': args.scale, 'train_scale': args.train_scale,
                           'sizes_wh': sizes,
                           'eval_images': args.eval_images, 'rank_images': args.rank_images,
                           'train_iters': args.train_iters, 'warmup': args.warmup, 'workers': args.workers,
                           'rounds': args.rounds},
              'precision': {}, 'checks': {}}
    print(f'device {device} ({report["versions"].get("gpu", report["versions"]["cpu"])}), torch {torch.__version__}, '
          f'sizes {sizes}', flush=True)
    started = time.perf_counter()
    if 'eval' in args.only or 'rank' in args.only:
        torch.manual_seed(0)
        model = get_deeplab_v2(NUM_CLASSES, True, args.model).eval().to(device)
        with numeric_settings(EVAL_RANK_TF32):
            for part, whole, post, whole_check, post_check in (
                    ('eval', bench_eval, bench_eval_post, 'same_confusion_matrix', 'postprocess_same_confusion_matrix'),
                    ('rank', bench_rank, bench_rank_post, 'same_split', 'postprocess_same_scores')):
                if part not in args.only:
                    continue
                report[part], report[f'{part}_memory'], report['checks'][f'{part}_{whole_check}'] = \
                    whole(model, device, args, sizes)
                _print(part, report[part], report[f'{part}_memory'])
                report[f'{part}_postprocess'], report['checks'][f'{part}_{post_check}'] = \
                    post(model, device, args, sizes)
                _print('  after the forward pass', report[f'{part}_postprocess'])
            if 'rank' in args.only:
                report['rank_overview'] = bench_rank_overview(model, device, args, sizes)
                _print('  with the overview figure (ours) / without (baseline)', report['rank_overview'])
        for part in ('eval', 'rank'):
            if part in args.only:
                report['precision'][part] = {side: fp32_precision(EVAL_RANK_TF32) for side in ('ours', 'baseline')}
        del model
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    if 'train' in args.only:
        report['train'], report['train_memory'], settings, seconds = bench_train(device, args, sizes)
        report['settings']['train_ours'] = settings
        report['settings']['train_baseline'] = BASELINE_TRAINING
        report['precision']['train'] = {'ours': fp32_precision(settings['allow_tf32']),
                                        'baseline': fp32_precision(BASELINE_TRAINING['allow_tf32'])}
        report['train_iteration_seconds'] = seconds  # warm-up iterations included
        _print('train', report['train'], report['train_memory'])
        print(f'      ours: {settings}; baseline: {BASELINE_TRAINING}', flush=True)
    report['seconds'] = round(time.perf_counter() - started, 1)
    print(f'fp32 arithmetic (ieee = strict, tf32 = TF32 allowed): {report["precision"]}', flush=True)
    print(f'checks: {report["checks"]}; {report["seconds"]} s', flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + '\n')
        print(f'wrote {args.json}')
    if not all(report['checks'].values()):
        print('warning: ours and the baseline disagree (see checks)', file=sys.stderr)
    return report


def _print(name, speed, memory=None):
    line = f'{name:5s} ours {speed["ours"]:.4g} {speed["unit"]}, baseline {speed["baseline"]:.4g} -> x{speed["ratio"]}'
    if memory is not None:
        line += (f'; peak memory ours {memory["ours"]:.0f} MiB, baseline {memory["baseline"]:.0f} MiB '
                 f'-> x{memory["ratio"]}')
    print(line, flush=True)


if __name__ == '__main__':
    main()
