"""Tiny GTA5 / Cityscapes trees in the real on-disk layout, and configs for them
(numpy + PIL + yaml only), shared by the reliability tests.

make_tree(out) writes
  out/GTA5/images/0000{1,2,3}.png      RGB, W x H
  out/GTA5/labels/0000{1,2,3}.png      8-bit GTA ids
  out/Cityscapes/leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png
  out/Cityscapes/gtFine/val/<city>/<name>_gtFine_labelIds.png
  out/lists/{gta5_all,cs_train,cs_val}.txt
Several images per list, so the shuffled data order matters for training.
"""
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

W, H = 64, 32
GTA_NAMES = ['00001.png', '00002.png', '00003.png']
CS_TRAIN = ['aachen/aachen_000000_000019_leftImg8bit.png',
            'aachen/aachen_000001_000019_leftImg8bit.png',
            'bochum/bochum_000000_000313_leftImg8bit.png',
            'bochum/bochum_000000_001097_leftImg8bit.png']
CS_VAL = ['frankfurt/frankfurt_000000_000294_leftImg8bit.png',
          'lindau/lindau_000000_000019_leftImg8bit.png']
# label ids that map to the 19 train ids (GTA ids = Cityscapes label ids), and some that do not
MAPPED = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
UNMAPPED = [0, 1, 4, 6, 9]


def make_pair(seed, width=W, height=H):
    """A blocky label map (label ids) and an image whose colours follow the labels."""
    rng = np.random.default_rng(seed)
    label = np.zeros((height, width), np.uint8)
    image = np.zeros((height, width, 3), np.float64)
    for y0 in range(0, height, 8):
        for x0 in range(0, width, 16):
            cid = int(rng.choice(MAPPED + UNMAPPED))
            label[y0:y0 + 8, x0:x0 + 16] = cid
            image[y0:y0 + 8, x0:x0 + 16] = np.random.default_rng(cid).uniform(20, 235, size=3)
    image += rng.normal(0, 10, size=image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), label


def save_png(path, array, mode):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).convert(mode).save(path)


def write_list(path, names):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(n + '\n' for n in names))
    return path


def make_tree(out):
    out = Path(out)
    for k, name in enumerate(GTA_NAMES):
        image, label = make_pair(100 + k)
        save_png(out / 'GTA5' / 'images' / name, image, 'RGB')
        save_png(out / 'GTA5' / 'labels' / name, label, 'L')
    for split, names in (('train', CS_TRAIN), ('val', CS_VAL)):
        for k, name in enumerate(names):
            image, label = make_pair((200 if split == 'train' else 300) + k)
            save_png(out / 'Cityscapes' / 'leftImg8bit' / split / name, image, 'RGB')
            if split == 'val':
                save_png(out / 'Cityscapes' / 'gtFine' / split / name.replace('leftImg8bit', 'gtFine_labelIds'),
                         label, 'L')
    write_list(out / 'lists' / 'gta5_all.txt', GTA_NAMES)
    write_list(out / 'lists' / 'cs_train.txt', CS_TRAIN)
    write_list(out / 'lists' / 'cs_val.txt', CS_VAL)
    return out


def make_pseudo_labels(folder, names=CS_TRAIN, size=(W, H), seed=7):
    """Stage-2 style pseudo-labels (8-bit train ids) for list names, in one folder."""
    rng = np.random.default_rng(seed)
    for name in names:
        save_png(Path(folder) / name.split('/')[-1], rng.integers(0, 19, size=(size[1], size[0])).astype(np.uint8),
                 'L')
    return Path(folder)


def stage1_config(tree, snap_root, **sections):
    """A stage-1 config dict on the tiny tree (DeepLabv2-tiny, random init, small sizes);
    keyword arguments override whole keys, TRAIN={...} / TEST={...} update those sections."""
    tree = Path(tree)
    cfg = {
        'SOURCE': 'GTA', 'TARGET': 'Cityscapes', 'NUM_WORKERS': 0,
        'DATA_DIRECTORY_SOURCE': str(tree / 'GTA5'), 'DATA_LIST_SOURCE': str(tree / 'lists' / 'gta5_all.txt'),
        'DATA_DIRECTORY_TARGET': str(tree / 'Cityscapes'), 'DATA_LIST_TARGET': str(tree / 'lists' / 'cs_train.txt'),
        'EXP_ROOT': str(snap_root), 'EXP_ROOT_SNAPSHOT': str(snap_root), 'EXP_ROOT_LOGS': str(snap_root),
        'TRAIN': {'MODEL': 'DeepLabv2-tiny', 'RESTORE_FROM': '', 'INPUT_SIZE_SOURCE': [W, H],
                  'INPUT_SIZE_TARGET': [W, H], 'MAX_ITERS': 20, 'EARLY_STOP': 10, 'SAVE_PRED_EVERY': 2},
        'TEST': {'MODEL': ['DeepLabv2-tiny'], 'DATA_LIST_TARGET': str(tree / 'lists' / 'cs_val.txt'),
                 'INPUT_SIZE_TARGET': [W, H], 'OUTPUT_SIZE_TARGET': [W, H], 'SNAPSHOT_STEP': 2,
                 'SNAPSHOT_MAXITER': 10, 'WAIT_MODEL': False},
    }
    for key, value in sections.items():
        if key in ('TRAIN', 'TEST'):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


def write_config(path, cfg):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


if __name__ == '__main__':
    make_tree(sys.argv[1] if len(sys.argv) > 1 else '.')
