"""Tiny folder datasets (SPEC 11) for the tests: a 5-class problem of blocky scenes whose
colours follow the classes, written in the folder layout with list and class files.

make_folder_tree(root) writes
  root/source/images/a/scene.png, root/source/images/b/scene.png, ...   RGB, W x H
  root/source/labels/...                                                8-bit raw ids (label2train)
  root/target/images/{train,val}/...   root/target/labels/val/...       8-bit train ids
  root/source/all.txt   IMAGE LABEL lines;  root/target/train.txt   IMAGE lines (unlabelled)
  root/target/val.txt   IMAGE LABEL lines;  root/{source,target}/info.json
Two target training images share the file name scene.png in different folders.
"""
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tinydata import blocky_scene, stage1_config

W, H = 64, 32
CLASSES = ['ground', 'wall', 'plant', 'sky', 'thing']
PALETTE = [[128, 64, 128], [70, 70, 70], [107, 142, 35], [70, 130, 180], [220, 20, 60]]
RAW_IDS = [10, 20, 30, 40, 50]   # the source's raw ids of the 5 classes; 0 maps to no class
RARE = [4]


def scene(seed, width=W, height=H):
    """(RGB uint8 image, train-id label uint8): blocks of the 5 classes, some 255."""
    return blocky_scene(seed, lambda rng: int(rng.choice([0, 1, 2, 3, 4, 255], p=[.25, .2, .2, .2, .1, .05])),
                        lambda cid: PALETTE[cid] if cid != 255 else (0, 0, 0), 12, width, height)


def write_image(path, array, mode=None):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def write_label(path, train_ids, raw=False, bits=8):
    """A label PNG: train ids, or raw ids (RAW_IDS, 255 -> 0), as 8- or 16-bit single channel."""
    ids = np.asarray(train_ids, np.int64)
    if raw:
        ids = np.where(ids == 255, 0, np.array(RAW_IDS + [0] * 251)[np.minimum(ids, 255)])
    if bits == 16:
        ids = ids * 100 if raw else ids  # raw 16-bit ids above 255
        image = Image.fromarray(ids.astype(np.uint16))
    else:
        image = Image.fromarray(ids.astype(np.uint8), 'L')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def class_file(path, raw=False, bits=8, rare=RARE, **overrides):
    """The class file of the 5 classes; `rare` a list of train ids or None; overrides replace
    keys (None removes one)."""
    info = {'label': CLASSES, 'palette': PALETTE}
    if raw:
        info['label2train'] = [[raw_id * (100 if bits == 16 else 1), i] for i, raw_id in enumerate(RAW_IDS)]
    if rare:
        info['rare'] = rare
    info.update(overrides)
    info = {k: v for k, v in info.items() if v is not None}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    return path


def write_list(path, lines):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{line}\n' for line in lines))
    return path


def write_split(root, names, seed, labelled, raw=False, bits=8, label_dir='labels'):
    """Images root/images/NAME with labels root/<label_dir>/NAME (when labelled); list lines."""
    lines = []
    for k, name in enumerate(names):
        image, label = scene(seed + k)
        write_image(Path(root) / 'images' / name, image)
        if labelled:
            write_label(Path(root) / label_dir / name, label, raw, bits)
            lines.append(f'images/{name} {label_dir}/{name}')
        else:
            lines.append(f'images/{name}')
    return lines


SOURCE_NAMES = ['a/scene.png', 'b/scene.png', 'c/s1.png']
TARGET_TRAIN = ['north/scene.png', 'south/scene.png', 'south/t2.png', 'west/t3.png']
TARGET_VAL = ['val/v1.png', 'val/v2.png']


def make_folder_tree(root, source_raw=True, bits=8, rare=RARE):
    """The tree of the module docstring; returns root."""
    root = Path(root)
    write_list(root / 'source' / 'all.txt', write_split(root / 'source', SOURCE_NAMES, 100, True, source_raw, bits))
    write_list(root / 'target' / 'train.txt', write_split(root / 'target', TARGET_TRAIN, 200, False))
    write_list(root / 'target' / 'val.txt', write_split(root / 'target', TARGET_VAL, 300, True))
    class_file(root / 'source' / 'info.json', source_raw, bits, rare)
    class_file(root / 'target' / 'info.json', False, bits, rare)
    return root


def folder_stage1_config(tree, snap_root, **sections):
    """A stage-1 config dict (Folder -> Folder, 5 classes) on the tiny-tree settings of the
    other stage tests (tinydata.stage1_config: DeepLabv2-tiny on the CPU, W x H)."""
    tree = Path(tree)
    train = {'INFO_SOURCE': str(tree / 'source' / 'info.json'), 'INFO_TARGET': str(tree / 'target' / 'info.json'),
             'LEARNING_RATE': 0.01, 'EARLY_STOP': 4, **sections.pop('TRAIN', {})}
    test = {'INFO_TARGET': str(tree / 'target' / 'info.json'), 'SNAPSHOT_MAXITER': 4,
            'DATA_LIST_TARGET': str(tree / 'target' / 'val.txt'), **sections.pop('TEST', {})}
    folder = {'SOURCE': 'Folder', 'TARGET': 'Folder', 'NUM_CLASSES': 5, 'EXP_NAME': 'folder1',
              'DATA_DIRECTORY_SOURCE': str(tree / 'source'), 'DATA_LIST_SOURCE': str(tree / 'source' / '{}.txt'),
              'DATA_DIRECTORY_TARGET': str(tree / 'target'), 'DATA_LIST_TARGET': str(tree / 'target' / '{}.txt')}
    return stage1_config(tree, snap_root, TRAIN=train, TEST=test, **{**folder, **sections})


def folder_stage3_config(tree, snap_root, rank_dir, **sections):
    """The stage-3 config dict on the ranking in rank_dir (FolderEasy -> FolderHard)."""
    cfg = folder_stage1_config(tree, snap_root, **sections)
    cfg.update(SOURCE='FolderEasy', TARGET='FolderHard', EXP_NAME='folder3',
               DATA_LIST_SOURCE=str(Path(rank_dir) / 'easy_split.txt'),
               DATA_LIST_TARGET=str(Path(rank_dir) / 'hard_split.txt'))
    cfg['TRAIN'] = {**cfg['TRAIN'], 'INFO_SOURCE': ''}
    return cfg
