"""Where an adversarial training iteration's time goes at the demo's setting, as ratios measured
in one process (docs/demo.md).

    python benchmarks/adversarial_profile.py OUT_DIR                  # the demo's sizes, widths 64 and 16
    python benchmarks/adversarial_profile.py OUT_DIR --widths 64,32,16,8 --rounds 5
    python benchmarks/adversarial_profile.py OUT_DIR --tiny           # seconds: checks the plumbing only

The training loop runs on scenes of the demo's generator, with the demo's config (DeepLabv2-tiny,
128x64, batch 4 + 4), a few iterations per run, once per DA_METHOD, each adding one part of an
AdvEnt iteration to the one before: SourceOnly (the source pass), BNOnly (+ a forward pass of the
target batch), MinEnt (+ its backward pass, through an entropy loss), AdvEnt at each TRAIN.D_NDF of
--widths (+ the two discriminators and their entropy maps). The runs alternate over --rounds, so
that a busy machine slows them alike; per run the median seconds per iteration (the first two
iterations left out), its ratio to SourceOnly and the seconds per iteration spent fetching batches.
OUT_DIR/adversarial_profile.json holds every round's figures.
"""
import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from advent.domain_adaptation import experiment, train_UDA  # noqa: E402
from advent.domain_adaptation.config import finalize_paths, load_config  # noqa: E402
from intrada.demo.stages import SETTINGS, base_config, with_run, write_config  # noqa: E402
from intrada.demo.synthetic import generate_benchmark  # noqa: E402

SKIPPED = 2  # warm-up iterations left out of every run's figure
TINY = dict(size=(64, 32), batch=1, every=1, model='DeepLabv2-tiny')


class TimedBatches(train_UDA.InfiniteBatches):
    """The loop's batch iterator, recording when each source batch is asked for (one per
    iteration, first thing in it) and how long every fetch takes. The loop creates the
    source iterator first."""
    created, starts, fetch_seconds = 0, [], []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_source = TimedBatches.created == 0
        TimedBatches.created += 1

    def __next__(self):
        start = time.perf_counter()
        if self.is_source:
            TimedBatches.starts.append(start)
        batch = super().__next__()
        TimedBatches.fetch_seconds.append(time.perf_counter() - start)
        return batch


def time_run(cfg_path):
    """(seconds per iteration, seconds fetching batches per iteration) of one training run."""
    TimedBatches.created, TimedBatches.starts, TimedBatches.fetch_seconds = 0, [], []
    with contextlib.redirect_stdout(io.StringIO()):  # the training's own messages: the table stays readable
        experiment.run_training(finalize_paths(load_config(cfg_path)))
    starts = TimedBatches.starts[SKIPPED:]
    iterations = len(starts) - 1
    per_iteration = (starts[-1] - starts[0]) / iterations
    method_fetches = len(TimedBatches.fetch_seconds) // len(TimedBatches.starts)  # 1 or 2 a loop
    fetching = sum(TimedBatches.fetch_seconds[SKIPPED * method_fetches:-method_fetches]) / iterations
    return per_iteration, fetching


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out', help='output folder (scenes, configs, adversarial_profile.json)')
    parser.add_argument('--widths', default='64,16', help='TRAIN.D_NDF values of the AdvEnt runs (default 64,16)')
    parser.add_argument('--iterations', type=int, default=8, help='timed iterations a run (default 8)')
    parser.add_argument('--rounds', type=int, default=3, help='alternating rounds (default 3)')
    parser.add_argument('--tiny', action='store_true', help='64x32 images, batch 1: the plumbing only')
    args = parser.parse_args(argv)
    widths = [int(w) for w in args.widths.split(',')]
    if min(widths) < 1 or args.iterations < 2 or args.rounds < 1:
        parser.error('--widths must be positive, --iterations at least 2, --rounds at least 1')
    settings = TINY if args.tiny else SETTINGS['full']
    out = Path(args.out).resolve()
    scenes = generate_benchmark(out / 'scenes', seed=0, n_source=16, n_target_train=16, n_target_val=2,
                                size=settings['size'])
    base = base_config(scenes, out / 'snapshots', settings, seed=0, max_iters=1000)
    runs = {name: (method, width) for name, method, width in
            [('SourceOnly', 'SourceOnly', None), ('BNOnly', 'BNOnly', None), ('MinEnt', 'MinEnt', None)]
            + [(f'AdvEnt D_NDF {w}', 'AdvEnt', w) for w in widths]}
    configs = {}
    for name, (method, width) in runs.items():
        cfg = with_run(base, name.replace(' ', '_'), method, SKIPPED + args.iterations)
        cfg['TRAIN'].update({'SAVE_PRED_EVERY': 10 ** 9, **({'D_NDF': width} if width else {})})
        configs[name] = write_config(out / 'configs' / f'{name.replace(" ", "_")}.yml', cfg)

    rounds = {name: [] for name in runs}
    loops_own = train_UDA.InfiniteBatches
    train_UDA.InfiniteBatches = TimedBatches
    try:
        for _ in range(args.rounds):
            for name in runs:
                rounds[name].append(time_run(configs[name]))
    finally:
        train_UDA.InfiniteBatches = loops_own
    source_only = statistics.median(seconds for seconds, _ in rounds['SourceOnly'])
    report = {'settings': {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
              'iterations': args.iterations, 'rounds': rounds, 'runs': {}}
    print(f'{"run":18s} {"s / iteration":>13s} {"x SourceOnly":>12s} {"fetching batches":>16s}')
    for name in runs:
        seconds = statistics.median(s for s, _ in rounds[name])
        fetching = statistics.median(f for _, f in rounds[name])
        report['runs'][name] = {'seconds_per_iteration': seconds, 'ratio_to_source_only': seconds / source_only,
                                'fetching_per_iteration': fetching}
        print(f'{name:18s} {seconds:13.3f} {seconds / source_only:12.2f} {fetching:16.3f}')
    (out / 'adversarial_profile.json').write_text(json.dumps(report, indent=1) + '\n')
    return report


if __name__ == '__main__':
    main()
