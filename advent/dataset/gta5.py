import numpy as np

from advent.dataset.base_dataset import BaseDataset, IdMapper

# GTA5 label ids (the Cityscapes label ids) -> the 19 train ids.
GTA5_TO_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


class GTA5DataSet(BaseDataset):
    LAYOUT = 'ROOT/images/NAME (RGB) and ROOT/labels/NAME (8-bit GTA ids), NAME from the list file'
    LABEL_IDS = range(34)
    LABEL_IDS_TEXT = 'GTA5 label ids (the Cityscapes label ids 0..33)'

    def __init__(self, root, list_path, set='all', max_iters=None, crop_size=(321, 321), mean=(128, 128, 128)):
        super().__init__(root, list_path, set, max_iters, crop_size, None, mean)
        self.map_labels = IdMapper(GTA5_TO_TRAIN_ID.items())

    def get_metadata(self, name):
        return self.root / 'images' / name, self.root / 'labels' / name

    def get_train_ids(self, label_file):
        # float32 labels, as the original returned them
        return self.map_labels(self.get_labels(label_file)).astype(np.float32)
