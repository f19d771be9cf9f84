from advent.dataset.base_dataset import SyntheticSourceDataset

# GTA5 label ids (the Cityscapes label ids) -> the 19 train ids.
GTA5_TO_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


class GTA5DataSet(SyntheticSourceDataset):
    LAYOUT = 'ROOT/images/NAME (RGB) and ROOT/labels/NAME (8-bit GTA ids), NAME from the list file'
    LABEL_IDS = range(34)
    LABEL_IDS_TEXT = 'GTA5 label ids (the Cityscapes label ids 0..33)'
    TO_TRAIN_ID = GTA5_TO_TRAIN_ID

    def get_metadata(self, name):
        return self.root / 'images' / name, self.root / 'labels' / name
