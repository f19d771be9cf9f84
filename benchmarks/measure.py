"""How the speed benchmark measures: random inputs shaped like the datasets' items, one
timing helper (`measure`) that every measurement goes through, peak memory, and the
alternating rounds that compare two sides on a busy machine."""
import os
import resource
import sys
import threading
import time

import numpy as np
import torch
from torch.utils import data

NUM_CLASSES = 19


class RandomImages(data.Dataset):
    """(image, label, shape, name) items like the datasets': a few distinct random images
    and label maps, repeated. `on_item(index)` is called on every fetch."""

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


def loader_for(dataset, device, workers):
    return data.DataLoader(dataset, batch_size=1, shuffle=False, num_workers=workers,
                           pin_memory=device.type == 'cuda')


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


def memory_unit(device):
    return 'MiB (peak torch.cuda.max_memory_allocated)' if device.type == 'cuda' else \
        'MiB (peak resident set size of the process, sampled)'


class Timing:
    """What `measure` found: the call's result, its seconds (the device's queued work
    included), when it ended (time.perf_counter) and the peak memory while it ran (MiB)."""

    def __init__(self, result, seconds, peak, end=None):
        self.result, self.seconds, self.peak, self.end = result, seconds, peak, end


def measure(fn, device):
    """Run fn() once; the clock stops when the device has finished the work fn queued."""
    with PeakMemory(device) as peak:
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        end = time.perf_counter()
    return Timing(result, end - start, peak.peak, end)


def compare(ours, baseline, rounds, device):
    """Run the two sides `rounds` times each, alternating, so that a busy machine slows both
    alike. Returns {side: Timing} with each side's fastest time (the round least disturbed
    by other work), its highest peak memory and the result of its last round."""
    timings = {'baseline': [], 'ours': []}
    for _ in range(rounds):
        for side, fn in (('baseline', baseline), ('ours', ours)):
            timings[side].append(measure(fn, device))
    return {side: Timing(runs[-1].result, min(t.seconds for t in runs), max(t.peak for t in runs))
            for side, runs in timings.items()}


def ratio(ours, baseline, unit):
    """One measurement of the report: ours, the baseline and ours / baseline."""
    return {'ours': round(ours, 4), 'baseline': round(baseline, 4),
            'ratio': round(ours / baseline, 3) if baseline else None, 'unit': unit}


def rates(sides, count, unit):
    """count / seconds of each side of `compare`'s result."""
    return ratio(count / sides['ours'].seconds, count / sides['baseline'].seconds, unit)


def peaks(sides, device):
    return ratio(sides['ours'].peak, sides['baseline'].peak, memory_unit(device))
