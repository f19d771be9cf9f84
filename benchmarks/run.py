"""Speed benchmark: this project's evaluation, ranking and training against the original's way.

    python benchmarks/run.py                 # full sizes (meant for a GPU: a few minutes on an H100)
    python benchmarks/run.py --quick         # about two minutes on 2 CPU cores
    python benchmarks/run.py --json OUT.json # also write the figures as JSON

Everything runs on random inputs with the real DeepLabv2 ResNet-101 (`get_deeplab_v2()`),
on the machine at hand (CUDA when present, else the CPU). Each measurement runs "ours"
(the project's own functions) and a baseline that does the same work the original's way,
in the same process, and reports ours / baseline:

- eval: images/s of the evaluation, input 1024x512, output 2048x1024.
    ours: advent.domain_adaptation.eval_UDA.confusion_matrix (upsampling, argmax and counts
    on the device); baseline: ADVENT's loop (fp32 score map to the host with .cpu().numpy(),
    np.argmax over the channels, fast_hist). Both must give the same confusion matrix.
- rank: images/s of the entropy ranking at 1024x512, with normalisation (the original
    always normalised: its --normalize flag read 'False' as true).
    ours: entropy_rank.ranking.rank_target_images (device-side argmax / entropy / rare
    classes, PNGs written by a thread pool); baseline: IntraDA's entropy.py loop
    (find_rare_class and colorize_save on host numpy copies, PNGs saved in line). Both must
    give the same split.
- train: iterations/s of AdvEnt training (segmenter and both discriminators, GTA5 1280x720 +
    Cityscapes 1024x512 batches of one).
    ours: train_UDA with TRAIN.AMP bf16, TRAIN.CHANNELS_LAST and TRAIN.CUDNN_BENCHMARK on a GPU;
    on the CPU the default fp32 path (bf16 is emulated and slow on most CPUs), so there the
    ratio only shows the noise (--train-amp / --train-channels-last choose otherwise);
    baseline: the faithful fp32 path of the same loop.
- eval_postprocess, rank_postprocess: images/s of only the work after the forward pass (the
    part the two sides do differently), on fixed scores: on a CPU the forward pass takes
    seconds and its noise drowns the difference in the end-to-end figures.
- eval_memory, rank_memory, train_memory: peak memory of each side. On a GPU the peak of
    torch.cuda.max_memory_allocated; on the CPU the peak resident set size of the process
    sampled every 5 ms while that side runs (it includes the model, the PyTorch runtime and
    whatever the allocator kept from before, so it is only a rough figure).

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
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils import data

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from advent.domain_adaptation import eval_UDA, train_UDA  # noqa: E402
from advent.domain_adaptation.config import default_config  # noqa: E402
from advent.dataset.loader import build_train_loader  # noqa: E402
from advent.model.deeplabv2 import get_deeplab_v2  # noqa: E402
from advent.utils.func import fast_hist, prob_2_entropy  # noqa: E402
from advent.utils.viz_segmask import colorize_mask  # noqa: E402
from entropy_rank import ranking  # noqa: E402

NUM_CLASSES = 19
EVAL_INPUT, EVAL_OUTPUT = (1024, 512), (2048, 1024)     # (width, height)
RANK_INPUT = (1024, 512)
TRAIN_SOURCE, TRAIN_TARGET = (1280, 720), (1024, 512)
RARE_CLASSES = ranking.RARE_CLASSES


# ------------------------------------------------------------------ synthetic data

class RandomImages(data.Dataset):
    """(image, label, shape, name) items like the datasets': a few distinct random images
    and label maps, repeated."""

    def __init__(self, n, image_wh, label_wh, ignore_only=False, distinct=2, seed=0):
        rng = np.random.default_rng(seed)
        self.n = n
        self.images = [rng.normal(0, 50, size=(3, image_wh[1], image_wh[0])).astype(np.float32)
                       for _ in range(distinct)]
        if ignore_only:  # the unlabelled target set: an all-255 map, as CityscapesDataSet gives
            self.labels = [np.full((label_wh[1], label_wh[0]), 255, dtype=np.int64)]
        else:
            self.labels = []
            for _ in range(distinct):
                label = rng.integers(0, NUM_CLASSES, size=(label_wh[1], label_wh[0]))
                label[rng.random(label.shape) < 0.1] = 255
                self.labels.append(label.astype(np.int64))
        self.on_item = None

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if self.on_item is not None:
            self.on_item(index)
        image = self.images[index % len(self.images)]
        label = self.labels[index % len(self.labels)]
        return image, label, np.array(image.shape), f'bench/bench_{index:06d}_000019_leftImg8bit.png'


# ------------------------------------------------------------------ measuring

def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory while the block runs, in MiB: CUDA allocated memory, or the sampled
    resident set size of this process on the CPU."""

    def __init__(self, device):
        self.device = device
        self.peak = 0.0

    def __enter__(self):
        if self.device.type == 'cuda':
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._stop = threading.Event()
            self.peak = _rss_mib()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mib())

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss_mib())
        return False


