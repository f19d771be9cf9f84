"""Pseudo-label quality of a stage-2 ranking folder, for users who hold the target training
labels (Cityscapes gtFine/train). Opt-in and only ever read for this report: nothing in
training uses it.

    python -m entropy_rank.quality RANK_DIR --labels data/Cityscapes/gtFine/train

For the easy and the hard split: pixel accuracy, mIoU and per-class IoU (percent) of the
pseudo-labels (RANK_DIR/color_masks/<file name>) against the labels, compared at the
pseudo-labels' size (the labels resized with NEAREST, as the datasets load them). Printed,
and written into RANK_DIR/entropy_ranking.json under 'pseudo_label_quality'.
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from advent.cli import OneLineParser, run_guarded
from advent.dataset.base_dataset import DatasetError, IdMapper, load_image, open_image, read_list_file
from advent.dataset.cityscapes import DEFAULT_INFO_PATH, gtfine_label_name, load_info
from advent.domain_adaptation.eval_UDA import iou_summary
from advent.errors import UserError
from advent.utils.func import fast_hist, per_class_iu
from advent.utils.serialization import json_dump, json_load
from entropy_rank.ranking import pseudo_label_names

SPLITS = ('easy', 'hard')
RANKING_JSON = 'entropy_ranking.json'


class QualityError(UserError, ValueError):
    pass


def split_names(rank_dir, split):
    """The names of RANK_DIR/<split>_split.txt ([] for an empty split)."""
    path = Path(rank_dir) / f'{split}_split.txt'
    if not path.is_file():
        raise QualityError(f'{path} does not exist: expected a folder written by entropy_rank/entropy.py')
    return read_list_file(path) if path.read_text().strip() else []


def check_label_folder(labels_root, what='label folder'):
    if not Path(labels_root).is_dir():
        raise QualityError(f'{what} {labels_root} does not exist (expected e.g. data/Cityscapes/gtFine/train)')


def pseudo_label_quality(rank_dir, labels_root, info_path=DEFAULT_INFO_PATH):
    """{'labels_root', 'compared_at', 'easy': {...}, 'hard': {...}}, a split's entry
    {'images', 'pixels', 'pixel_accuracy', 'mIoU', 'per_class'} in percent (None where
    nothing is counted). Only pixels whose label is a class count."""
    rank_dir, labels_root = Path(rank_dir), Path(labels_root)
    check_label_folder(labels_root)
    info = load_info(info_path)
    class_names, to_train_ids = info['label'], IdMapper(info['label2train'])
    num_classes = len(class_names)
    result = {'labels_root': str(labels_root), 'compared_at': 'pseudo-label size (labels resized with NEAREST)'}
    for split in SPLITS:
        names = split_names(rank_dir, split)
        hist = np.zeros((num_classes, num_classes), np.int64)
        for name in names:
            pseudo = _pseudo_label(rank_dir / 'color_masks' / pseudo_label_names(name)[0], num_classes)
            label_file = labels_root / gtfine_label_name(name)
            size = pseudo.shape[::-1]
            label = to_train_ids(load_image(label_file, size, Image.NEAREST, rgb=False))
            hist += fast_hist(label.ravel(), pseudo.ravel(), num_classes)
        result[split] = _split_metrics(hist, class_names, len(names))
    return result


def _pseudo_label(path, num_classes):
    try:
        mask = np.asarray(open_image(path, 'pseudo-label'), np.int64)
    except DatasetError as e:
        raise QualityError(str(e)) from None
    if mask.ndim != 2 or mask.max(initial=0) >= num_classes:
        raise QualityError(f'pseudo-label {path} is not a train-id map of {num_classes} classes')
    return mask


def _split_metrics(hist, class_names, images):
    pixels = int(hist.sum())
    metrics = {'images': images, 'pixels': pixels,
               'pixel_accuracy': round(100 * float(np.trace(hist)) / pixels, 2) if pixels else None}
    if not pixels:  # an empty split, or no labelled pixel in it
        return {**metrics, 'mIoU': None, 'per_class': {str(n): None for n in class_names}}
    return {**metrics, **iou_summary(per_class_iu(hist), class_names)}


def quality_lines(quality):
    """The report as printed lines: a line per split, then a per-class table."""
    lines = [f'Pseudo-label quality against {quality["labels_root"]} (never used for training):']
    for split in SPLITS:
        m = quality[split]
        lines.append(f'  {split} split: {m["images"]} images, {m["pixels"]} labelled pixels, '
                     f'pixel accuracy {_fmt(m["pixel_accuracy"])}, mIoU {_fmt(m["mIoU"])}')
    lines.append(f'  {"class":<14}' + ''.join(f'{split:>8}' for split in SPLITS))
    for name in quality[SPLITS[0]]['per_class']:
        lines.append(f'  {name:<14}' + ''.join(f'{_fmt(quality[s]["per_class"][name]):>8}' for s in SPLITS))
    return lines


def _fmt(value):
    return '-' if value is None else f'{value:.2f}'


def write_quality(rank_dir, quality):
    """Add the report to RANK_DIR/entropy_ranking.json (created if absent), atomically."""
    path = Path(rank_dir) / RANKING_JSON
    try:
        ranking = json_load(path) if path.is_file() else {}
    except ValueError as e:
        raise QualityError(f'{path} is not valid JSON ({e})') from None
    if not isinstance(ranking, dict):
        raise QualityError(f'{path} does not hold a JSON object')
    ranking['pseudo_label_quality'] = quality
    json_dump(ranking, path)
    return path


def report_quality(rank_dir, labels_root, info_path=DEFAULT_INFO_PATH):
    """Measure, print and write the pseudo-label quality of a ranking folder; returns it."""
    quality = pseudo_label_quality(rank_dir, labels_root, info_path)
    print('\n'.join(quality_lines(quality)))
    print(f'written to {write_quality(rank_dir, quality)}')
    return quality


def get_arguments(argv=None):
    parser = OneLineParser(prog='python -m entropy_rank.quality',
                           description='Pseudo-label quality of an existing stage-2 ranking folder against the '
                                       'target training labels (opt-in; never used for training)')
    parser.add_argument('rank_dir', help='folder with easy_split.txt, hard_split.txt and color_masks/')
    parser.add_argument('--labels', required=True,
                        help='the target training labels, e.g. data/Cityscapes/gtFine/train')
    parser.add_argument('--info', default=DEFAULT_INFO_PATH,
                        help='info.json with the class names and label2train (default: Cityscapes\')')
    parser.add_argument('--debug', action='store_true', help='show the full traceback on errors')
    return parser.parse_args(argv)


def main(argv=None):
    return run_guarded(lambda args: report_quality(args.rank_dir, args.labels, args.info), get_arguments(argv))


if __name__ == '__main__':
    sys.exit(main())
