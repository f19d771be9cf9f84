"""Procedural street scenes: a GTA5 -> Cityscapes stand-in that needs no download.

A seeded, deterministic generator of small driving scenes in the 19-class Cityscapes
label space, written in the real on-disk formats so that the whole pipeline (stage 1
AdvEnt, stage 2 entropy ranking, stage 3 IntraDA) runs on it unchanged:

    OUT/GTA5/images/NNNNN.png, OUT/GTA5/labels/NNNNN.png (8-bit GTA = Cityscapes label ids),
    OUT/GTA5/all.txt
    OUT/Cityscapes/leftImg8bit/{train,val}/CITY/CITY_SSSSSS_FFFFFF_leftImg8bit.png
    OUT/Cityscapes/gtFine/{train,val}/CITY/CITY_SSSSSS_FFFFFF_gtFine_labelIds.png
                       (the method never reads gtFine/train: the demo measures pseudo-labels with it)
    OUT/Cityscapes/train.txt, OUT/Cityscapes/val.txt ('CITY/FILE', relative to leftImg8bit/SET)
    OUT/manifest.json (parameters and, per target image, its rendering condition; the
                       method never reads it: it is the ground truth of the intra-domain gap)

Scenes: a pinhole camera over a ground plane. Sky above the horizon; building facades
(perspective quads with windows), tree rows, walls and fences along both sides of the
street; road (with lane markings and crosswalks), sidewalks (with curbs and tiles) and
terrain strips below; cars, trucks, buses, trams, persons, riders on bicycles and
motorcycles, parked bicycles, street lamps, traffic signs, traffic lights, trees and
unlabelled clutter standing on the ground, sized by their distance and drawn far to
near so that near objects occlude far ones.

Domains:
- 'source' (game-like): saturated palette, every object's colour randomised, flat
  shading, no texture noise, aliased (nearest-neighbour) edges, no sensor effects.
- 'target' (real-like): a different, desaturated palette, texture grain, cloud
  textures, cast shadows, illumination gradients and vignetting, colour cast,
  antialiasing, lens blur, sensor noise and an ego-vehicle hood (unlabelled).
  A fraction of the target images is rendered under a hard condition (night, rain,
  heavy sensor noise, motion blur, low contrast): the intra-domain gap.

Run `python -m intrada.demo.synthetic OUT [--seed N] [--quick]` (cli.py). The modules,
in the order a scene is made: randomness (the one source of randomness), labels (class
ids), materials (colours per domain), camera (the camera and the painter), objects and
street (what stands where), textures, conditions (imaging and hard conditions), scene
(one scene), writer (the trees on disk).
"""
from intrada.demo.synthetic.cli import make_contact_sheet
from intrada.demo.synthetic.conditions import CONDITIONS, HARD_CONDITIONS
from intrada.demo.synthetic.labels import CLASS_NAMES, TRAIN_ID_TO_LABEL_ID, train_ids_to_label_ids
from intrada.demo.synthetic.materials import DOMAINS
from intrada.demo.synthetic.scene import render_scene
from intrada.demo.synthetic.writer import generate_benchmark

__all__ = ['generate_benchmark', 'render_scene', 'make_contact_sheet', 'CLASS_NAMES', 'CONDITIONS',
           'HARD_CONDITIONS', 'DOMAINS', 'TRAIN_ID_TO_LABEL_ID', 'train_ids_to_label_ids']