def _rss_mib():
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20
    except OSError:  # not Linux: the lifetime peak
        scale = 1 if sys.platform == 'darwin' else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2 ** 20


def rounds(n):
    """(round, side) pairs, the sides alternating, so that a busy machine slows both alike."""
    return [(r, side) for r in range(n) for side in ('baseline', 'ours')]


def _sides():
    return {'baseline': [], 'ours': []}


def best(times):
    """The fastest round of each side (the one least disturbed by other work)."""
    return {side: min(values) for side, values in times.items()}


def worst(peaks):
    return {side: max(values) for side, values in peaks.items()}


def measurement(ours, baseline, unit):
    return {'ours': round(ours, 4), 'baseline': round(baseline, 4),
            'ratio': round(ours / baseline, 3) if baseline else None, 'unit': unit}


def loader_for(dataset, device, workers):
    return data.DataLoader(dataset, batch_size=1, shuffle=False, num_workers=workers,
                           pin_memory=device.type == 'cuda')


# ------------------------------------------------------------------ evaluation

def baseline_eval(model, loader, device, interp):
    """ADVENT's eval_UDA.eval_best loop (eval_single with one model)."""
    hist = np.zeros((NUM_CLASSES, NUM_CLASSES))
    for image, label, _, _ in loader:
        with torch.no_grad():
            pred_main = model(image.to(device))[1]
        hist += baseline_eval_post(pred_main, label, interp)
    return hist


def baseline_eval_post(pred_main, label, interp):
    """The original's work after the forward pass: the score map to the host, numpy argmax, fast_hist."""
    with torch.no_grad():
        output = interp(pred_main).cpu().data[0].numpy()
        output = output.transpose(1, 2, 0)
        output = np.argmax(output, axis=2)
    label = label.numpy()[0]
    return fast_hist(label.flatten(), output.flatten(), NUM_CLASSES)


def ours_eval_post(pred_main, label, interp, device):
    """eval_UDA.confusion_matrix's work after the forward pass, with its own functions."""
    hist = torch.zeros(NUM_CLASSES * NUM_CLASSES + 1, dtype=torch.int64, device=device)
    label = label.to(device, non_blocking=True)
    with torch.no_grad():
        prediction = eval_UDA.argmax_channels(interp(pred_main))
    eval_UDA.accumulate_hist(hist, label, prediction, NUM_CLASSES)
    return hist[:-1].view(NUM_CLASSES, NUM_CLASSES).cpu().numpy()


def time_sides(ours, baseline, n_rounds, device):
    """Fastest time of each side over alternating rounds."""
    times = _sides()
    for _, side in rounds(n_rounds):
        start = time.perf_counter()
        (ours if side == 'ours' else baseline)()
        synchronize(device)
        times[side].append(time.perf_counter() - start)
    return best(times)


def bench_eval_post(model, device, args, sizes, reps=3):
    """Only the work after the forward pass (the part the two sides do differently), on
    one image's scores, `reps` times: a figure the noise of the forward pass does not drown."""
    interp = nn.Upsample(size=(sizes['eval_output'][1], sizes['eval_output'][0]), mode='bilinear',
                         align_corners=True)
    items = RandomImages(1, sizes['eval_input'], sizes['eval_output'], seed=7)
    label = torch.from_numpy(items.labels[0])[None]
    with torch.no_grad():
        pred_main = model(torch.from_numpy(items.images[0])[None].to(device))[1]
    same = np.array_equal(ours_eval_post(pred_main, label, interp, device), baseline_eval_post(pred_main, label, interp))
    times = time_sides(lambda: [ours_eval_post(pred_main, label, interp, device) for _ in range(reps)],
                       lambda: [baseline_eval_post(pred_main, label, interp) for _ in range(reps)],
                       max(2, args.rounds), device)
    return measurement(reps / times['ours'], reps / times['baseline'], 'images/s'), same


