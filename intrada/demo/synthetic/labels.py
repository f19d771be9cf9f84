"""The label space of the generated scenes: the 19 Cityscapes classes (train ids), the
label ids they are written as, and their standard colours."""
import numpy as np

CLASS_NAMES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'light', 'sign', 'vegetation',
               'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motocycle', 'bicycle')
(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEG, TERRAIN, SKY, PERSON, RIDER, CAR,
 TRUCK, BUS, TRAIN, MOTO, BIKE) = range(19)
VOID = 255
# train id -> GTA5 / Cityscapes label id; unlabelled pixels (train id 255) are written as id 0.
TRAIN_ID_TO_LABEL_ID = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
_LABEL_LUT = np.zeros(256, np.uint8)
_LABEL_LUT[:19] = TRAIN_ID_TO_LABEL_ID


# Standard Cityscapes palette (train-id order), for contact sheets.
PALETTE = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
           (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
           (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32))


def train_ids_to_label_ids(train_ids):
    """Train ids (255 = unlabelled) -> GTA5 / Cityscapes label ids (unlabelled -> 0)."""
    return _LABEL_LUT[np.asarray(train_ids, np.uint8)]


def colourise(train_ids):
    pal = np.zeros((256, 3), np.uint8)
    pal[:19] = PALETTE
    return pal[np.asarray(train_ids, np.uint8)]
