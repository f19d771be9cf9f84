"""The whole method in one command: stage 1 training, best-snapshot evaluation, entropy
ranking with the best iteration, stage 3 training and its evaluation.

    python -m intrada.pipeline --stage1-cfg configs/advent.yml --stage3-cfg configs/intrada.yml

Each stage runs the same library code as its script. A stage whose outputs already
exist is skipped (a training run whose final snapshot exists, a ranking made from the
same snapshot and settings); an interrupted training run resumes from its last state.
The ranking is written where the stage-3 config reads it (the folder of its
DATA_LIST_SOURCE), so the two configs only have to agree on that folder.
"""
import argparse
import sys
import time
from pathlib import Path

from advent.cli import run_guarded, str2bool
from advent.domain_adaptation.config import PROJECT_ROOT, ConfigError, finalize_paths, load_config
from advent.domain_adaptation.eval_UDA import check_val_labels, selected_snapshot
from advent.domain_adaptation.experiment import build_test_dataset, run_evaluation, run_training
from advent.domain_adaptation.train_UDA import final_snapshot_iteration
from advent.utils.serialization import json_load
from entropy_rank.ranking import run_ranking


def load_stage_config(path, exp_suffix=''):
    cfg = load_config(path)
    return finalize_paths(cfg, exp_suffix)


def train_stage(cfg, name, summary, random_train=False):
    final = Path(cfg.TRAIN.SNAPSHOT_DIR) / f'model_{final_snapshot_iteration(cfg)}.pth'
    if final.is_file():
        summary.append((name, 'skipped', 0.0, f'{final.name} exists'))
        return
    start = time.time()
    print(f'== {name}: training into {cfg.TRAIN.SNAPSHOT_DIR}')
    run_training(cfg, random_train=random_train, resume=True)
    summary.append((name, 'ran', time.time() - start, final.name))


def evaluate_stage(cfg, name, summary):
    """Best-mode evaluation; returns the iteration TEST.SELECTION picks."""
    start = time.time()
    cfg.TEST.MODE = 'best'
    cfg.TEST.WAIT_MODEL = False
    cfg.TEST.SNAPSHOT_MAXITER = final_snapshot_iteration(cfg)
    cfg.TEST.SNAPSHOT_STEP = cfg.TRAIN.SAVE_PRED_EVERY
    print(f'== {name}: evaluating the snapshots of {cfg.TEST.SNAPSHOT_DIR[0]}')
    run_evaluation(cfg)
    best_iter, known = selected_snapshot(cfg)  # the pick the evaluation printed, among this run's snapshots
    picked = 'best iteration' if cfg.TEST.SELECTION == 'miou' else f'iteration selected by {cfg.TEST.SELECTION}'
    summary.append((name, 'ran', time.time() - start, ', '.join([f'{picked} {best_iter}'] + known)))
    return best_iter


def rank_stage(cfg, best_iter, normalize, lambda1, rank_dir, summary):
    record = Path(rank_dir) / 'entropy_ranking.json'
    checkpoint = str(Path(cfg.TRAIN.SNAPSHOT_DIR) / f'model_{best_iter}.pth')
    if record.is_file() and all((Path(rank_dir) / f).is_file() for f in ('easy_split.txt', 'hard_split.txt')):
        done = json_load(record)
        if (done.get('checkpoint'), done.get('normalize'), done.get('lambda1')) == (checkpoint, normalize, lambda1):
            summary.append(('stage 2 ranking', 'skipped', 0.0, f'{rank_dir} is up to date'))
            return
    start = time.time()
    print(f'== stage 2: ranking with {checkpoint}')
    easy, hard = run_ranking(cfg, best_iter, normalize, lambda1, rank_dir)
    summary.append(('stage 2 ranking', 'ran', time.time() - start, f'{len(easy)} easy / {len(hard)} hard'))


def ranking_folder(stage3_cfg):
    rank_dir = Path(stage3_cfg.DATA_LIST_SOURCE).parent
    if Path(stage3_cfg.DATA_LIST_TARGET).parent != rank_dir:
        raise ConfigError('the stage-3 config must read DATA_LIST_SOURCE (easy split) and DATA_LIST_TARGET '
                          f'(hard split) from one folder, got {stage3_cfg.DATA_LIST_SOURCE} and '
                          f'{stage3_cfg.DATA_LIST_TARGET}')
    return rank_dir


def run_pipeline(stage1_path, stage3_path, normalize=False, lambda1=0.67, random_train=False):
    stage1 = load_stage_config(stage1_path)
    stage3 = load_stage_config(stage3_path)
    rank_dir = ranking_folder(stage3)
    for cfg in (stage1, stage3):  # before any training; both evaluations run in best mode
        check_val_labels(build_test_dataset(cfg), 'best', cfg.TEST.SELECTION)
    summary = []
    train_stage(stage1, 'stage 1 training', summary, random_train)
    best_iter = evaluate_stage(stage1, 'stage 1 evaluation', summary)
    rank_stage(stage1, best_iter, normalize, lambda1, rank_dir, summary)
    train_stage(stage3, 'stage 3 training', summary, random_train)
    evaluate_stage(stage3, 'stage 3 evaluation', summary)
    print_summary(summary)
    return summary


def print_summary(summary):
    print('\nPipeline summary')
    width = max(len(name) for name, *_ in summary)
    for name, status, seconds, note in summary:
        print(f'  {name:<{width}}  {status:<7}  {seconds:8.1f} s  {note}')


def get_arguments(argv=None):
    parser = argparse.ArgumentParser(description='IntraDA: all three stages in one command')
    parser.add_argument('--stage1-cfg', default=str(PROJECT_ROOT / 'configs' / 'advent.yml'),
                        help='stage-1 config (default: %(default)s)')
    parser.add_argument('--stage3-cfg', default=str(PROJECT_ROOT / 'configs' / 'intrada.yml'),
                        help='stage-3 config (default: %(default)s)')
    parser.add_argument('--normalize', type=str2bool, default=False, help='entropy normalisation in stage 2')
    parser.add_argument('--lambda1', type=float, default=0.67, help='fraction of easy images (default 0.67)')
    parser.add_argument('--random-train', action='store_true', help='do not fix the random seeds')
    parser.add_argument('--debug', action='store_true', help='show the full traceback on errors')
    return parser.parse_args(argv)


def main(argv=None):
    args = get_arguments(argv)
    return run_guarded(lambda a: run_pipeline(a.stage1_cfg, a.stage3_cfg, a.normalize, a.lambda1,
                                              a.random_train), args)


if __name__ == '__main__':
    sys.exit(main())