def bench_eval(model, device, args, sizes):
    interp = nn.Upsample(size=(sizes['eval_output'][1], sizes['eval_output'][0]), mode='bilinear',
                         align_corners=True)
    warm = RandomImages(args.warmup, sizes['eval_input'], sizes['eval_output'], seed=1)
    eval_UDA.confusion_matrix([model], [1.0], loader_for(warm, device, 0), NUM_CLASSES, device, interp, True)
    baseline_eval(model, loader_for(warm, device, 0), device, interp)
    dataset = RandomImages(args.eval_images, sizes['eval_input'], sizes['eval_output'], seed=2)
    times, peaks, hists = _sides(), _sides(), {}
    for _, side in rounds(args.rounds):
        loader = loader_for(dataset, device, args.workers)
        with PeakMemory(device) as peak:
            start = time.perf_counter()
            if side == 'ours':
                hists[side] = eval_UDA.confusion_matrix([model], [1.0], loader, NUM_CLASSES, device, interp, True)
            else:
                hists[side] = baseline_eval(model, loader, device, interp)
            synchronize(device)
            times[side].append(time.perf_counter() - start)
        peaks[side].append(peak.peak)
    times, peaks = best(times), worst(peaks)
    n = args.eval_images
    return (measurement(n / times['ours'], n / times['baseline'], 'images/s'),
            measurement(peaks['ours'], peaks['baseline'], memory_unit(device)),
            bool(np.array_equal(hists['ours'], hists['baseline'])))


# ------------------------------------------------------------------ ranking

def _find_rare_class(output_pt_tensor):
    output_np_tensor = output_pt_tensor.cpu().data[0].numpy()
    mask_np_tensor = output_np_tensor.transpose(1, 2, 0)
    mask_np_tensor = np.asarray(np.argmax(mask_np_tensor, axis=2), dtype=np.uint8)
    unique = np.unique(mask_np_tensor)
    return [c for c in RARE_CLASSES if c in unique]


def _colorize_save(output_pt_tensor, name, out_dir):
    output_np_tensor = output_pt_tensor.cpu().data[0].numpy()
    mask_np_tensor = output_np_tensor.transpose(1, 2, 0)
    mask_np_tensor = np.asarray(np.argmax(mask_np_tensor, axis=2), dtype=np.uint8)
    mask_img = Image.fromarray(mask_np_tensor)
    mask_color = colorize_mask(mask_np_tensor)
    name = name.split('/')[-1]
    mask_img.save(out_dir / name)
    mask_color.save(out_dir / f'{name.split(".")[0]}_color.png')


def baseline_rank_post(pred_trg_main, name, interp, out_dir):
    """The body of IntraDA's entropy.py loop after the forward pass (with normalisation)."""
    with torch.no_grad():
        pred_trg_main = interp(pred_trg_main)
        normalizor = (11 - len(_find_rare_class(pred_trg_main))) / 11.0 + 0.5
        pred_trg_entropy = prob_2_entropy(F.softmax(pred_trg_main, dim=1))
        score = pred_trg_entropy.mean().item() * normalizor
        _colorize_save(pred_trg_main, name, out_dir)
    return score


def baseline_rank(model, loader, device, interp, out_dir, lambda1=0.67):
    """IntraDA's entropy.py main loop (with normalisation), its find_rare_class and colorize_save."""
    entropy_list = []
    for image, _, _, name in loader:
        with torch.no_grad():
            _, pred_trg_main = model(image.to(device))
        entropy_list.append((name[0], baseline_rank_post(pred_trg_main, name[0], interp, out_dir)))
    ranked = [name for name, _ in sorted(entropy_list, key=lambda item: item[1])]
    cut = int(len(ranked) * lambda1)
    return ranked[:cut], ranked[cut:]


