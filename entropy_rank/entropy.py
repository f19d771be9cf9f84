"""Stage 2: entropy ranking of the target training images into easy and hard splits.

python entropy_rank/entropy.py --cfg configs/advent.yml --best_iter 70000 --normalize False --lambda1 0.67

The outputs go to experiments/entropy_rank under the project root unless --out-dir says
otherwise: the folder the packaged stage-3 config reads (the original wrote into its working
directory, entropy_rank/, which is where its intrada.yml read them).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs without installing, from any folder

from advent.cli import base_parser, config_from_args, print_header, run_guarded, str2bool  # noqa: E402
from advent.domain_adaptation.config import PROJECT_ROOT, ConfigError  # noqa: E402
from entropy_rank.quality import check_label_folder, report_quality  # noqa: E402
from entropy_rank.ranking import run_ranking  # noqa: E402

# The packaged stage-3 config; a ranking written elsewhere gets a note on how to chain the stages.
STAGE3_CONFIG = PROJECT_ROOT / 'configs' / 'intrada.yml'
DEFAULT_OUT_DIR = PROJECT_ROOT / 'experiments' / 'entropy_rank'   # where STAGE3_CONFIG reads the splits


def get_arguments(argv=None):
    parser = base_parser('Stage 2: rank target images by prediction entropy')
    parser.add_argument('--best_iter', '--best-iter', dest='best_iter', type=int, default=None,
                        help="stage-1 snapshot to use (default: the one TEST.SELECTION picks among those "
                             "advent/scripts/test.py evaluated)")
    parser.add_argument('--normalize', type=str2bool, default=False,
                        help='multiply the entropy by the rare-class normaliser (true/false)')
    parser.add_argument('--lambda1', type=float, default=0.67, help='fraction of images in the easy split')
    parser.add_argument('--out-dir', '--out_dir', dest='out_dir', type=str, default=str(DEFAULT_OUT_DIR),
                        help='folder for easy_split.txt, hard_split.txt and color_masks/ (default: '
                             'experiments/entropy_rank under the project root, where configs/intrada.yml reads them)')
    parser.add_argument('--pseudo-label-quality', '--pseudo_label_quality', dest='pseudo_label_quality',
                        metavar='LABELS', default=None,
                        help='opt-in: measure both splits\' pseudo-labels against the target training labels in '
                             'LABELS (e.g. data/Cityscapes/gtFine/train); printed and written to '
                             'entropy_ranking.json, never used for training')
    return parser.parse_args(argv)


def stage3_ranking_folder():
    """Where configs/intrada.yml reads the splits and pseudo-labels from."""
    from intrada.pipeline import load_stage_config, ranking_folder
    return ranking_folder(load_stage_config(STAGE3_CONFIG))


def main(args):
    cfg = config_from_args(args)
    out_dir = args.out_dir
    print_header(args, cfg, snapshots=cfg.TRAIN.SNAPSHOT_DIR, out_dir=out_dir)
    if args.pseudo_label_quality is not None:
        check_label_folder(args.pseudo_label_quality, '--pseudo-label-quality')  # before the ranking
    run_ranking(cfg, args.best_iter, args.normalize, args.lambda1, out_dir)
    if args.pseudo_label_quality is not None:
        report_quality(out_dir, args.pseudo_label_quality, cfg.TRAIN.INFO_TARGET)
    if cfg.TARGET != 'Cityscapes':  # the note is about the packaged Cityscapes stage-3 config
        return
    try:
        stage3_folder = stage3_ranking_folder()
    except ConfigError:  # a hint only: an edited stage-3 config must not fail a finished ranking
        return
    if Path(out_dir).resolve() != Path(stage3_folder).resolve():
        print(f'note: configs/intrada.yml reads the splits from {stage3_folder}; to run stage 3 with it, '
              f'rank without --out-dir (its default is that folder), or point its DATA_LIST_SOURCE/TARGET here')


if __name__ == '__main__':
    sys.exit(run_guarded(main, get_arguments()))
