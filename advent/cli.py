"""Command-line plumbing shared by every script: flags, config loading, one-line errors.

A failure the user can fix (a bad config, a missing file, a diverged loss) prints one
line `error: ...` naming the culprit and exits with status 2; `--debug` shows the traceback.
"""
import argparse
import os
import pprint
import sys
import traceback

from advent.domain_adaptation.config import ConfigError, finalize_paths, load_config, to_plain
from advent.errors import UserError
from advent.utils.progress import close_all

USER_ERRORS = (UserError, OSError)

_TRUE = ('true', '1', 'yes', 'y', 'on')
_FALSE = ('false', '0', 'no', 'n', 'off')


def str2bool(text):
    """True/False/1/0/yes/no in any case (argparse's type=bool would read 'False' as True)."""
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f'expected a boolean (true/false, 1/0, yes/no), got {text!r}')


class OneLineParser(argparse.ArgumentParser):
    """Command-line mistakes give the same one-line `error: ...` (status 2) as other user errors."""

    def error(self, message):
        self.exit(2, f'error: {message} (see {self.prog} --help)\n')


def base_parser(description):
    parser = OneLineParser(description=description)
    parser.add_argument('--cfg', type=str, required=True, help='YAML config file')
    parser.add_argument('--exp-suffix', '--exp_suffix', dest='exp_suffix', type=str, default=None,
                        help='appended to EXP_NAME')
    parser.add_argument('--debug', action='store_true', help='show the full traceback on errors')
    parser.add_argument('--print-config', '--verbose', dest='print_config', action='store_true',
                        help='print the full merged config after the header')
    return parser


def train_parser(description):
    parser = base_parser(description)
    parser.add_argument('--random-train', '--random_train', dest='random_train', action='store_true',
                        help='do not fix the random seeds')
    parser.add_argument('--tensorboard', action='store_true', help='log losses and images to TensorBoard')
    parser.add_argument('--viz-every-iter', '--viz_every_iter', dest='viz_every_iter', type=int, default=None,
                        help='TensorBoard image grids every N iterations (TRAIN.TENSORBOARD_VIZRATE)')
    parser.add_argument('--resume', action='store_true',
                        help='continue from the newest complete training state in the snapshot folder')
    return parser


def config_from_args(args):
    cfg = load_config(args.cfg)
    finalize_paths(cfg, args.exp_suffix or '')
    return cfg


def device_line(cfg):
    """The device a run of this config uses, e.g. 'cuda:0 (NVIDIA H200)' or 'cpu (no GPU found)'."""
    import torch

    from advent.utils import distributed
    device = distributed.device_for_rank(cfg.GPU_ID)
    if device.type == 'cuda':
        return f'{device} ({torch.cuda.get_device_name(device)})'
    return f'{device} (no GPU found)'


def print_header(args, cfg, **paths):
    """A few lines on what runs and where (the config file, the experiment, `paths`, the
    device), so that a one-line error stays in view; --print-config adds the whole config.
    The training run also writes it to its snapshot folder (train_cfg.yml)."""
    if os.environ.get('RANK', '0') != '0':  # under torchrun, rank 0 alone prints
        return
    print(f'config: {args.cfg}')
    print(f'experiment: {cfg.EXP_NAME}')
    for name, path in paths.items():
        print(f'{name.replace("_", " ")}: {path}')
    print(f'device: {device_line(cfg)}', flush=True)
    if args.print_config:
        print('Using config:')
        pprint.pprint(to_plain(cfg))


def run_guarded(main, args):
    """Run main(args); turn the errors a user can fix into one line and exit status 2."""
    try:
        main(args)
    except USER_ERRORS as e:
        if getattr(args, 'debug', False):
            traceback.print_exc()
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, OSError) and e.filename:
            message = f'{e.strerror or type(e).__name__}: {e.filename}'
        close_all()
        print(f'error: {message}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        close_all()
        print('error: interrupted', file=sys.stderr)
        return 130
    return 0


def _train(args):
    from advent.domain_adaptation.experiment import run_training
    cfg = config_from_args(args)
    if args.tensorboard:
        if cfg.TRAIN.TENSORBOARD_LOGDIR == '':
            cfg.TRAIN.TENSORBOARD_LOGDIR = f'{cfg.EXP_ROOT_LOGS}/tensorboard/{cfg.EXP_NAME}'
        if args.viz_every_iter is not None:
            if args.viz_every_iter <= 0:
                raise ConfigError(f'--viz-every-iter must be positive, got {args.viz_every_iter}')
            cfg.TRAIN.TENSORBOARD_VIZRATE = args.viz_every_iter
    else:
        cfg.TRAIN.TENSORBOARD_LOGDIR = ''
    print_header(args, cfg, snapshots=cfg.TRAIN.SNAPSHOT_DIR)
    run_training(cfg, random_train=args.random_train, resume=args.resume)


def _test(args):
    from advent.domain_adaptation.experiment import run_evaluation
    cfg = config_from_args(args)
    if cfg.TEST.MODE == 'best':
        print_header(args, cfg, snapshots=cfg.TEST.SNAPSHOT_DIR[0])
    else:
        print_header(args, cfg, checkpoints=', '.join(cfg.TEST.RESTORE_FROM))
    run_evaluation(cfg)


def train_main(argv=None, description='Domain-adaptation training (stage 1 or stage 3)'):
    return run_guarded(_train, train_parser(description).parse_args(argv))


def test_main(argv=None, description='Evaluation on the target validation set'):
    return run_guarded(_test, base_parser(description).parse_args(argv))