def bench_rank(model, device, args, sizes):
    size = sizes['rank_input']
    interp = nn.Upsample(size=(size[1], size[0]), mode='bilinear', align_corners=True)
    times, peaks, splits = _sides(), _sides(), {}
    with tempfile.TemporaryDirectory(prefix='intrada-bench-') as tmp:
        tmp = Path(tmp)
        warm = RandomImages(args.warmup, size, size, ignore_only=True, seed=3)
        ranking.rank_target_images(model, warm, size, device, tmp / 'warm', True, 0.67, 0)
        (tmp / 'warm_baseline').mkdir()
        baseline_rank(model, loader_for(warm, device, 0), device, interp, tmp / 'warm_baseline')
        dataset = RandomImages(args.rank_images, size, size, ignore_only=True, seed=4)
        for round_, side in rounds(args.rounds):
            out = tmp / f'{side}{round_}'
            out.mkdir()
            with PeakMemory(device) as peak:
                start = time.perf_counter()
                if side == 'ours':
                    easy, hard, _ = ranking.rank_target_images(model, dataset, size, device, out, True, 0.67,
                                                               args.workers)
                    splits[side] = (easy, hard)
                else:
                    splits[side] = baseline_rank(model, loader_for(dataset, device, args.workers), device,
                                                 interp, out)
                synchronize(device)
                times[side].append(time.perf_counter() - start)
            peaks[side].append(peak.peak)
    times, peaks = best(times), worst(peaks)
    n = args.rank_images
    return (measurement(n / times['ours'], n / times['baseline'], 'images/s'),
            measurement(peaks['ours'], peaks['baseline'], memory_unit(device)),
            splits['ours'] == splits['baseline'])


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
    interp = nn.Upsample(size=(size[1], size[0]), mode='bilinear', align_corners=True)
    items = RandomImages(reps, size, size, ignore_only=True, distinct=reps, seed=8)
    with torch.no_grad():
        preds = [model(torch.from_numpy(image)[None].to(device))[1] for image in items.images]
    names = [items[k][3] for k in range(reps)]
    with tempfile.TemporaryDirectory(prefix='intrada-bench-') as tmp:
        ours_dir, base_dir = Path(tmp) / 'ours', Path(tmp) / 'baseline'
        ours_dir.mkdir()
        base_dir.mkdir()
        same = ours_rank_post(preds, names, interp, ours_dir) == \
            [baseline_rank_post(p, n, interp, base_dir) for p, n in zip(preds, names)]
        times = time_sides(lambda: ours_rank_post(preds, names, interp, ours_dir),
                           lambda: [baseline_rank_post(p, n, interp, base_dir) for p, n in zip(preds, names)],
                           max(2, args.rounds), device)
    return measurement(reps / times['ours'], reps / times['baseline'], 'images/s'), same


# ------------------------------------------------------------------ training

def train_cfg(sizes, iterations, snapshot_dir, amp='', channels_last=False, cudnn_benchmark=False):
    cfg = default_config()
    cfg.TRAIN.update(MODEL='DeepLabv2', INPUT_SIZE_SOURCE=list(sizes['train_source']),
                     INPUT_SIZE_TARGET=list(sizes['train_target']), MAX_ITERS=100000, EARLY_STOP=iterations - 1,
                     SAVE_PRED_EVERY=10 ** 9, SNAPSHOT_DIR=str(snapshot_dir), TENSORBOARD_LOGDIR='',
                     AMP=amp, CHANNELS_LAST=channels_last, CUDNN_BENCHMARK=cudnn_benchmark)
    return cfg


def run_training(device, sizes, warmup, iterations, settings):
    """Seconds of the fastest iteration after `warmup` iterations, and the peak memory of the run."""
    source = RandomImages(warmup + iterations, sizes['train_source'], sizes['train_source'], seed=5)
    target = RandomImages(warmup + iterations, sizes['train_target'], sizes['train_target'], ignore_only=True,
                          seed=6)
    stamps = []  # when each iteration fetches its source batch (the previous one has synchronised)
    source.on_item = lambda index: stamps.append(time.perf_counter())
    torch.manual_seed(0)
    model = get_deeplab_v2(NUM_CLASSES, True)
    with tempfile.TemporaryDirectory(prefix='intrada-bench-') as tmp:
        cfg = train_cfg(sizes, warmup + iterations, tmp, **settings)
        torch.manual_seed(0)
        with PeakMemory(device) as peak:
            train_UDA.train_domain_adaptation(model, build_train_loader(source, 1, 0),
                                              build_train_loader(target, 1, 0), cfg)
            synchronize(device)
            end = time.perf_counter()
    torch.backends.cudnn.benchmark = False
    del model
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    stamps.append(end)
    seconds = [round(b - a, 3) for a, b in zip(stamps, stamps[1:])]
    return min(seconds[warmup:]), peak.peak, seconds


