"""Tiny GTA5 / Cityscapes trees in the real on-disk layout, and configs for them
(numpy + PIL + yaml only), shared by the reliability tests.

make_tree(out) writes
  out/GTA5/images/0000{1,2,3}.png      RGB, W x H
  out/GTA5/labels/0000{1,2,3}.png      8-bit GTA ids
  out/Cityscapes/leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png
  out/Cityscapes/gtFine/val/<city>/<name>_gtFine_labelIds.png
  out/lists/{gta5_all,cs_train,cs_val}.txt
Several images per list, so the shuffled data order matters for training. The writer is
the parity data's (tests/data/parity/make_trees.py, on sys.path through conftest.py).
"""
from pathlib import Path

import numpy as np
import yaml
from make_trees import CS_TRAIN, CS_VAL, MAPPED, write_png, write_tree
from make_trees import write_list  # noqa: F401  (the tests write their own lists with it)

W, H = 64, 32
GTA_NAMES = ['00001.png', '00002.png', '00003.png']
UNMAPPED = [0, 1, 4, 6, 9]  # label ids that map to no train id


def blocky_scene(seed, pick_class, colour_of, noise, width=W, height=H):
    """(RGB uint8 image, uint8 label): 16x8 blocks, each of the class pick_class(rng) draws
    and painted colour_of(class), plus Gaussian noise of sd `noise`."""
    rng = np.random.default_rng(seed)
    label = np.zeros((height, width), np.uint8)
    image = np.zeros((height, width, 3), np.float64)
    for y0 in range(0, height, 8):
        for x0 in range(0, width, 16):
            cid = pick_class(rng)
            label[y0:y0 + 8, x0:x0 + 16] = cid
            image[y0:y0 + 8, x0:x0 + 16] = colour_of(cid)
    image += rng.normal(0, noise, size=image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), label


def make_pair(seed, width=W, height=H):
    """A blocky label map (label ids) and an image whose colours follow the labels."""
    return blocky_scene(seed, lambda rng: int(rng.choice(MAPPED + UNMAPPED)),
                        lambda cid: np.random.default_rng(cid).uniform(20, 235, size=3), 10, width, height)


def _pair(split, index, name):
    return make_pair({'gta': 100, 'train': 200, 'val': 300}[split] + index)


def make_tree(out):
    lists = {'gta5_all.txt': GTA_NAMES, 'cs_train.txt': CS_TRAIN, 'cs_val.txt': CS_VAL}
    return Path(write_tree(out, _pair, GTA_NAMES, CS_TRAIN, CS_VAL, lists, train_labels=False))


def make_pseudo_labels(folder, names=CS_TRAIN, size=(W, H), seed=7):
    """Stage-2 style pseudo-labels (8-bit train ids) for list names, in one folder."""
    rng = np.random.default_rng(seed)
    for name in names:
        labels = rng.integers(0, 19, size=(size[1], size[0])).astype(np.uint8)
        write_png(Path(folder) / name.split('/')[-1], labels, 'L')
    return Path(folder)


def stage1_config(tree, snap_root, **sections):
    """A stage-1 config dict on the tiny tree (DeepLabv2-tiny, random init, small sizes);
    keyword arguments override whole keys, TRAIN={...} / TEST={...} update those sections."""
    tree = Path(tree)
    cfg = {
        'SOURCE': 'GTA', 'TARGET': 'Cityscapes', 'NUM_WORKERS': 0,
        'GPU_ID': -1,  # the CPU, also on a GPU machine, unless a test asks for a GPU
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
