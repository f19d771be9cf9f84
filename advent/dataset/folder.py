"""Datasets of your own (SPEC 11): a folder, a list file and a class file.

The list file holds one item a line, `IMAGE` or `IMAGE LABEL`, both relative to the
dataset folder (the DeepLab list format); an item without a label is unlabelled and no
label file is opened for it. Labels are single-channel PNGs (8 or 16 bit) of their
image's size. The class file (JSON) names the classes in train-id order (`label`), gives
one colour per class (`palette`), optionally maps the label files' raw ids to train ids
(`label2train`; unlisted ids become 255) and names the rare classes of the entropy
normalisation (`rare`). Without `label2train` a label file holds train ids
0..NUM_CLASSES-1 or 255 (ignore), and any other value is an error.
"""
from pathlib import Path, PurePosixPath

import numpy as np

from advent.dataset.base_dataset import (BaseDataset, DatasetError, IdMapper, PseudoLabels, check_train_ids,
                                         read_json_file, read_list_entries)

FOLDER_LAYOUT = 'ROOT/IMAGE and ROOT/LABEL for each line "IMAGE [LABEL]" of the list file'


def load_class_file(path, key='the class file'):
    """The class file of a folder dataset, checked: a dict with 'label', 'palette' and,
    when given, 'label2train' and 'rare'. `key` names the config key in messages."""
    if not path:
        raise DatasetError(f'{key} is empty: a folder dataset needs a class file (JSON with "label" and "palette")')
    info = read_json_file(path, f'class file {path} ({key})')
    if not isinstance(info, dict):
        raise DatasetError(f'class file {path}: expected a JSON object with "label" and "palette"')
    for field in ('label', 'palette'):
        if field not in info:
            raise DatasetError(f'class file {path} lacks the key {field!r}')
    names, palette = info['label'], info['palette']
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f'class file {path}: "label" must be a list of class names')
    if len(names) > 255:
        raise DatasetError(f'class file {path}: {len(names)} classes, at most 255 fit an 8-bit pseudo-label')
    if not isinstance(palette, list) or len(palette) != len(names):
        count = len(palette) if isinstance(palette, list) else type(palette).__name__
        raise DatasetError(f'class file {path}: "palette" has {count} colours for {len(names)} classes; '
                           f'expected one [r, g, b] per class')
    if not all(_is_colour(c) for c in palette):
        raise DatasetError(f'class file {path}: every "palette" entry must be [r, g, b] with values 0..255')
    if 'label2train' in info and not _is_id_table(info['label2train'], len(names)):
        raise DatasetError(f'class file {path}: "label2train" must be [[raw id, train id], ...] with raw ids >= 0 '
                           f'and train ids 0..{len(names) - 1}, 255 or -1')
    rare = info.get('rare')
    if rare is not None and (not isinstance(rare, list) or not rare or
                             not all(_is_int(r) and 0 <= r < len(names) for r in rare)):
        raise DatasetError(f'class file {path}: "rare" must be a non-empty list of train ids 0..{len(names) - 1}')
    return info


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_colour(colour):
    return isinstance(colour, list) and len(colour) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in colour)


def _is_id_table(table, num_classes):
    return isinstance(table, list) and bool(table) and all(
        isinstance(pair, list) and len(pair) == 2 and all(_is_int(v) for v in pair) and pair[0] >= 0
        and (0 <= pair[1] < num_classes or pair[1] in (255, -1)) for pair in table)


def check_num_classes(info_path, info, num_classes):
    if len(info['label']) != num_classes:
        raise DatasetError(f'class file {info_path} names {len(info["label"])} classes, the config has NUM_CLASSES '
                           f'{num_classes}: set NUM_CLASSES to {len(info["label"])}')


def pseudo_label_path(name):
    """Where stage 2 writes the pseudo-label of a folder dataset's image `name`, relative to
    color_masks/: the image's path with a .png suffix (folders kept, so that images of the
    same file name in different folders keep their own)."""
    return str(PurePosixPath(name.replace('\\', '/')).with_suffix('.png'))


def check_distinct_pseudo_labels(names, list_path):
    """Refuse two images whose pseudo-labels would be one file (x.jpg and x.png in one folder)."""
    owner = {}
    for name in names:
        other = owner.setdefault(pseudo_label_path(name), name)
        if other != name:
            raise DatasetError(f'{list_path}: images {other!r} and {name!r} would share the pseudo-label '
                               f'color_masks/{pseudo_label_path(name)}; rename one of them')