def bench_train(device, args, sizes):
    gpu = device.type == 'cuda'
    ours_settings = {'amp': 'bf16' if gpu else '', 'channels_last': gpu, 'cudnn_benchmark': gpu}
    if args.train_amp is not None:
        ours_settings['amp'] = '' if args.train_amp == 'fp32' else args.train_amp
    if args.train_channels_last is not None:
        ours_settings['channels_last'] = args.train_channels_last
    warmup = max(1, args.warmup)
    baseline_s, baseline_peak, baseline_all = run_training(device, sizes, warmup, args.train_iters, {})
    ours_s, ours_peak, ours_all = run_training(device, sizes, warmup, args.train_iters, ours_settings)
    return (measurement(1 / ours_s, 1 / baseline_s, 'iterations/s'),
            measurement(ours_peak, baseline_peak, memory_unit(device)), ours_settings,
            {'ours': ours_all, 'baseline': baseline_all})


# ------------------------------------------------------------------ report

def memory_unit(device):
    return 'MiB (peak torch.cuda.max_memory_allocated)' if device.type == 'cuda' else \
        'MiB (peak resident set size of the process, sampled)'


def machine_info(device):
    info = {'device': str(device), 'python': platform.python_version(), 'torch': torch.__version__,
            'numpy': np.__version__, 'pillow': Image.__version__, 'platform': platform.platform(),
            'cpu': _cpu_name(), 'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads()}
    if device.type == 'cuda':
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='a short run (about two minutes on 2 CPU cores)')
    parser.add_argument('--json', metavar='OUT', help='write the figures to this JSON file')
    parser.add_argument('--device', choices=('cuda', 'cpu'), help='default: cuda when available')
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
    parser.add_argument('--train-channels-last', type=lambda s: s.lower() in ('1', 'true', 'yes'),
                        help="ours' channels_last (true/false)")
    args = parser.parse_args(argv)
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
              'settings': {'quick': args.quick, 'scale': args.scale, 'train_scale': args.train_scale,
                           'sizes_wh': sizes,
                           'eval_images': args.eval_images, 'rank_images': args.rank_images,
                           'train_iters': args.train_iters, 'warmup': args.warmup, 'workers': args.workers,
                           'rounds': args.rounds},
              'checks': {}}
    print(f'device {device} ({report["versions"].get("gpu", report["versions"]["cpu"])}), torch {torch.__version__}, '
          f'sizes {sizes}', flush=True)
    started = time.perf_counter()
    if 'eval' in args.only or 'rank' in args.only:
        torch.manual_seed(0)
        model = get_deeplab_v2(NUM_CLASSES, True).eval().to(device)
        if 'eval' in args.only:
            report['eval'], report['eval_memory'], same = bench_eval(model, device, args, sizes)
            report['checks']['eval_same_confusion_matrix'] = same
            _print('eval', report['eval'], report['eval_memory'])
            report['eval_postprocess'], same = bench_eval_post(model, device, args, sizes)
            report['checks']['eval_postprocess_same_confusion_matrix'] = same
            _print('  after the forward pass', report['eval_postprocess'])
        if 'rank' in args.only:
            report['rank'], report['rank_memory'], same = bench_rank(model, device, args, sizes)
            report['checks']['rank_same_split'] = same
            _print('rank', report['rank'], report['rank_memory'])
            report['rank_postprocess'], same = bench_rank_post(model, device, args, sizes)
            report['checks']['rank_postprocess_same_scores'] = same
            _print('  after the forward pass', report['rank_postprocess'])
        del model
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    if 'train' in args.only:
        report['train'], report['train_memory'], settings, seconds = bench_train(device, args, sizes)
        report['settings']['train_ours'] = settings
        report['train_iteration_seconds'] = seconds  # warm-up iterations included
        _print('train', report['train'], report['train_memory'])
    report['seconds'] = round(time.perf_counter() - started, 1)
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
