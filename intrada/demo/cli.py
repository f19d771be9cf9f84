"""The demo's command: `python -m intrada.demo [--quick] [--ablation] [--seed N] [--seeds N] [--jobs N] [--out DIR]`."""
import argparse
import sys
from pathlib import Path

from advent.domain_adaptation.config import PROJECT_ROOT
from advent.domain_adaptation.selection import CRITERIA
from advent.utils.serialization import json_dump
from advent.utils.progress import close_all, print_line
from intrada.demo.aggregate import aggregate
from intrada.demo.figures import summary_figure
from intrada.demo.jobs import default_jobs
from intrada.demo.report import TITLES, comparison_title, interval_text, present_rows, write_aggregate_report
from intrada.demo.selection import aggregate_section, aggregate_selection, regret_line
from intrada.demo.stages import run_demo


def print_table(results):
    print_line('\nmIoU on the target val set (percent)')
    print_line(f'  {"run":<28} {"best snapshot":>14} {"mean of last":>13}')
    for key, title in present_rows(results):
        r = results[key]
        print_line(f'  {title:<28} {r["mIoU"]:>14.2f} {r["mIoU_last_mean"]:>13.2f}')
    split = results['split']
    print_line(f'  hard split vs hard conditions: precision {split["precision"]}, recall {split["recall"]}, '
               f'AUROC {split["auroc"]}')
    pseudo = results['pseudo_labels']
    print_line('  pseudo-label pixel accuracy: ' + ', '.join(f'{s} split {pseudo[s]["pixel_accuracy"]}'
                                                         for s in ('easy', 'hard')))
    print_line(f'  {regret_line(results["selection"])}')
    print_line(f'  total time {results["seconds"]["total"]} s')


def print_aggregate(summary):
    print_line(f'\nmIoU on the target val set (percent), seeds {summary["seeds"]}: mean ± sd')
    for key, row in summary['rows'].items():
        print_line(f'  {TITLES[key]:<28} {row["mean"]:>7.2f} ± {row["sd"]:.2f}')
    print_line('paired differences over the seeds: mean [95 % interval], seeds on which the first row is higher')
    for c in summary['comparisons']:
        print_line(f'  {comparison_title(c):<52} {interval_text(c)}  {c["wins"]}/{len(c["differences"])}')
    excluding = [comparison_title(c) for c in summary['comparisons'] if c['excludes_zero']]
    print_line(f'intervals that exclude 0: {"; ".join(excluding) or "none"}')


def command_line(args):
    """The command as a user would type it, for the report."""
    flags = [flag for flag, on in (('--quick', args.quick), ('--ablation', args.ablation)) if on]
    flags += [f'--seed {args.seed}'] + ([f'--seeds {args.seeds}'] if args.seeds > 1 else [])
    flags += [f'--selection {args.selection}'] if args.selection != 'miou' else []
    return ' '.join(['python -m intrada.demo'] + flags + [f'--sgd {args.sgd}', f'--out {args.out}'])


def get_arguments(argv=None):
    parser = argparse.ArgumentParser(prog='python -m intrada.demo',
                                     description='IntraDA on generated street scenes: all stages, on the CPU')
    parser.add_argument('--quick', action='store_true', help='a tiny run that only checks the setup')
    parser.add_argument('--ablation', action='store_true',
                        help="also the paper's ablation rows: self-training (lambda1 = 1.0) and IntraDA with the "
                             "ranking's entropy normalisation")
    parser.add_argument('--seed', type=int, default=0, help='data and training seed (default 0)')
    parser.add_argument('--seeds', type=int, default=1,
                        help='run seeds SEED .. SEED+N-1, each in OUT/seed_K/, and report mean ± sd (default 1)')
    parser.add_argument('--out', default=str(PROJECT_ROOT / 'experiments' / 'demo'),
                        help='output folder (default: experiments/demo)')
    parser.add_argument('--sgd', choices=('original', 'textbook'), default='original',
                        help="segmenter update: 'original' repeats the backbone's SGD updates as the paper's "
                             "PyTorch 0.4.1 did (TRAIN.ORIGINAL_SGD True, the default); 'textbook' updates each "
                             "parameter once")
    parser.add_argument('--selection', choices=CRITERIA, default='miou',
                        help="how every run's snapshot is picked (TEST.SELECTION, stage 2's input included): "
                             "'miou' the best val mIoU (the paper's oracle, default), or without val labels "
                             "'entropy', 'im', 'last' (docs/selection.md)")
    parser.add_argument('--jobs', type=int, default=default_jobs(),
                        help='how many runs at the same time, each with one thread (default: the usable CPU cores, '
                             'at most 3); the numbers do not depend on it')
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error('--seeds must be at least 1')
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    return args


def main(argv=None):
    args = get_arguments(argv)
    try:
        run(args)
    except KeyboardInterrupt:  # the runs' workers are ended by then (jobs.Stages)
        close_all()
        print('error: interrupted', file=sys.stderr)
        return 130
    return 0


def run(args):
    out, command = Path(args.out), command_line(args)
    settings = dict(quick=args.quick, original_sgd=args.sgd == 'original', ablation=args.ablation, command=command,
                    selection=args.selection, jobs=args.jobs)
    if args.seeds == 1:
        print_table(run_demo(out, args.seed, **settings))
    else:
        per_seed = {}
        for seed in range(args.seed, args.seed + args.seeds):
            print_line(f'== seed {seed}')
            per_seed[seed] = run_demo(out / f'seed_{seed}', seed, **settings)
            print_table(per_seed[seed])
        summary = aggregate(per_seed)
        summary['selection'] = aggregate_selection(per_seed)
        json_dump(summary, out / 'results.json')
        summary_figure([(TITLES[key], row['mean'], row['sd']) for key, row in summary['rows'].items()],
                       f'mIoU (percent) on the target val set, best snapshot: mean and sd over seeds '
                       f'{summary["seeds"][0]}..{summary["seeds"][-1]}', out / 'summary.png')
        write_aggregate_report(out, summary, command, aggregate_section(summary['selection']))
        print_aggregate(summary)
    print_line(f'\nreport: {out / "report.md"}\nresults: {out / "results.json"}')
