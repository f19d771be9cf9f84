from pathlib import Path

import numpy as np

from advent.dataset.base_dataset import BaseDataset, DatasetError, IdMapper, PseudoLabels, read_json_file
from advent.domain_adaptation.config import DATASET_DIR

DEFAULT_INFO_PATH = str(DATASET_DIR / 'cityscapes_list' / 'info.json')


def gtfine_label_name(name):
    """The gtFine label of list entry `name` (relative to gtFine/SET): CITY/X_gtFine_labelIds.png."""
    return name.replace('leftImg8bit', 'gtFine_labelIds')


class CityscapesDataSet(BaseDataset):
    """Cityscapes. With load_labels=False (the unlabelled target training set) no label
    file is ever opened and the label is an all-255 (ignore) map."""
    LAYOUT = ('ROOT/leftImg8bit/SET/CITY/X_leftImg8bit.png and, for labelled sets, '
              'ROOT/gtFine/SET/CITY/X_gtFine_labelIds.png')
    LABEL_SIZE_MUST_MATCH = True
    LABEL_IDS = range(34)
    LABEL_IDS_TEXT = 'Cityscapes label ids 0..33 (*_gtFine_labelIds.png, not the train ids or colours)'

    def __init__(self, root, list_path, set='val', max_iters=None, crop_size=(321, 321),
                 mean=(128, 128, 128), load_labels=True, info_path=DEFAULT_INFO_PATH, labels_size=None):
        super().__init__(root, list_path, set, max_iters, crop_size, labels_size, mean)
        self.load_labels = load_labels
        self.info = load_info(info_path)
        self.class_names = np.array(self.info['label'], dtype=str)
        self.palette = self.info['palette']
        self.map_labels = IdMapper(self.info['label2train'])

    def get_metadata(self, name):
        img_file = self.root / 'leftImg8bit' / self.set / name
        label_file = self.root / 'gtFine' / self.set / gtfine_label_name(name)
        return img_file, label_file

    def get_train_ids(self, label_file):
        if not self.load_labels:
            return np.full(self.labels_size[::-1], 255, dtype=np.int64)
        return self.map_labels(self.get_labels(label_file))


class CityscapesPseudoDataSet(PseudoLabels, CityscapesDataSet):
    """Stage-3 source: Cityscapes images with the pseudo-labels of stage 2
    (PSEUDO_DIR/<file name of the image>, 8-bit train ids)."""
    LAYOUT = ('ROOT/leftImg8bit/SET/CITY/X_leftImg8bit.png with its pseudo-label '
              'PSEUDO_DIR/X_leftImg8bit.png (8-bit train ids, written by entropy_rank/entropy.py)')
    LABEL_SIZE_MUST_MATCH = False
    LABEL_IDS = None

    def __init__(self, root, list_path, pseudo_label_dir, set='train', max_iters=None, crop_size=(321, 321),
                 mean=(128, 128, 128), info_path=DEFAULT_INFO_PATH, labels_size=None):
        self.pseudo_label_dir = Path(pseudo_label_dir)
        if not self.pseudo_label_dir.is_dir():
            raise DatasetError(f'pseudo-label folder {self.pseudo_label_dir} does not exist; '
                               f'expected {self.LAYOUT}')
        if next(self.pseudo_label_dir.iterdir(), None) is None:
            raise DatasetError(f'pseudo-label folder {self.pseudo_label_dir} is empty; expected {self.LAYOUT}')
        super().__init__(root, list_path, set, max_iters, crop_size, mean, True, info_path, labels_size)
        for name in dict.fromkeys(self.img_ids):
            label_file = self.get_metadata(name)[1]
            if not label_file.is_file():
                raise DatasetError(f'pseudo-label {label_file} does not exist; expected {self.LAYOUT}')

    def get_metadata(self, name):
        img_file = self.root / 'leftImg8bit' / self.set / name
        return img_file, self.pseudo_label_dir / name.split('/')[-1]


def load_info(info_path):
    info = read_json_file(info_path, f'info file {info_path}')
    for key in ('label', 'label2train', 'palette'):
        if key not in info:
            raise DatasetError(f'info file {info_path} lacks the key {key!r}')
    return info
