"""The demo's command: `python -m intrada.demo [--quick] [--seed N] [--out DIR]`."""
import argparse
from pathlib import Path

from advent.domain_adaptation.config import PROJECT_ROOT
from intrada.demo.stages import run_demo


def print_table(results):
    print('\nmIoU on the target val set (percent)')
    print(f'  {"run":<20} {"best snapshot":>14} {"mean of last":>13}')
    for key, title in (('source_only', 'source only'), ('bn_only', 'BN-only control'),
                       ('advent', 'AdvEnt (stage 1)'), ('intrada', 'IntraDA (stage 3)')):
        r = results[key]
        print(f'  {title:<20} {r["mIoU"]:>14.2f} {r["mIoU_last_mean"]:>13.2f}')
    split = results['split']
    print(f'  hard split vs hard conditions: precision {split["precision"]}, recall {split["recall"]}, '
          f'AUROC {split["auroc"]}')
    print(f'  total time {results["seconds"]["total"]} s')


def get_arguments(argv=None):
    parser = argparse.ArgumentParser(prog='python -m intrada.demo',
                                     description='IntraDA on generated street scenes: all stages, on the CPU')
    parser.add_argument('--quick', action='store_true', help='a tiny run that only checks the setup')
    parser.add_argument('--seed', type=int, default=0, help='data and training seed (default 0)')
    parser.add_argument('--out', default=str(PROJECT_ROOT / 'experiments' / 'demo'),
                        help='output folder (default: experiments/demo)')
    parser.add_argument('--sgd', choices=('original', 'textbook'), default='original',
                        help="segmenter update: 'original' repeats the backbone's SGD updates as the paper's "
                             "PyTorch 0.4.1 did (TRAIN.ORIGINAL_SGD True, the default); 'textbook' updates each "
                             "parameter once")
    return parser.parse_args(argv)


def main(argv=None):
    args = get_arguments(argv)
    results = run_demo(args.out, args.seed, args.quick, args, original_sgd=args.sgd == 'original')
    print_table(results)
    print(f'\nreport: {Path(args.out) / "report.md"}\nresults: {Path(args.out) / "results.json"}')
    return 0
