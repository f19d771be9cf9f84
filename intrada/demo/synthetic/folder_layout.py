"""The generated scenes once more in the folder layout of your own data (SPEC 11,
docs/your_own_data.md), with the 7 Cityscapes categories as the classes, so that a
Folder -> Folder run (configs/folder_advent.yml, configs/folder_intrada.yml) works out of
the box and shows what to copy:

  OUT/folder/source/images/NAME, labels/NAME   the source scenes, labels in their raw GTA ids
  OUT/folder/source/all.txt                    IMAGE LABEL lines
  OUT/folder/source/classes.json               names, palette, label2train (GTA id -> category)
  OUT/folder/target/images/{train,val}/...     the target scenes
  OUT/folder/target/labels/val/...             val labels in category ids (8 bit)
  OUT/folder/target/train.txt                  IMAGE lines: no target training label is used
  OUT/folder/target/val.txt                    IMAGE LABEL lines
  OUT/folder/target/val_unlabelled.txt         the same images without their labels (IMAGE lines), for
                                               the run without any target label
                                               (configs/folder_*_unlabelled.yml, TEST.SELECTION im)
  OUT/folder/target/classes.json               names, palette, rare classes
"""
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from intrada.demo.synthetic.labels import TRAIN_ID_TO_LABEL_ID
from intrada.demo.synthetic.writer import _write_text_atomic

# The Cityscapes categories: name, colour, and the 19 train ids each gathers.
CATEGORIES = (('flat', (128, 64, 128), (0, 1)),
              ('construction', (70, 70, 70), (2, 3, 4)),
              ('object', (153, 153, 153), (5, 6, 7)),
              ('nature', (107, 142, 35), (8, 9)),
              ('sky', (70, 130, 180), (10,)),
              ('human', (220, 20, 60), (11, 12)),
              ('vehicle', (0, 0, 142), (13, 14, 15, 16, 17, 18)))
RARE_CATEGORIES = [2, 5]  # object, human: the small things of a street scene


def _label_id_to_category():
    """[[GTA / Cityscapes label id, category id], ...]."""
    return [[TRAIN_ID_TO_LABEL_ID[train_id], category]
            for category, (_, _, train_ids) in enumerate(CATEGORIES) for train_id in train_ids]


def class_files():
    """(source class file, target class file) as dicts."""
    names = [name for name, _, _ in CATEGORIES]
    palette = [list(colour) for _, colour, _ in CATEGORIES]
    return ({'label': names, 'palette': palette, 'label2train': _label_id_to_category()},
            {'label': names, 'palette': palette, 'rare': RARE_CATEGORIES})


def _copy(source, target):
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _write_text(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(path, text)


def write_folder_layout(info):
    """Writes OUT/folder from the generated tree that generate_benchmark described (`info`);
    returns the folder. The list files are written last, so a tree they name is complete."""
    out = Path(info['root']) / 'folder'
    gta, cityscapes = Path(info['source_root']), Path(info['target_root'])
    source, target = out / 'source', out / 'target'
    to_category = np.full(256, 255, np.uint8)
    for label_id, category in _label_id_to_category():
        to_category[label_id] = category

    source_lines = []
    for name in Path(info['source_list_all']).read_text().split():
        _copy(gta / 'images' / name, source / 'images' / name)
        _copy(gta / 'labels' / name, source / 'labels' / name)
        source_lines.append(f'images/{name} labels/{name}')
    lines = {'train': [], 'val': []}
    for split in lines:
        for name in Path(info[f'target_{split}_list']).read_text().split():
            image = f'images/{split}/{name}'
            _copy(cityscapes / 'leftImg8bit' / split / name, target / image)
            if split == 'train':  # the target's training images stay unlabelled
                lines[split].append(image)
                continue
            label = f'labels/{split}/{name.replace("_leftImg8bit", "")}'
            label_ids = np.asarray(Image.open(cityscapes / 'gtFine' / split /
                                              name.replace('leftImg8bit', 'gtFine_labelIds')))
            (target / label).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(to_category[label_ids], 'L').save(target / label)
            lines[split].append(f'{image} {label}')
    source_classes, target_classes = class_files()
    _write_text(source / 'classes.json', json.dumps(source_classes, indent=1))
    _write_text(target / 'classes.json', json.dumps(target_classes, indent=1))
    _write_text(source / 'all.txt', ''.join(f'{line}\n' for line in source_lines))
    for split, split_lines in lines.items():
        _write_text(target / f'{split}.txt', ''.join(f'{line}\n' for line in split_lines))
    _write_text(target / 'val_unlabelled.txt', ''.join(f'{line.split()[0]}\n' for line in lines['val']))
    return out
