import cv2
import numpy as np

from advent.dataset.base_dataset import DatasetError, SyntheticSourceDataset
from PIL import Image

# SYNTHIA-RAND-CITYSCAPES class ids -> the 16 train ids shared with Cityscapes.
SYNTHIA_TO_TRAIN_ID = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 9, 10: 10, 17: 11,
                       8: 12, 19: 13, 12: 14, 11: 15}
# The 19 Cityscapes train ids kept in the 16-class setting (terrain, truck and train dropped).
CITYSCAPES_16_FROM_19 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]
# Positions, among the 16 classes, of the 13 reported without wall, fence and pole.
CLASSES_13_OF_16 = [0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]


class SYNTHIADataSet(SyntheticSourceDataset):
    LAYOUT = ('ROOT/RGB/NAME (RGB) and ROOT/GT/LABELS/NAME (16-bit PNG, class id in the first channel)')
    LABEL_IDS = range(23)
    LABEL_IDS_TEXT = 'SYNTHIA-RAND-CITYSCAPES class ids 0..22'
    TO_TRAIN_ID = SYNTHIA_TO_TRAIN_ID

    def get_metadata(self, name):
        return self.root / 'RGB' / name, self.root / 'GT' / 'LABELS' / name

    def get_labels(self, file):
        # PIL reads 16-bit multi-channel PNGs as 8-bit RGB; OpenCV keeps the values.
        raw = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise DatasetError(f'label {file} does not exist or is not a readable image')
        ids = raw[:, :, 2] if raw.ndim == 3 else raw  # OpenCV gives BGR(A): the first PNG channel is index 2
        img = Image.fromarray(ids.astype(np.int32), mode='I').resize(self.labels_size, Image.NEAREST)
        return np.asarray(img, np.float32)
