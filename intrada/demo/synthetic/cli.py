"""Procedural street scenes: a GTA5 -> Cityscapes stand-in that needs no download.

python -m intrada.demo.synthetic OUT [--seed N] [--quick] [--contact-sheet PNG] [--folder-layout] ...
"""
import argparse
import json

import cv2
import numpy as np
from PIL import Image

from intrada.demo.synthetic.conditions import HARD_CONDITIONS
from intrada.demo.synthetic.folder_layout import write_folder_layout
from intrada.demo.synthetic.labels import colourise
from intrada.demo.synthetic.scene import render_scene
from intrada.demo.synthetic.writer import generate_benchmark


def make_contact_sheet(path, seed=0, size=(128, 64), zoom=3, columns=4):
    """A PNG of source, target and hard-condition scenes, each above its colourised label."""
    rows = []
    specs = [('source', 'normal')] * columns + [('target', 'normal')] * columns + \
        [('target', c) for c in HARD_CONDITIONS][:columns] + [('target', c) for c in HARD_CONDITIONS][columns:]
    tiles = []
    for j, (domain, cond) in enumerate(specs):
        rgb, lab = render_scene(np.random.default_rng([seed, 7, j]), domain, cond, size)
        tiles.append(np.concatenate([rgb, colourise(lab)], axis=0))
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    for r in range(0, len(tiles), columns):
        row = [np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles[r:r + columns]]
        rows.append(np.concatenate(row, axis=1))
    sheet = np.concatenate(rows, axis=0)
    sheet = cv2.resize(sheet, (sheet.shape[1] * zoom, sheet.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
    Image.fromarray(sheet).save(path)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(prog='python -m intrada.demo.synthetic', description=__doc__.split('\n')[0])
    ap.add_argument('out', help='output folder (GTA5/, Cityscapes/, manifest.json are written there)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--quick', action='store_true', help='a small tree: 60 source, 40 target train, 30 val')
    ap.add_argument('--n-source', type=int, default=None)
    ap.add_argument('--n-target-train', type=int, default=None)
    ap.add_argument('--n-target-val', type=int, default=None)
    ap.add_argument('--size', type=int, nargs=2, default=(128, 64), metavar=('W', 'H'))
    ap.add_argument('--hard-fraction', type=float, default=0.35)
    ap.add_argument('--workers', type=int, default=1)
    ap.add_argument('--contact-sheet', default=None, help='also write a contact sheet PNG here')
    ap.add_argument('--folder-layout', action='store_true',
                    help='also write the scenes in the folder layout of your own data, 7 classes (OUT/folder; '
                         'docs/your_own_data.md)')
    args = ap.parse_args(argv)
    counts = (60, 40, 30) if args.quick else (600, 400, 300)
    n_source = args.n_source if args.n_source is not None else counts[0]
    n_train = args.n_target_train if args.n_target_train is not None else counts[1]
    n_val = args.n_target_val if args.n_target_val is not None else counts[2]
    info = generate_benchmark(args.out, seed=args.seed, n_source=n_source, n_target_train=n_train,
                              n_target_val=n_val, size=tuple(args.size), hard_fraction=args.hard_fraction,
                              workers=args.workers, verbose=True)
    if args.folder_layout:
        info['folder_root'] = str(write_folder_layout(info))
    if args.contact_sheet:
        make_contact_sheet(args.contact_sheet, seed=args.seed, size=tuple(args.size))
    print(json.dumps(info, indent=1))
    return 0