class FolderDataSet(BaseDataset):
    """A dataset of your own (module docstring). Items are (image, label, shape, name) as for
    every dataset; an unlabelled item's label is all 255 (ignore). With load_labels=False (a
    target training set) no label file is checked or opened."""
    LAYOUT = FOLDER_LAYOUT
    LABEL_SIZE_MUST_MATCH = True
    # stage 2 writes the pseudo-labels at the image's relative path (entropy_rank/ranking.py)
    PSEUDO_LABELS_KEEP_PATHS = True

    def __init__(self, root, list_path, set='train', max_iters=None, crop_size=(321, 321), mean=(128, 128, 128),
                 info_path='', labels_size=None, num_classes=None, load_labels=True):
        self.info_path = info_path
        self.load_labels = load_labels
        self.info = load_class_file(info_path)
        if num_classes is not None:
            check_num_classes(info_path, self.info, num_classes)
        self.class_names = np.array(self.info['label'], dtype=str)
        self.palette = self.info['palette']
        self.rare_classes = self.info.get('rare')
        self.label_names = {}
        super().__init__(root, list_path, set, max_iters, crop_size, labels_size, mean)
        self.labelled = all(label is not None for label in self.label_names.values())
        num_classes = len(self.class_names)
        if 'label2train' in self.info:
            self.map_labels = IdMapper(self.info['label2train'])
        else:
            self.map_labels = None
            self.LABEL_IDS = [*range(num_classes), 255]
            self.LABEL_IDS_TEXT = f'train ids 0..{num_classes - 1} or 255 (ignore), the classes of {info_path}'
        # each listed label once (self.files repeats the list up to max_iters items)
        labels = dict.fromkeys(self.get_metadata(name)[1] for name in self.label_names)
        missing = [label for label in labels if label is not None and not label.is_file()]
        if missing:
            raise DatasetError(f'label {missing[0]} (listed in {self.list_path}) does not exist '
                               f'({len(missing)} of the listed labels are missing); expected {self.LAYOUT}')

    def first_unlabelled(self):
        """The list name of the first item without a label, or None."""
        return next((name for name, label in self.label_names.items() if label is None), None)

    def read_names(self):
        entries = read_list_entries(self.list_path, max_fields=2)
        self.label_names = {entry[0]: entry[1] if len(entry) == 2 else None for entry in entries}
        return [entry[0] for entry in entries]

    def get_metadata(self, name):
        label = self.label_names[name] if self.load_labels else None
        return self.root / name, None if label is None else self.root / label

    def get_train_ids(self, label_file):
        if label_file is None:
            return np.full(self.labels_size[::-1], 255, dtype=np.int64)
        ids = self.get_labels(label_file).astype(np.int64)
        if self.map_labels is not None:
            return self.map_labels(ids)
        return check_train_ids(ids, label_file, len(self.class_names), 'label')


class FolderPseudoDataSet(PseudoLabels, FolderDataSet):
    """Stage-3 source on a folder target: the easy split's images with the pseudo-labels of
    stage 2 (PSEUDO_DIR/<image path with a .png suffix>, 8-bit train ids at the training
    input size, so of any size)."""
    LAYOUT = ('ROOT/IMAGE for each line of the easy split, with its pseudo-label PSEUDO_DIR/<IMAGE with a .png '
              'suffix> (written by entropy_rank/entropy.py)')
    LABEL_SIZE_MUST_MATCH = False

    def __init__(self, root, list_path, pseudo_label_dir, set='train', max_iters=None, crop_size=(321, 321),
                 mean=(128, 128, 128), info_path='', labels_size=None, num_classes=None):
        self.pseudo_label_dir = Path(pseudo_label_dir)
        if not self.pseudo_label_dir.is_dir():
            raise DatasetError(f'pseudo-label folder {self.pseudo_label_dir} does not exist; expected {self.LAYOUT}')
        super().__init__(root, list_path, set, max_iters, crop_size, mean, info_path, labels_size, num_classes)
        self.labelled = True
        self.map_labels = None
        self.LABEL_IDS = None

    def get_metadata(self, name):
        return self.root / name, self.pseudo_label_dir / pseudo_label_path(name)
