"""Procedural street scenes: a GTA5 -> Cityscapes stand-in that needs no download.

A seeded, deterministic generator of small driving scenes in the 19-class Cityscapes
label space, written in the real on-disk formats so that the whole pipeline (stage 1
AdvEnt, stage 2 entropy ranking, stage 3 IntraDA) runs on it unchanged:

    OUT/GTA5/images/NNNNN.png, OUT/GTA5/labels/NNNNN.png (8-bit GTA = Cityscapes label ids),
    OUT/GTA5/all.txt
    OUT/Cityscapes/leftImg8bit/{train,val}/CITY/CITY_SSSSSS_FFFFFF_leftImg8bit.png
    OUT/Cityscapes/gtFine/val/CITY/CITY_SSSSSS_FFFFFF_gtFine_labelIds.png   (no gtFine/train)
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

Run `python -m intrada.synthetic OUT [--seed N] [--quick]`.
"""
import argparse
import colorsys
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

__all__ = ['generate_benchmark', 'render_scene', 'make_contact_sheet', 'CLASS_NAMES', 'CONDITIONS',
           'HARD_CONDITIONS', 'DOMAINS', 'TRAIN_ID_TO_LABEL_ID', 'train_ids_to_label_ids']

GENERATOR_VERSION = 1

CLASS_NAMES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'light', 'sign', 'vegetation',
               'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motocycle', 'bicycle')
(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEG, TERRAIN, SKY, PERSON, RIDER, CAR,
 TRUCK, BUS, TRAIN, MOTO, BIKE) = range(19)
VOID = 255
# train id -> GTA5 / Cityscapes label id; unlabelled pixels (train id 255) are written as id 0.
TRAIN_ID_TO_LABEL_ID = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
_LABEL_LUT = np.zeros(256, np.uint8)
_LABEL_LUT[:19] = TRAIN_ID_TO_LABEL_ID

DOMAINS = ('source', 'target')
HARD_CONDITIONS = ('night', 'rain', 'noise', 'motion_blur', 'low_contrast')
CONDITIONS = ('normal',) + HARD_CONDITIONS

# Standard Cityscapes palette (train-id order), for contact sheets.
PALETTE = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
           (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
           (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32))

TRAIN_CITIES = ('aachen', 'bochum', 'bremen', 'cologne', 'darmstadt', 'dusseldorf', 'erfurt', 'hamburg',
                'hanover', 'jena', 'krefeld', 'monchengladbach', 'strasbourg', 'stuttgart', 'tubingen',
                'ulm', 'weimar', 'zurich')
VAL_CITIES = ('frankfurt', 'lindau', 'munster')

SCALE = 2  # scenes are drawn at SCALE x the output size, then reduced

# --------------------------------------------------------------------------- randomness

class _Rand:
    """A numpy Generator with cheap scalar draws: scalars come from a buffer of uniforms
    the Generator fills 512 at a time (same sequence for the same Generator state); array
    draws go to the Generator itself."""

    def __init__(self, gen):
        self.gen = gen
        self._next = iter(()).__next__

    def random(self):
        try:
            return self._next()
        except StopIteration:
            self._next = iter(self.gen.random(512).tolist()).__next__
            return self._next()

    def uniform(self, a=0.0, b=1.0, size=None):
        if size is not None:
            return self.gen.uniform(a, b, size)
        try:
            return a + (b - a) * self._next()
        except StopIteration:
            return a + (b - a) * self.random()

    def integers(self, lo, hi=None, size=None):
        if size is not None:
            return self.gen.integers(lo, hi, size)
        if hi is None:
            lo, hi = 0, lo
        return lo + min(int(self.random() * (hi - lo)), hi - lo - 1)

    def choice(self, options, p=None):
        if p is None:
            return options[self.integers(len(options))]
        u, acc = self.random(), 0.0
        for option, q in zip(options, p):
            acc += q
            if u < acc:
                return option
        return options[-1]

    def poisson(self, lam):
        limit, k, prod = math.exp(-lam), 0, self.random()
        while prod > limit:
            k += 1
            prod *= self.random()
        return k

    def normal(self, loc=0.0, scale=1.0, size=None):
        return self.gen.normal(loc, scale, size)

    def standard_normal(self, size=None, dtype=np.float64):
        return self.gen.standard_normal(size, dtype=dtype)


# --------------------------------------------------------------------------- colours

# material -> (hue centre, hue half-range, saturation range, value range); hue half-range 0.5 = any hue
_SOURCE_MATERIALS = {
    'road': (0.75, 0.05, (0.12, 0.28), (0.38, 0.50)),
    'sidewalk': (0.03, 0.05, (0.30, 0.45), (0.72, 0.85)),
    'curb': (0.0, 0.5, (0.0, 0.05), (0.88, 0.97)),
    'marking': (0.15, 0.02, (0.0, 0.15), (0.95, 1.0)),
    'building': (0.0, 0.5, (0.35, 0.65), (0.55, 0.88)),
    'window': (0.52, 0.04, (0.45, 0.70), (0.55, 0.80)),
    'wall': (0.08, 0.08, (0.35, 0.55), (0.55, 0.75)),
    'fence': (0.10, 0.05, (0.55, 0.75), (0.45, 0.65)),
    'pole': (0.15, 0.03, (0.55, 0.75), (0.65, 0.85)),
    'lightbox': (0.0, 0.5, (0.0, 0.1), (0.10, 0.20)),
    'sign': (0.0, 0.5, (0.75, 0.95), (0.70, 0.95)),
    'signface': (0.0, 0.5, (0.0, 0.05), (0.95, 1.0)),
    'veg': (0.31, 0.04, (0.70, 0.90), (0.55, 0.75)),
    'trunk': (0.07, 0.02, (0.55, 0.70), (0.35, 0.45)),
    'terrain': (0.20, 0.03, (0.60, 0.80), (0.65, 0.78)),
    'sky': (0.58, 0.02, (0.55, 0.70), (0.92, 1.0)),
    'horizon': (0.55, 0.03, (0.15, 0.30), (0.97, 1.0)),
    'skin': (0.06, 0.02, (0.40, 0.60), (0.65, 0.95)),
    'clothes': (0.0, 0.5, (0.60, 1.0), (0.45, 0.95)),
    'car': (0.0, 0.5, (0.65, 1.0), (0.55, 1.0)),
    'truck': (0.0, 0.5, (0.55, 0.90), (0.55, 0.90)),
    'bus': (0.0, 0.5, (0.55, 0.90), (0.60, 0.95)),
    'train': (0.0, 0.5, (0.55, 0.90), (0.60, 0.95)),
    'moto': (0.0, 0.5, (0.70, 1.0), (0.55, 1.0)),
    'bike': (0.0, 0.5, (0.70, 1.0), (0.55, 1.0)),
    'tyre': (0.0, 0.5, (0.0, 0.1), (0.06, 0.12)),
    'glass': (0.55, 0.03, (0.50, 0.70), (0.30, 0.45)),
    'clutter': (0.0, 0.5, (0.5, 0.9), (0.4, 0.9)),
    'hood': (0.0, 0.5, (0.0, 0.1), (0.1, 0.2)),
}
_TARGET_MATERIALS = {
    'road': (0.60, 0.10, (0.02, 0.08), (0.27, 0.36)),
    'sidewalk': (0.08, 0.05, (0.04, 0.12), (0.46, 0.58)),
    'curb': (0.0, 0.5, (0.0, 0.05), (0.60, 0.70)),
    'marking': (0.12, 0.03, (0.0, 0.10), (0.62, 0.75)),
    'building': (0.08, 0.06, (0.06, 0.30), (0.36, 0.68)),
    'window': (0.60, 0.05, (0.05, 0.15), (0.12, 0.22)),
    'wall': (0.10, 0.05, (0.05, 0.15), (0.45, 0.60)),
    'fence': (0.10, 0.05, (0.08, 0.25), (0.30, 0.45)),
    'pole': (0.0, 0.5, (0.0, 0.05), (0.30, 0.45)),
    'lightbox': (0.0, 0.5, (0.0, 0.1), (0.07, 0.14)),
    'sign': (0.0, 0.5, (0.35, 0.60), (0.40, 0.60)),
    'signface': (0.0, 0.5, (0.0, 0.05), (0.70, 0.80)),
    'veg': (0.22, 0.04, (0.35, 0.55), (0.20, 0.36)),
    'trunk': (0.08, 0.02, (0.25, 0.40), (0.18, 0.27)),
    'terrain': (0.17, 0.04, (0.25, 0.45), (0.35, 0.50)),
    'sky': (0.58, 0.03, (0.04, 0.20), (0.76, 0.90)),
    'horizon': (0.58, 0.03, (0.0, 0.08), (0.84, 0.95)),
    'skin': (0.06, 0.02, (0.30, 0.50), (0.45, 0.80)),
    'clothes': (0.0, 0.5, (0.0, 0.35), (0.10, 0.55)),
    'car': (0.0, 0.5, (0.0, 0.06), (0.10, 0.85)),
    'truck': (0.0, 0.5, (0.0, 0.10), (0.55, 0.85)),
    'bus': (0.12, 0.06, (0.10, 0.45), (0.55, 0.80)),
    'train': (0.0, 0.5, (0.05, 0.35), (0.55, 0.80)),
    'moto': (0.0, 0.5, (0.0, 0.25), (0.08, 0.40)),
    'bike': (0.0, 0.5, (0.0, 0.25), (0.08, 0.40)),
    'tyre': (0.0, 0.5, (0.0, 0.05), (0.04, 0.08)),
    'glass': (0.60, 0.05, (0.05, 0.15), (0.10, 0.18)),
    'clutter': (0.0, 0.5, (0.0, 0.3), (0.2, 0.6)),
    'hood': (0.0, 0.5, (0.0, 0.08), (0.06, 0.14)),
}


class _Palette:
    def __init__(self, domain, rng):
        self.domain = domain
        self.table = _SOURCE_MATERIALS if domain == 'source' else _TARGET_MATERIALS
        self.rng = rng
        self.cache = {}

    def shared(self, material):
        """One colour of this material for the whole scene (tyres, glass, ...)."""
        if material not in self.cache:
            self.cache[material] = self(material)
        return self.cache[material]

    def __call__(self, material):
        h0, dh, (s0, s1), (v0, v1) = self.table[material]
        rng = self.rng
        h = (h0 + rng.uniform(-dh, dh)) % 1.0
        s = rng.uniform(s0, s1)
        v = rng.uniform(v0, v1)
        if self.domain == 'target' and material == 'car' and rng.random() < 0.35:
            s = rng.uniform(0.15, 0.5)  # some coloured cars in the real domain too
            v = rng.uniform(0.2, 0.6)
        r, g, b = colorsys.hsv_to_rgb(h, s, v)
        return (int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5))


def _shade(colour, k):
    r, g, b = colour
    return (min(255, int(r * k + 0.5)), min(255, int(g * k + 0.5)), min(255, int(b * k + 0.5)))


# --------------------------------------------------------------------------- geometry and drawing

class _Camera:
    """Pinhole camera at height hc over the ground plane, looking along +Z (render pixels)."""

    def __init__(self, rng, W, H):
        self.f = W * rng.uniform(0.85, 1.15)
        self.hc = rng.uniform(1.2, 1.7)
        self.yh = H * rng.uniform(0.36, 0.47)
        self.xv = W * rng.uniform(0.42, 0.58)

    def pt(self, X, Y, Z):
        return (self.xv + self.f * X / Z, self.yh + self.f * (self.hc - Y) / Z)


class _Painter:
    """Draws every primitive into aligned canvases: train ids and colour always; surface
    ids (1 ground, >= 2 textured vertical planes) and emitted light (for night) only for
    the primitives that have them. Occlusion of a surface or a light by a later primitive
    shows in the label map, which the texture pass checks (_SURFACE_CLASSES)."""

    def __init__(self, W, H, cam):
        self.W, self.H, self.cam = W, H, cam
        self.lab = Image.new('L', (W, H), SKY)
        self.col = Image.new('RGB', (W, H), (0, 0, 0))
        self.srf = Image.new('L', (W, H), 0)
        self.emi = Image.new('RGB', (W, H), (0, 0, 0))
        self.dl, self.dc, self.ds, self.de = (ImageDraw.Draw(im) for im in (self.lab, self.col, self.srf, self.emi))

    # image-space primitives
    def poly(self, pts, cls, colour, surf=0, emit=None):
        pts = [(float(x), float(y)) for x, y in pts]
        self.dl.polygon(pts, fill=cls)
        self.dc.polygon(pts, fill=colour)
        if surf:
            self.ds.polygon(pts, fill=surf)
        if emit is not None:
            self.de.polygon(pts, fill=emit)

    def rect(self, u0, v0, u1, v1, cls, colour, emit=None, min_px=2):
        if u1 < u0:
            u0, u1 = u1, u0
        if v1 < v0:
            v0, v1 = v1, v0
        if u1 - u0 < min_px:
            c = 0.5 * (u0 + u1)
            u0, u1 = c - 0.5 * min_px, c + 0.5 * min_px
        if v1 - v0 < min_px:
            c = 0.5 * (v0 + v1)
            v0, v1 = c - 0.5 * min_px, c + 0.5 * min_px
        a0, b0 = int(round(u0)), int(round(v0))
        a1, b1 = max(a0, int(round(u1)) - 1), max(b0, int(round(v1)) - 1)
        if a1 < 0 or b1 < 0 or a0 >= self.W or b0 >= self.H:
            return
        box = [a0, b0, a1, b1]
        self.dl.rectangle(box, fill=cls)
        self.dc.rectangle(box, fill=colour)
        if emit is not None:
            self.de.rectangle(box, fill=emit)

    def ellipse(self, cu, cv, ru, rv, cls, colour, emit=None, outline_px=None):
        ru, rv = max(ru, 0.75), max(rv, 0.75)
        box = [cu - ru, cv - rv, cu + ru, cv + rv]
        if box[2] < 0 or box[3] < 0 or box[0] >= self.W or box[1] >= self.H:
            return
        draws = ((self.dl, cls), (self.dc, colour)) + (((self.de, emit),) if emit is not None else ())
        for d, fill in draws:
            if outline_px is None:
                d.ellipse(box, fill=fill)
            else:
                d.ellipse(box, outline=fill, width=max(2, int(round(outline_px))))

    def line(self, p0, p1, width_px, cls, colour):
        w = max(2, int(round(width_px)))
        pts = [(float(p0[0]), float(p0[1])), (float(p1[0]), float(p1[1]))]
        self.dl.line(pts, fill=cls, width=w)
        self.dc.line(pts, fill=colour, width=w)

    # world-space primitives (X right, Y up, Z forward; metres)
    def wpoly(self, pts3, cls, colour, surf=0, emit=None):
        self.poly([self.cam.pt(*p) for p in pts3], cls, colour, surf, emit)

    def wrect(self, X0, X1, Y0, Y1, Z, cls, colour, emit=None, min_px=2):
        u0, v0 = self.cam.pt(X0, Y1, Z)
        u1, v1 = self.cam.pt(X1, Y0, Z)
        self.rect(u0, v0, u1, v1, cls, colour, emit=emit, min_px=min_px)

    def wellipse(self, X, Y, Z, rx, ry, cls, colour, emit=None, outline=None):
        cu, cv = self.cam.pt(X, Y, Z)
        f = self.cam.f / Z
        self.ellipse(cu, cv, rx * f, ry * f, cls, colour, emit,
                     None if outline is None else outline * f)

    def wline(self, a, b, Z, width, cls, colour):
        self.line(self.cam.pt(a[0], a[1], Z), self.cam.pt(b[0], b[1], Z), width * self.cam.f / Z, cls, colour)


class _Planes:
    """Parameters of the textured vertical planes, indexed by their surface id (>= 2)."""
    SIDE, FRONT = 1, 2
    BUILDING, WALLTEX, FENCETEX = 1, 2, 3
    FIELDS = ('kind', 'pos', 'tex', 'period_a', 'period_b', 'frac_a', 'frac_b', 'phase', 'shop', 'lit')

    def __init__(self):
        # pos: X of a side plane, Z of a front plane; period_a / period_b: window (bar, panel)
        # spacing along the plane / floor height; shop: ground-floor height; lit: lit windows at night
        self.rows = [(0,) * len(self.FIELDS) + ((0, 0, 0),)] * 2

    def add(self, kind, pos, tex, detail=(0, 0, 0), period_a=1.0, period_b=1.0, frac_a=0.0, frac_b=0.0,
            phase=0.0, shop=0.0, lit=0.0):
        if len(self.rows) > 255:
            return 0
        self.rows.append((kind, pos, tex, period_a, period_b, frac_a, frac_b, phase, shop, lit, detail))
        return len(self.rows) - 1

    def arrays(self):
        n = len(self.rows)
        table = np.zeros((256, len(self.FIELDS)), np.float32)
        table[:n] = [r[:-1] for r in self.rows]
        table[n:, 3:5] = 1.0
        table[:n][:, 3:5] = np.maximum(table[:n][:, 3:5], 1e-3)
        out = {name: table[:, i] for i, name in enumerate(self.FIELDS)}
        out['kind'] = out['kind'].astype(np.int8)
        out['tex'] = out['tex'].astype(np.int8)
        detail = np.zeros((256, 3), np.float32)
        detail[:n] = np.asarray([r[-1] for r in self.rows], np.float32) / 255.0
        out['detail'] = detail
        return out


# --------------------------------------------------------------------------- the scene

class _Scene:
    pass


def _layout(rng):
    """Lateral structure of the street (metres from the camera axis, per side)."""
    s = _Scene()
    s.zend = rng.uniform(90.0, 200.0)
    s.sides = []
    for sgn in (-1, 1):
        side = {'sgn': sgn}
        d0 = rng.uniform(3.0, 8.5)                              # road edge
        d1 = d0 + (rng.uniform(1.0, 3.0) if rng.random() < 0.25 else 0.0)  # inner terrain strip
        d2 = d1 + rng.uniform(1.8, 4.5)                         # sidewalk
        d3 = d2 + (rng.uniform(1.0, 5.0) if rng.random() < 0.4 else 0.0)  # outer terrain strip
        side.update(d0=d0, d1=d1, d2=d2, d3=d3, dback=d3 + rng.uniform(8.0, 25.0))
        side['type'] = rng.choice(['city', 'park', 'open'], p=[0.72, 0.18, 0.10])
        side['outer'] = TERRAIN if (side['type'] != 'city' or rng.random() < 0.5) else SIDEWALK
        s.sides.append(side)
    return s


def _facade_segments(rng, side, zend, palette, planes):
    """Front facade segments of one side: buildings, tree rows and gaps."""
    segs = []
    z = rng.uniform(0.3, 3.0)
    while z < zend:
        length = rng.uniform(8.0, 30.0) * (1.0 + z / 50.0)  # far segments are small in the image
        r = rng.random()
        if side['type'] == 'city':
            kind = 'building' if r < 0.76 else ('veg' if r < 0.88 else 'gap')
        elif side['type'] == 'park':
            kind = 'veg' if r < 0.8 else ('building' if r < 0.9 else 'gap')
        else:
            kind = 'gap' if r < 0.7 else 'veg'
        segs.append(_make_segment(rng, kind, side['sgn'] * side['d3'], z, min(z + length, zend), palette, planes))
        z += length
    return segs


def _make_segment(rng, kind, X, z0, z1, palette, planes, height=None):
    seg = {'kind': kind, 'X': X, 'z0': z0, 'z1': z1}
    if kind == 'building':
        seg['h'] = rng.uniform(6.0, 26.0) if height is None else height
        seg['colour'] = palette('building')
        seg['surf'] = planes.add(_Planes.SIDE, X, _Planes.BUILDING, palette('window'),
                                 period_a=rng.uniform(2.4, 4.0), period_b=rng.uniform(2.8, 3.6),
                                 frac_a=rng.uniform(0.35, 0.65), frac_b=rng.uniform(0.35, 0.6),
                                 phase=rng.uniform(0, 1), shop=rng.choice([0.0, rng.uniform(3.5, 4.5)]),
                                 lit=rng.uniform(0.15, 0.5))
    elif kind == 'veg':
        seg['h'] = rng.uniform(3.0, 12.0) if height is None else height
        seg['colour'] = palette('veg')
        n = min(12, max(3, int((z1 - z0) / 2.5)))
        seg['bumps'] = [rng.uniform(-0.35, 0.35) * seg['h'] for _ in range(n + 1)]
    return seg


def _draw_segment(p, seg):
    X, z0, z1 = seg['X'], seg['z0'], seg['z1']
    if seg['kind'] == 'building':
        h = seg['h']
        p.wpoly([(X, 0, z0), (X, h, z0), (X, h, z1), (X, 0, z1)], BUILDING, seg['colour'], surf=seg['surf'])
    elif seg['kind'] == 'veg':
        bumps = seg['bumps']
        n = len(bumps) - 1
        top = [(X, max(1.0, seg['h'] + b), z0 + (z1 - z0) * i / n) for i, b in enumerate(bumps)]
        p.wpoly([(X, 0, z0)] + top + [(X, 0, z1)], VEG, seg['colour'])


def _ground(p, s, palette, road_colour):
    zn, zf = 0.6, s.zend
    for side in s.sides:
        g = side['sgn']
        strips = [(side['d2'], side['dback'], side['outer'], side['outer_colour']),
                  (side['d1'], side['d2'], SIDEWALK, side['sidewalk_colour'])]
        if side['d1'] > side['d0']:
            strips.append((side['d0'], side['d1'], TERRAIN, side['terrain_colour']))
        for a, b, cls, colour in strips:
            p.wpoly([(g * a, 0, zn), (g * b, 0, zn), (g * b, 0, zf), (g * a, 0, zf)], cls, colour, surf=1)
    l, r = -s.sides[0]['d0'], s.sides[1]['d0']
    p.wpoly([(l, 0, zn), (r, 0, zn), (r, 0, zf), (l, 0, zf)], ROAD, road_colour, surf=1)


# --------------------------------------------------------------------------- objects

_OCTAGON = [(math.sin(2 * math.pi * i / 8), math.cos(2 * math.pi * i / 8)) for i in range(8)]


def _draw_car(p, pal, X, Z, kind, colour, oncoming):
    """A car / truck / bus / tram seen from behind (or the front), with its near side visible."""
    if kind == CAR:
        w, h, L = 1.8, 1.45, 4.4
        body = 0.55 * h
    elif kind == TRUCK:
        w, h, L = 2.4, 3.4, 8.0
        body = h
    elif kind == BUS:
        w, h, L = 2.5, 3.1, 11.5
        body = h
    else:  # TRAIN (tram)
        w, h, L = 2.6, 3.4, 24.0
        body = h
    tyre, glass = pal.shared('tyre'), pal.shared('glass')
    side_colour = _shade(colour, 0.78)
    x0, x1 = X - w / 2, X + w / 2
    detailed = p.cam.f * w / Z > 10  # far vehicles skip their small parts
    # near side face (the side facing the camera axis)
    if abs(X) > w / 2:
        xs = x0 if X > 0 else x1
        p.wpoly([(xs, 0.25, Z), (xs, body, Z), (xs, body, Z + L), (xs, 0.25, Z + L)], kind, side_colour)
        if kind == CAR:
            p.wpoly([(xs, body, Z + 0.9), (xs, h, Z + 1.5), (xs, h, Z + L - 1.6), (xs, body, Z + L - 0.6)],
                    kind, _shade(glass, 1.2))
        elif kind in (BUS, TRAIN):
            p.wpoly([(xs, 1.3, Z + 0.3), (xs, h - 0.35, Z + 0.3), (xs, h - 0.35, Z + L - 0.3),
                     (xs, 1.3, Z + L - 0.3)], kind, glass)
        for zc in ((Z + 0.8, Z + L - 0.9) if kind != TRAIN else (Z + 2.0, Z + L - 2.0)) if detailed else ():
            r = 0.33 if kind == CAR else 0.5
            pts = [(xs, r + r * sn, zc + r * cs) for sn, cs in _OCTAGON]
            p.wpoly(pts, kind, tyre)
    # rear (or front) face
    if kind != TRAIN and detailed:
        p.wrect(x0 + 0.05, x0 + 0.35, 0.0, 0.4, Z, kind, tyre)
        p.wrect(x1 - 0.35, x1 - 0.05, 0.0, 0.4, Z, kind, tyre)
    p.wrect(x0, x1, 0.22, body, Z, kind, colour)
    lamp = (255, 250, 230) if oncoming else (235, 30, 25)
    if kind == CAR:
        p.wpoly([(x0 + 0.08, body, Z), (x0 + 0.25, h, Z), (x1 - 0.25, h, Z), (x1 - 0.08, body, Z)], kind,
                _shade(colour, 0.92))
        p.wpoly([(x0 + 0.2, body + 0.04, Z), (x0 + 0.32, h - 0.08, Z), (x1 - 0.32, h - 0.08, Z),
                 (x1 - 0.2, body + 0.04, Z)], kind, glass)
        p.wrect(x0 + 0.05, x0 + 0.3, body - 0.25, body - 0.08, Z, kind, lamp, emit=lamp, min_px=1)
        p.wrect(x1 - 0.3, x1 - 0.05, body - 0.25, body - 0.08, Z, kind, lamp, emit=lamp, min_px=1)
        if detailed:
            p.wrect(x0 + 0.1, x1 - 0.1, 0.22, 0.4, Z, kind, _shade(colour, 0.55), min_px=1)
    else:
        top_glass = (1.6, h - 0.3) if kind != TRUCK else (h - 0.9, h - 0.3)
        if kind == TRUCK:
            p.wrect(x0, x1, h - 0.08, h, Z, kind, _shade(colour, 0.7), min_px=1)
        else:
            p.wrect(x0 + 0.2, x1 - 0.2, top_glass[0], top_glass[1], Z, kind, glass, min_px=1)
        p.wrect(x0 + 0.1, x0 + 0.4, 0.5, 0.8, Z, kind, lamp, emit=lamp, min_px=1)
        p.wrect(x1 - 0.4, x1 - 0.1, 0.5, 0.8, Z, kind, lamp, emit=lamp, min_px=1)
        if kind == TRAIN:
            p.wline((X - 0.6, h), (X, h + 0.9), Z, 0.06, TRAIN, _shade(colour, 0.4))
            p.wline((X, h + 0.9), (X + 0.6, h + 0.9), Z, 0.06, TRAIN, _shade(colour, 0.4))


def _draw_person(p, pal, X, Z, h, cls=PERSON, stride=0.0):
    shirt, pants, skin, hair = pal('clothes'), pal('clothes'), pal('skin'), pal.shared('tyre')
    hip = 0.48 * h
    if p.cam.f * h / Z < 14:  # far: legs, torso, head
        p.wpoly([(X - 0.13, hip, Z), (X + 0.13, hip, Z), (X + 0.14 + stride, 0, Z), (X - 0.14 - stride, 0, Z)],
                cls, pants)
        p.wpoly([(X - 0.16, hip, Z), (X - 0.21, 0.81 * h, Z), (X + 0.21, 0.81 * h, Z), (X + 0.16, hip, Z)], cls,
                shirt)
        p.wellipse(X, 0.915 * h, Z, 0.085 * h * 0.8, 0.085 * h, cls, hair)
        return
    p.wpoly([(X - 0.13, hip, Z), (X - 0.01, hip, Z), (X - 0.03 - stride, 0, Z), (X - 0.14 - stride, 0, Z)], cls,
            pants)
    p.wpoly([(X + 0.01, hip, Z), (X + 0.13, hip, Z), (X + 0.14 + stride, 0, Z), (X + 0.03 + stride, 0, Z)], cls,
            pants)
    p.wpoly([(X - 0.16, hip, Z), (X - 0.21, 0.81 * h, Z), (X + 0.21, 0.81 * h, Z), (X + 0.16, hip, Z)], cls, shirt)
    p.wpoly([(X - 0.21, 0.80 * h, Z), (X - 0.27, 0.47 * h, Z), (X - 0.21, 0.46 * h, Z), (X - 0.17, 0.72 * h, Z)],
            cls, _shade(shirt, 0.85))
    p.wpoly([(X + 0.21, 0.80 * h, Z), (X + 0.27, 0.47 * h, Z), (X + 0.21, 0.46 * h, Z), (X + 0.17, 0.72 * h, Z)],
            cls, _shade(shirt, 0.85))
    p.wrect(X - 0.05, X + 0.05, 0.80 * h, 0.85 * h, Z, cls, skin, min_px=1)
    p.wellipse(X, 0.915 * h, Z, 0.085 * h * 0.8, 0.075 * h, cls, skin)
    p.wellipse(X, 0.95 * h, Z, 0.08 * h * 0.8, 0.045 * h, cls, hair)


def _draw_bicycle(p, pal, X, Z, d, colour, rider=False):
    """Side view; d = +1 / -1 is the direction of travel."""
    tyre = pal.shared('tyre')
    r = 0.34
    rear, front = (X - 0.52 * d, r), (X + 0.52 * d, r)
    crank, seat, head = (X - 0.02 * d, 0.32), (X - 0.2 * d, 0.92), (X + 0.38 * d, 0.95)
    for hub in (rear, front):
        p.wellipse(hub[0], hub[1], Z, r, r, BIKE, tyre, outline=0.06)
    for a, b in ((rear, crank), (crank, seat), (seat, rear), (crank, head), (seat, head), (head, front)):
        p.wline(a, b, Z, 0.05, BIKE, colour)
    p.wline(head, (head[0] + 0.05 * d, 1.05), Z, 0.05, BIKE, colour)
    p.wline((seat[0] - 0.1 * d, seat[1] + 0.03), (seat[0] + 0.1 * d, seat[1] + 0.03), Z, 0.06, BIKE, tyre)
    if rider:
        _draw_side_rider(p, pal, (seat[0], seat[1] + 0.08), crank, (head[0] + 0.03 * d, 1.05), Z, d, helmet=False)


def _draw_motorcycle(p, pal, X, Z, d, colour, rider=False):
    tyre = pal.shared('tyre')
    r = 0.32
    for hx in (X - 0.7 * d, X + 0.7 * d):
        p.wellipse(hx, r, Z, r, r, MOTO, tyre)
        p.wellipse(hx, r, Z, r * 0.45, r * 0.45, MOTO, _shade(colour, 0.6))
    p.wpoly([(X - 0.75 * d, 0.55, Z), (X - 0.45 * d, 0.85, Z), (X + 0.15 * d, 0.95, Z), (X + 0.5 * d, 1.0, Z),
             (X + 0.6 * d, 0.6, Z), (X + 0.2 * d, 0.35, Z), (X - 0.3 * d, 0.35, Z)], MOTO, colour)
    p.wline((X + 0.5 * d, 1.0), (X + 0.7 * d, r), Z, 0.06, MOTO, _shade(colour, 0.5))
    p.wline((X + 0.45 * d, 1.0), (X + 0.55 * d, 1.12), Z, 0.05, MOTO, tyre)
    if rider:
        _draw_side_rider(p, pal, (X - 0.2 * d, 1.0), (X + 0.05 * d, 0.5), (X + 0.5 * d, 1.1), Z, d, helmet=True)


def _draw_side_rider(p, pal, hip, foot, hand, Z, d, helmet):
    shirt, pants, skin = pal('clothes'), pal('clothes'), pal('skin')
    shoulder = (hip[0] + 0.22 * d, hip[1] + 0.55)
    p.wline(hip, foot, Z, 0.14, RIDER, pants)
    knee = (hip[0] + 0.35 * d, hip[1] - 0.05)
    p.wline(hip, knee, Z, 0.15, RIDER, pants)
    p.wline(knee, foot, Z, 0.12, RIDER, pants)
    p.wline(hip, shoulder, Z, 0.3, RIDER, shirt)
    p.wline(shoulder, hand, Z, 0.09, RIDER, _shade(shirt, 0.85))
    head = (shoulder[0] + 0.08 * d, shoulder[1] + 0.2)
    p.wellipse(head[0], head[1], Z, 0.12, 0.13, RIDER, pal('clothes') if helmet else skin)
    if not helmet:
        p.wellipse(head[0] - 0.02 * d, head[1] + 0.05, Z, 0.11, 0.07, RIDER, pal.shared('tyre'))


def _draw_tree(p, pal, X, Z, rng, veg_colour, trunk_colour, target):
    th = rng.uniform(1.8, 3.5)
    cr = rng.uniform(1.2, 2.8)
    tw = rng.uniform(0.12, 0.22)
    p.wrect(X - tw, X + tw, 0, th + cr * 0.5, Z, VEG, trunk_colour)
    cy = th + cr
    blobs = [(0.0, 0.0, 1.0)] + [(rng.uniform(-0.7, 0.7), rng.uniform(-0.5, 0.6), rng.uniform(0.5, 0.8))
                                 for _ in range(int(rng.integers(3, 7)))]
    shades = [rng.uniform(0.8, 1.15) for _ in blobs]
    if p.cam.f * cr / Z < 6:
        blobs = blobs[:3]
    for (dx, dy, s), k in zip(blobs, shades):
        c = _shade(veg_colour, k) if target else veg_colour
        p.wellipse(X + dx * cr, cy + dy * cr, Z, cr * s, cr * s * 0.9, VEG, c)


def _draw_lamp(p, pal, X, Z, side_sgn, h, colour):
    w = 0.09
    p.wrect(X - w, X + w, 0, h, Z, POLE, colour)
    arm = -side_sgn * 1.4
    p.wline((X, h), (X + arm, h + 0.25), Z, 0.08, POLE, colour)
    lamp = (255, 235, 190)
    p.wellipse(X + arm, h + 0.15, Z, 0.3, 0.1, POLE, _shade(colour, 0.8), emit=lamp)


def _draw_sign(p, pal, X, Z, pole_colour, rng, pole_h=None):
    h = rng.uniform(2.2, 3.0) if pole_h is None else pole_h
    p.wrect(X - 0.05, X + 0.05, 0, h, Z, POLE, pole_colour)
    colour, face = pal('sign'), pal.shared('signface')
    shape = rng.integers(4)
    if shape == 0:      # round
        p.wellipse(X, h + 0.3, Z, 0.32, 0.32, SIGN, colour)
        p.wellipse(X, h + 0.3, Z, 0.22, 0.22, SIGN, face)
    elif shape == 1:    # triangle
        p.wpoly([(X - 0.38, h + 0.05, Z), (X, h + 0.7, Z), (X + 0.38, h + 0.05, Z)], SIGN, colour)
        p.wpoly([(X - 0.24, h + 0.13, Z), (X, h + 0.52, Z), (X + 0.24, h + 0.13, Z)], SIGN, face)
    elif shape == 2:    # square
        p.wrect(X - 0.3, X + 0.3, h, h + 0.6, Z, SIGN, colour)
        p.wrect(X - 0.2, X + 0.2, h + 0.1, h + 0.5, Z, SIGN, face, min_px=1)
    else:               # wide direction sign
        p.wrect(X - 0.7, X + 0.7, h, h + 0.55, Z, SIGN, colour)
        p.wrect(X - 0.55, X + 0.4, h + 0.2, h + 0.32, Z, SIGN, face, min_px=1)


def _draw_traffic_light(p, pal, X, Z, side_sgn, pole_colour, rng, overhead):
    box = pal.shared('lightbox')
    state = int(rng.integers(3))
    lamp_colours = ((230, 40, 30), (240, 170, 20), (40, 220, 110))
    if overhead:
        h = rng.uniform(5.2, 6.0)
        reach = rng.uniform(2.5, 5.0)
        p.wrect(X - 0.1, X + 0.1, 0, h, Z, POLE, pole_colour)
        bx = X - side_sgn * reach
        p.wline((X, h), (bx - side_sgn * 0.4, h), Z, 0.1, POLE, pole_colour)
        top = h - 0.05
    else:
        h = rng.uniform(2.6, 3.6)
        p.wrect(X - 0.07, X + 0.07, 0, h, Z, POLE, pole_colour)
        bx, top = X, h + 0.9
    p.wrect(bx - 0.17, bx + 0.17, top - 0.9, top, Z, LIGHT, box)
    for i, c in enumerate(lamp_colours):
        on = i == state
        colour = c if on else _shade(c, 0.25)
        p.wellipse(bx, top - 0.15 - 0.3 * i, Z, 0.09, 0.09, LIGHT, colour, emit=c if on else None)
    if not overhead and rng.random() < 0.5:
        p.wrect(bx - 0.15, bx + 0.15, h - 0.6, h - 0.3, Z, SIGN, pal('sign'), min_px=1)


class _Objects:
    """Ground-standing objects: rejection of overlapping footprints, drawn far to near."""

    def __init__(self):
        self.items = []
        self.foot = []

    def free(self, X, Z, rx, rz):
        for x, z, a, b in self.foot:
            if abs(x - X) < rx + a and abs(z - Z) < rz + b:
                return False
        return True

    def add(self, X, Z, rx, rz, fn, *args, check=True):
        if check and not self.free(X, Z, rx, rz):
            return False
        self.foot.append((X, Z, rx, rz))
        self.items.append((Z, len(self.items), fn, args))
        return True

    def draw(self, p):
        for Z, _, fn, args in sorted(self.items, key=lambda t: (-t[0], t[1])):
            fn(p, *args)


def _place_objects(rng, s, pal, target):
    objs = _Objects()
    left, right = s.sides
    road_l, road_r = -left['d0'], right['d0']
    zmin, zmax = 3.5, 85.0
    pole_colour = pal('pole')

    def sidewalk_x(side, margin=0.3):
        return side['sgn'] * rng.uniform(side['d1'] + margin, side['d2'] - margin)

    # street lamps along the curbs
    for side in s.sides:
        if rng.random() < 0.75:
            z, h = rng.uniform(4.0, 15.0), rng.uniform(6.0, 9.0)
            while z < zmax:
                X = side['sgn'] * (side['d1'] + 0.4)
                objs.add(X, z, 0.3, 0.3, _draw_lamp, pal, X, z, side['sgn'], h, pole_colour)
                z += rng.uniform(15.0, 30.0)
    # traffic lights at an intersection, crosswalk in front of it
    s.crosswalk = None
    if rng.random() < 0.55:
        zi = rng.uniform(10.0, 45.0)
        if rng.random() < 0.7:
            s.crosswalk = (zi - 4.5, zi - 1.5)
        for side in s.sides:
            if rng.random() < 0.8:
                X = side['sgn'] * (side['d1'] + 0.5)
                objs.add(X, zi, 0.3, 0.3, _draw_traffic_light, pal, X, zi, side['sgn'], pole_colour, rng,
                         rng.random() < 0.35, check=False)
        if s.crosswalk is not None:
            for _ in range(int(rng.poisson(1.5))):
                X, Z = rng.uniform(road_l + 0.5, road_r - 0.5), rng.uniform(*s.crosswalk)
                objs.add(X, Z, 0.3, 0.3, _draw_person, pal, X, Z, rng.uniform(1.55, 1.9), PERSON,
                         rng.uniform(0.0, 0.12))
    # traffic signs
    for _ in range(int(rng.integers(0, 4))):
        side = s.sides[int(rng.integers(2))]
        X, Z = side['sgn'] * (side['d1'] + rng.uniform(0.3, 0.7)), rng.uniform(zmin + 1, 60.0)
        objs.add(X, Z, 0.4, 0.4, _draw_sign, pal, X, Z, pole_colour, rng)
    # trees: in sidewalk pits or on the terrain strips
    veg_colour, trunk_colour = pal('veg'), pal('trunk')
    for side in s.sides:
        p_tree = 0.9 if side['type'] == 'park' else 0.4
        if rng.random() < p_tree:
            z = rng.uniform(3.0, 12.0)
            on_terrain = side['d3'] - side['d2'] > 1.5 and rng.random() < 0.6
            while z < zmax:
                if on_terrain:
                    d = rng.uniform(side['d2'] + 0.6, side['d3'] - 0.6)
                else:
                    d = side['d2'] - 0.7 if side['d2'] - side['d1'] > 2.2 else side['d1'] + 0.2
                X = side['sgn'] * d
                objs.add(X, z, 0.8, 0.8, _draw_tree, pal, X, z, rng, veg_colour, trunk_colour, target)
                z += rng.uniform(6.0, 14.0)
    # pedestrians on the sidewalks
    for _ in range(int(rng.poisson(3.0))):
        side = s.sides[int(rng.integers(2))]
        X, Z = sidewalk_x(side), rng.uniform(zmin, 55.0)
        n = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
        for k in range(n):
            objs.add(X + 0.6 * k * side['sgn'], Z + rng.uniform(-0.4, 0.4), 0.3, 0.3, _draw_person, pal,
                     X + 0.6 * k * side['sgn'], Z, rng.uniform(1.5, 1.95), PERSON, rng.uniform(0, 0.1))
    # parked bicycles and motorcycles, unlabelled clutter
    for _ in range(int(rng.poisson(0.8))):
        side = s.sides[int(rng.integers(2))]
        X, Z = sidewalk_x(side, 0.6), rng.uniform(zmin, 40.0)
        d = 1 if rng.random() < 0.5 else -1
        if rng.random() < 0.75:
            objs.add(X, Z, 0.9, 0.3, _draw_bicycle, pal, X, Z, d, pal('bike'), False)
        else:
            objs.add(X, Z, 1.1, 0.4, _draw_motorcycle, pal, X, Z, d, pal('moto'), False)
    for _ in range(int(rng.poisson(1.0))):
        side = s.sides[int(rng.integers(2))]
        X, Z = sidewalk_x(side, 0.4), rng.uniform(zmin, 40.0)
        w, h = rng.uniform(0.4, 0.9), rng.uniform(0.6, 1.3)
        objs.add(X, Z, w, 0.4, _draw_box, X, Z, w, h, pal('clutter'))
    # riders
    for _ in range(int(rng.poisson(0.8))):
        near_edge = rng.random() < 0.6
        if near_edge:
            X = road_r - 0.8 if rng.random() < 0.5 else road_l + 0.8
        else:
            X = rng.uniform(road_l + 1.0, road_r - 1.0)
        Z, d = rng.uniform(zmin + 1, 50.0), (1 if rng.random() < 0.5 else -1)
        if rng.random() < 0.7:
            objs.add(X, Z, 1.0, 0.6, _draw_bicycle, pal, X, Z, d, pal('bike'), True)
        else:
            objs.add(X, Z, 1.2, 0.6, _draw_motorcycle, pal, X, Z, d, pal('moto'), True)
    # big vehicles
    if rng.random() < 0.45:
        kind = TRUCK if rng.random() < 0.5 else BUS
        lanes = _lanes(road_l, road_r)
        X, Z = lanes[int(rng.integers(len(lanes)))], rng.uniform(8.0, 60.0)
        L = 4.5 if kind == TRUCK else 6.0
        objs.add(X, Z + L, 1.4, L + 0.5, _draw_car, pal, X, Z, kind, pal('truck' if kind == TRUCK else 'bus'),
                 rng.random() < 0.3)
    if rng.random() < 0.12:
        X, Z = 0.5 * (road_l + road_r), rng.uniform(15.0, 50.0)
        objs.add(X, Z + 12.0, 1.5, 12.5, _draw_car, pal, X, Z, TRAIN, pal('train'), rng.random() < 0.5)
    # cars: parked rows along the curbs, traffic in the lanes
    for side, edge in ((left, road_l), (right, road_r)):
        if rng.random() < 0.55:
            X = edge - side['sgn'] * 1.1
            z = rng.uniform(zmin + 1.0, 15.0)
            while z < 70.0:
                if rng.random() < 0.8:
                    objs.add(X, z + 2.2, 1.0, 2.4, _draw_car, pal, X, z, CAR, pal('car'), False)
                z += rng.uniform(5.0, 9.0)
    lanes = _lanes(road_l, road_r)
    for _ in range(int(rng.poisson(2.5))):
        X = lanes[int(rng.integers(len(lanes)))] + rng.uniform(-0.4, 0.4)
        Z = rng.uniform(zmin + 1.5, 75.0)
        objs.add(X, Z + 2.2, 1.0, 2.6, _draw_car, pal, X, Z, CAR, pal('car'), X < 0 and rng.random() < 0.6)
    return objs


def _lanes(road_l, road_r):
    n = max(1, int((road_r - road_l) / 3.2))
    w = (road_r - road_l) / n
    return [road_l + w * (i + 0.5) for i in range(n)]


def _draw_box(p, X, Z, w, h, colour):
    p.wrect(X - w / 2, X + w / 2, 0, h, Z, VOID, colour)
    p.wrect(X - w / 2 - 0.05, X + w / 2 + 0.05, h - 0.1, h, Z, VOID, _shade(colour, 0.7), min_px=1)


# --------------------------------------------------------------------------- rendering

def _smooth_noise(rng, W, H, cells_w, cells_h):
    small = rng.standard_normal((cells_h, cells_w), dtype=np.float32)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)


def _frac(x):
    return x - np.floor(x)


def _paint_scene(rng, domain, Wr, Hr):
    """Lays out and draws one scene at render resolution. Returns the canvases and the
    geometry needed by the texture pass."""
    target = domain == 'target'
    pal = _Palette(domain, rng)
    cam = _Camera(rng, Wr, Hr)
    s = _layout(rng)
    planes = _Planes()
    p = _Painter(Wr, Hr, cam)
    road_colour = pal('road')
    for side in s.sides:
        side['sidewalk_colour'] = pal('sidewalk')
        side['terrain_colour'] = pal('terrain')
        side['outer_colour'] = side['terrain_colour'] if side['outer'] == TERRAIN else side['sidewalk_colour']
        side['curb_colour'] = pal('curb')
    s.sky_top, s.sky_horizon = pal('sky'), pal('horizon')
    s.marking = pal('marking')
    # far end of the street: a frontal skyline
    xl, xr = -s.sides[0]['dback'] - 5.0, s.sides[1]['dback'] + 5.0
    x = xl
    while x < xr:
        w = rng.uniform(5.0, 25.0)
        if rng.random() < 0.75:
            h = rng.uniform(5.0, 35.0)
            k = planes.add(_Planes.FRONT, s.zend, _Planes.BUILDING, pal('window'), period_a=rng.uniform(2.5, 4.0),
                           period_b=rng.uniform(2.8, 3.6), frac_a=0.5, frac_b=0.5, phase=rng.uniform(0, 1),
                           lit=rng.uniform(0.15, 0.5))
            p.wpoly([(x, 0, s.zend), (x, h, s.zend), (x + w, h, s.zend), (x + w, 0, s.zend)], BUILDING,
                    pal('building'), surf=k)
        else:
            h = rng.uniform(4.0, 14.0)
            p.wellipse(x + w / 2, h * 0.5, s.zend, w * 0.6, h * 0.5, VEG, pal('veg'))
            p.wrect(x, x + w, 0, h * 0.5, s.zend, VEG, pal('veg'))
        x += w
    # back row of buildings / trees, visible through the gaps of the front row
    for side in s.sides:
        z = 0.3
        X = side['sgn'] * side['dback']
        while z < s.zend:
            length = rng.uniform(12.0, 40.0) * (1.0 + z / 40.0)
            kind = 'building' if rng.random() < 0.7 else 'veg'
            _draw_segment(p, _make_segment(rng, kind, X, z, min(z + length, s.zend), pal, planes))
            z += length
    _ground(p, s, pal, road_colour)
    # front row
    for side in s.sides:
        side['segments'] = _facade_segments(rng, side, s.zend, pal, planes)
    for seg in sorted(s.sides[0]['segments'] + s.sides[1]['segments'], key=lambda g: -g['z0']):
        _draw_segment(p, seg)
    # walls and fences just in front of the front row
    for side in s.sides:
        for cls, prob in ((WALL, 0.4), (FENCE, 0.45)):
            if rng.random() >= prob:
                continue
            X = side['sgn'] * (side['d3'] - (0.15 if cls == WALL else 0.3))
            z = rng.uniform(0.5, 25.0)
            for _ in range(int(rng.integers(1, 3))):
                z1 = z + rng.uniform(6.0, 30.0)
                h = rng.uniform(0.9, 2.6) if cls == WALL else rng.uniform(0.9, 2.0)
                colour = pal('wall' if cls == WALL else 'fence')
                if cls == WALL:
                    k = planes.add(_Planes.SIDE, X, _Planes.WALLTEX, _shade(colour, 0.8), period_a=rng.uniform(1.5, 3.0))
                else:
                    k = planes.add(_Planes.SIDE, X, _Planes.FENCETEX, _shade(colour, 0.55),
                                   period_a=rng.uniform(0.15, 0.3), frac_a=rng.uniform(0.35, 0.6))
                p.wpoly([(X, 0, z), (X, h, z), (X, h, z1), (X, 0, z1)], cls, colour, surf=k)
                z = z1 + rng.uniform(3.0, 20.0)
    objs = _place_objects(rng, s, pal, target)
    objs.draw(p)
    if target:  # ego-vehicle hood, unlabelled
        hood = pal('hood')
        hh = Hr * rng.uniform(0.05, 0.09)
        us = np.linspace(-0.1 * Wr, 1.1 * Wr, 17)
        curve = [(u, Hr - hh * (1.0 - 0.55 * ((u - Wr / 2) / (0.6 * Wr)) ** 2)) for u in us]
        p.poly(curve + [(1.1 * Wr, Hr + 2), (-0.1 * Wr, Hr + 2)], VOID, hood)
    return p, cam, s, planes


_GROUND_CLASSES = np.zeros(256, bool)
_GROUND_CLASSES[[ROAD, SIDEWALK, TERRAIN]] = True
_PLANE_CLASSES = np.zeros(256, bool)
_PLANE_CLASSES[[BUILDING, WALL, FENCE]] = True
_EMITTER_CLASSES = np.zeros(256, bool)
_EMITTER_CLASSES[[POLE, LIGHT, CAR, TRUCK, BUS, TRAIN]] = True
# target domain: per-class amplitude of the fine texture grain and of mid-frequency blotches
_GRAIN = np.zeros(256, np.float32)
_GRAIN[[ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, VEG, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN,
        MOTO, BIKE, VOID]] = (0.07, 0.06, 0.05, 0.06, 0.06, 0.03, 0.16, 0.14, 0.01, 0.04, 0.04, 0.03, 0.03, 0.03,
                              0.03, 0.04, 0.04, 0.05)
_BLOTCH = np.full(256, 0.04, np.float32)
_BLOTCH[[VEG, TERRAIN]] = 0.25
_BLOTCH[ROAD] = 0.08
_BLOTCH[SKY] = 0.0


def _texture(rng, domain, p, cam, s, planes, want_emission):
    """Analytic textures (windows, markings, tiles, bars), the sky gradient and, in the
    target domain, grain, clouds, shadows and illumination. Returns float32 RGB in 0..1
    (render size), the label map and the emitted light (None unless want_emission)."""
    target = domain == 'target'
    Hr, Wr = p.H, p.W
    lab = np.asarray(p.lab)
    srf = np.asarray(p.srf)
    col = np.asarray(p.col).astype(np.float32) * np.float32(1 / 255.0)
    f, hc, xv, yh = cam.f, cam.hc, cam.xv, cam.yh
    rows = (np.arange(Hr, dtype=np.float32) + 0.5)[:, None]        # (H, 1)
    cols = (np.arange(Wr, dtype=np.float32) + 0.5)[None, :] - xv   # (1, W), relative to the vanishing point
    shade = np.ones((Hr, Wr), np.float32)                          # multiplicative shading, applied at the end

    # sky: a vertical gradient (and clouds in the target domain)
    r = min(Hr, int(yh) + 2)                                       # the sky lies above the horizon
    sky = lab[:r] == SKY
    t = np.clip(rows[:r] / max(yh, 1.0), 0.0, 1.0) ** 1.5
    top = np.asarray(s.sky_top, np.float32) / 255.0
    hor = np.asarray(s.sky_horizon, np.float32) / 255.0
    sky_col = (top * (1 - t) + hor * t)[:, None, :]                # (r, 1, 3)
    if target:
        c = np.clip(_smooth_noise(rng, Wr, Hr, 9, 5)[:r] * 0.8 + rng.uniform(-0.6, 0.4), 0, 1)[..., None] * 0.7
        sky_col = sky_col * (1 - c) + 0.93 * c
    col[:r] = np.where(sky[..., None], sky_col, col[:r])

    # ground: lane markings, crosswalk, curbs, tiles (and a cast shadow in the target domain)
    phase = rng.uniform(0, 9)
    s.shadow_side = -1
    if target and rng.random() < 0.65:
        s.shadow_side = int(rng.integers(2))
        shadow_width, shadow_k = rng.uniform(3.0, 14.0), rng.uniform(0.5, 0.72)
    ground = (srf == 1) & _GROUND_CLASSES[lab]
    first = int(np.ceil(yh + 0.5))                                 # rows below the horizon
    if first < Hr and ground[first:].any():
        g = ground[first:]
        lg = lab[first:]
        Zg = f * hc / (rows[first:] - yh)                          # (h, 1)
        Xg = cols * (Zg / f)                                       # (h, W)
        road_l, road_r = -s.sides[0]['d0'], s.sides[1]['d0']
        mark = (np.abs(Xg - (road_l + 0.25)) < 0.08) | (np.abs(Xg - (road_r - 0.25)) < 0.08)
        lanes = _lanes(road_l, road_r)
        if len(lanes) > 1:
            dash = _frac((Zg + phase) / 9.0) < 0.4
            for a, b in zip(lanes[:-1], lanes[1:]):
                mark |= (np.abs(Xg - 0.5 * (a + b)) < 0.07) & dash
        if s.crosswalk is not None:
            z0, z1 = s.crosswalk
            mark |= ((Zg > z0) & (Zg < z1)) & (_frac(Xg) < 0.5)
        mark &= g & (lg == ROAD)
        sub = col[first:]
        sub[mark] = np.asarray(s.marking, np.float32) / 255.0
        walk = g & (lg == SIDEWALK)
        right = Xg > 0
        curb = walk & (np.abs(Xg) < np.where(right, s.sides[1]['d1'], s.sides[0]['d1']) + 0.2)
        for side_index in (0, 1):
            sub[curb & (right if side_index else ~right)] = np.asarray(s.sides[side_index]['curb_colour'],
                                                                      np.float32) / 255.0
        tiles = walk & ~curb & ((_frac(Xg / 0.7) < 0.07) | (_frac(Zg / 0.7) < 0.07))
        sh = shade[first:]
        sh[tiles] = 0.86
        if s.shadow_side >= 0:
            side = s.sides[s.shadow_side]
            sh[g & (side['sgn'] * Xg > side['d3'] - shadow_width - 0.08 * Zg)] *= shadow_k

    # vertical planes: windows, wall panels, fence bars
    emission = np.zeros((Hr, Wr, 3), np.float32) if want_emission else None
    idx = np.flatnonzero((srf >= 2) & _PLANE_CLASSES[lab])
    if len(idx):
        P = planes.arrays()
        k = srf.reshape(-1)[idx].astype(np.intp)
        ys = (idx // Wr).astype(np.float32) + 0.5
        xs = (idx % Wr).astype(np.float32) + 0.5 - xv
        side = P['kind'][k] == _Planes.SIDE
        pos = P['pos'][k]
        den = np.where(np.abs(xs) < 1e-3, 1e-3, xs)
        Z = np.maximum(np.where(side, f * pos / den, pos), 1e-3)
        A = np.where(side, Z, xs * Z / f)
        B = hc - (ys - yh) * Z / f
        pa, pb = P['period_a'][k], P['period_b'][k]
        fa = A / pa + P['phase'][k]
        ia = np.floor(fa)
        fa -= ia
        fb = _frac(B / pb)
        tex = P['tex'][k]
        shop_h = P['shop'][k]
        win = (tex == _Planes.BUILDING) & (
            ((B > np.maximum(shop_h, 0.8)) & (fa < P['frac_a'][k]) & (fb > 0.3) & (fb < 0.3 + P['frac_b'][k]))
            | ((B > 0.3) & (B < shop_h - 0.7) & (fa < 0.8)))
        seam = _frac(A / pa) < 0.04
        if target:
            seam |= _frac(B / 0.6) < 0.03
        detail = win | ((tex == _Planes.WALLTEX) & seam) | \
            ((tex == _Planes.FENCETEX) & (fa <= P['frac_a'][k]) & (_frac(B / 1.2) >= 0.12))
        col.reshape(-1, 3)[idx[detail]] = P['detail'][k[detail]]
        if s.shadow_side >= 0:
            shade.reshape(-1)[idx[side & (np.sign(pos) == s.sides[s.shadow_side]['sgn'])]] *= 0.75
        if want_emission:
            ib = np.floor(B / pb).astype(np.int64)
            hsh = ((ia.astype(np.int64) * 73856093) ^ (ib * 19349663) ^ (k * 83492791)) & 1023
            emission.reshape(-1, 3)[idx[win & (hsh < P['lit'][k] * 1024)]] = (1.0, 0.82, 0.55)
    if want_emission:
        emitters = _EMITTER_CLASSES[lab]
        emission[emitters] = np.asarray(p.emi, np.float32)[emitters] / 255.0

    if target:
        # texture grain, leafy blotches, smooth illumination, a sideways ramp, vignetting
        grain = rng.standard_normal((Hr, Wr), dtype=np.float32)
        mid = _smooth_noise(rng, Wr, Hr, Wr // 6, Hr // 6)
        low = _smooth_noise(rng, Wr, Hr, 5, 3)
        sun = rng.uniform(-0.18, 0.18)
        vig = rng.uniform(0.08, 0.25)
        uu = cols[0] / Wr + (xv / Wr - 0.5)
        vv = rows[:, 0] / Hr - 0.5
        light = (1.0 + 2 * sun * uu)[None, :] * (1.0 - 2 * vig * (uu[None, :] ** 2 + vv[:, None] ** 2))
        shade *= (1.0 + _GRAIN[lab] * grain + _BLOTCH[lab] * mid) * (1.0 + 0.12 * low) * light
    col *= shade[..., None]
    return col, lab, emission


def _finish(rng, domain, condition, col, emission, size):
    """Camera model: reduction to the output size, colour cast, blur, sensor noise and the
    rendering condition. col: float32 RGB at render size."""
    W, H = size
    if domain == 'source' and condition == 'normal':
        out = col[::SCALE, ::SCALE]
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    target = domain == 'target'
    if target:
        cast = 1.0 + rng.normal(0, 0.035, 3)
        tint = [(1.06, 1.0, 0.9), (0.92, 0.98, 1.08), (0.98, 1.04, 0.95), (1.0, 1.0, 1.0)][int(rng.integers(4))]
        gain = (cast * np.asarray(tint) * rng.uniform(0.88, 1.1)).astype(np.float32)
        gamma = rng.uniform(0.9, 1.15)
        noise_sigma = rng.uniform(1.5, 4.0) / 255.0
        blur_sigma = rng.uniform(0.45, 0.8)
    else:
        gain, gamma, noise_sigma, blur_sigma = np.ones(3, np.float32), 1.0, 0.0, 0.0
    img = col
    if condition == 'night':
        dark = rng.uniform(0.10, 0.2)
        tint = [(1.0, 0.8, 0.55), (0.7, 0.8, 1.0)][int(rng.integers(2))]
        img = img * (dark * np.asarray(tint, np.float32))
        if emission is not None:
            glow = cv2.GaussianBlur(emission, (0, 0), sigmaX=2.5 * SCALE)
            img = np.maximum(img, emission * 0.95) + 0.8 * glow
        noise_sigma = rng.uniform(7.0, 13.0) / 255.0
        blur_sigma = rng.uniform(0.7, 1.1)
    img = cv2.resize(np.ascontiguousarray(img, dtype=np.float32), (W, H), interpolation=cv2.INTER_AREA)
    if target:
        img = np.clip(img * gain, 0, 1)
        if gamma != 1.0:
            img = img ** np.float32(gamma)
    if blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=blur_sigma)
    if condition == 'rain':
        img = img * rng.uniform(0.6, 0.8)
        mean = img.mean(axis=(0, 1), keepdims=True)
        img = mean + (img - mean) * rng.uniform(0.55, 0.75)
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=rng.uniform(0.9, 1.4))
        streaks = Image.new('L', (W, H), 0)
        d = ImageDraw.Draw(streaks)
        slant = rng.uniform(-0.35, 0.35)
        n = int(W * H / rng.uniform(35.0, 70.0))
        x0, y0 = rng.uniform(-5, W + 5, n), rng.uniform(-5, H, n)
        length, level = rng.uniform(3.0, 9.0, n), rng.integers(90, 200, n)
        for i in range(n):
            d.line([(x0[i], y0[i]), (x0[i] + slant * length[i], y0[i] + length[i])], fill=int(level[i]), width=1)
        a = np.asarray(streaks, np.float32)[..., None] * np.float32(0.55 / 255.0)
        img = img * (1 - a) + 0.85 * a
        noise_sigma = max(noise_sigma, rng.uniform(3.0, 6.0) / 255.0)
    elif condition == 'motion_blur':
        n = int(rng.integers(5, 11))
        ang = math.radians(rng.uniform(-20, 20))
        k = np.zeros((n, n), np.float32)
        c = (n - 1) / 2
        for i in range(4 * n):
            t = i / (4 * n - 1) - 0.5
            k[int(round(c + t * (n - 1) * math.sin(ang))), int(round(c + t * (n - 1) * math.cos(ang)))] = 1
        img = cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)
    elif condition == 'low_contrast':
        mean = img.mean(axis=(0, 1), keepdims=True)
        grey = img.mean(axis=2, keepdims=True)
        img = 0.5 * img + 0.5 * grey
        img = mean + rng.uniform(-0.08, 0.12) + (img - mean) * rng.uniform(0.22, 0.4)
    elif condition == 'noise':
        img = img * rng.uniform(0.75, 0.95)
        noise_sigma = rng.uniform(14.0, 24.0) / 255.0
        img = img + rng.standard_normal((H, W, 3), dtype=np.float32) * (noise_sigma * 0.6)
    if noise_sigma > 0:
        img = img + rng.standard_normal((H, W, 1), dtype=np.float32) * noise_sigma \
            + rng.standard_normal((H, W, 3), dtype=np.float32) * (noise_sigma * 0.35)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def render_scene(rng, domain='source', condition='normal', size=(128, 64)):
    """One scene. rng: a numpy Generator (the only source of randomness); domain: 'source'
    (game-like) or 'target' (real-like); condition: 'normal' or one of HARD_CONDITIONS;
    size: (width, height). Returns (rgb uint8 HxWx3, train ids uint8 HxW, 255 = unlabelled).
    The layout and colours are drawn from rng before anything condition-specific, so the
    same seed renders the same scene under every condition."""
    if domain not in DOMAINS:
        raise ValueError(f'domain must be one of {DOMAINS}, got {domain!r}')
    if condition not in CONDITIONS:
        raise ValueError(f'condition must be one of {CONDITIONS}, got {condition!r}')
    W, H = int(size[0]), int(size[1])
    if W < 8 or H < 8:
        raise ValueError(f'size {size} is too small (at least 8 x 8)')
    Wr, Hr = W * SCALE, H * SCALE
    if not isinstance(rng, _Rand):
        rng = _Rand(rng)
    p, cam, s, planes = _paint_scene(rng, domain, Wr, Hr)
    col, lab, emission = _texture(rng, domain, p, cam, s, planes, want_emission=condition == 'night')
    rgb = _finish(rng, domain, condition, col, emission, (W, H))
    labels = np.ascontiguousarray(lab[::SCALE, ::SCALE])
    return rgb, labels


def train_ids_to_label_ids(train_ids):
    """Train ids (255 = unlabelled) -> GTA5 / Cityscapes label ids (unlabelled -> 0)."""
    return _LABEL_LUT[np.asarray(train_ids, np.uint8)]


# --------------------------------------------------------------------------- the benchmark tree

def _params(seed, n_source, n_target_train, n_target_val, size, hard_fraction):
    return {'version': GENERATOR_VERSION, 'seed': int(seed), 'size': [int(size[0]), int(size[1])],
            'n_source': int(n_source), 'n_target_train': int(n_target_train), 'n_target_val': int(n_target_val),
            'hard_fraction': float(hard_fraction)}


def _cityscapes_names(cities, n):
    names = []
    per_city = max(1, math.ceil(n / len(cities)))
    for i in range(n):
        city = cities[min(i // per_city, len(cities) - 1)]
        seq = i - (i // per_city) * per_city
        names.append(f'{city}/{city}_{seq:06d}_{19:06d}_leftImg8bit.png')
    return names


def _conditions(seed, split_index, n, hard_fraction):
    rng = np.random.default_rng([seed, 100 + split_index])
    n_hard = int(round(hard_fraction * n))
    conds = ['normal'] * n
    order = rng.permutation(n)[:n_hard]
    hard = [HARD_CONDITIONS[j % len(HARD_CONDITIONS)] for j in range(n_hard)]
    rng.shuffle(hard)
    for i, c in zip(order, hard):
        conds[int(i)] = c
    return conds


def _plan(out, params):
    """Every file of the tree: (domain index, image index, domain, condition, image path, label path)."""
    seed = params['seed']
    jobs = []
    gta = out / 'GTA5'
    src_names = [f'{i + 1:05d}.png' for i in range(params['n_source'])]
    for i, name in enumerate(src_names):
        jobs.append((0, i, 'source', 'normal', gta / 'images' / name, gta / 'labels' / name))
    cs = out / 'Cityscapes'
    splits = {}
    for split_index, (split, cities, n) in enumerate((('train', TRAIN_CITIES, params['n_target_train']),
                                                      ('val', VAL_CITIES, params['n_target_val']))):
        names = _cityscapes_names(cities, n)
        conds = _conditions(seed, split_index, n, params['hard_fraction'])
        splits[split] = (names, conds)
        for i, (name, cond) in enumerate(zip(names, conds)):
            label = cs / 'gtFine' / split / name.replace('leftImg8bit', 'gtFine_labelIds') if split == 'val' else None
            jobs.append((1 + split_index, i, 'target', cond, cs / 'leftImg8bit' / split / name, label))
    return jobs, src_names, splits


def _render_job(job, seed, size):
    dom_index, i, domain, cond, img_path, label_path = job
    rng = np.random.default_rng([seed, dom_index, i])
    rgb, train_ids = render_scene(rng, domain, cond, size)
    img_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, 'RGB').save(img_path, compress_level=1)
    if label_path is not None:
        label_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(train_ids_to_label_ids(train_ids), 'L').save(label_path, compress_level=1)
    return cond


def _render_chunk(args):
    jobs, seed, size = args
    for job in jobs:
        _render_job(job, seed, size)
    return len(jobs)


_IN_PROGRESS = '.synthetic_in_progress'


def _write_text_atomic(path, text):
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    tmp.write_text(text)
    os.replace(tmp, path)


def _result(out, params, skipped, seconds, manifest):
    gta, cs = out / 'GTA5', out / 'Cityscapes'
    return {
        'root': str(out),
        'source_root': str(gta), 'source_list': str(gta / '{}.txt'), 'source_list_all': str(gta / 'all.txt'),
        'target_root': str(cs), 'target_list': str(cs / '{}.txt'),
        'target_train_list': str(cs / 'train.txt'), 'target_val_list': str(cs / 'val.txt'),
        'manifest': str(out / 'manifest.json'),
        'counts': {'source': params['n_source'], 'target_train': params['n_target_train'],
                   'target_val': params['n_target_val'],
                   'target_train_hard': sum(v['hard'] for v in manifest['target_train'].values()),
                   'target_val_hard': sum(v['hard'] for v in manifest['target_val'].values())},
        'params': params, 'skipped': skipped, 'seconds': seconds,
    }


def _complete(out, params):
    """The manifest of a finished tree with these parameters, or None."""
    try:
        manifest = json.loads((out / 'manifest.json').read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get('params') != params:
        return None
    jobs, src_names, splits = _plan(out, params)
    lists = {out / 'GTA5' / 'all.txt': src_names,
             out / 'Cityscapes' / 'train.txt': splits['train'][0],
             out / 'Cityscapes' / 'val.txt': splits['val'][0]}
    for path, names in lists.items():
        try:
            if path.read_text().split() != names:
                return None
        except OSError:
            return None
    for job in jobs:
        if not job[4].is_file() or (job[5] is not None and not job[5].is_file()):
            return None
    return manifest


def generate_benchmark(out_dir, seed=0, n_source=600, n_target_train=400, n_target_val=300, size=(128, 64),
                       hard_fraction=0.35, workers=1, verbose=False):
    """Writes (or finds) the synthetic GTA5 / Cityscapes trees under out_dir; returns a dict
    with the roots ('source_root', 'target_root'), the list files ('source_list' and
    'target_list' as '{}' patterns for the configs, 'source_list_all', 'target_train_list',
    'target_val_list'), 'manifest', 'counts', 'params', 'skipped' (True when a complete tree
    with the same parameters was already there) and 'seconds'.
    workers > 1 renders with that many processes (the bytes do not depend on it)."""
    t0 = time.time()
    if not 0.0 <= hard_fraction <= 1.0:
        raise ValueError(f'hard_fraction must lie in [0, 1], got {hard_fraction}')
    if min(n_source, n_target_train, n_target_val) < 1:
        raise ValueError('every split needs at least one image')
    out = Path(out_dir).resolve()
    params = _params(seed, n_source, n_target_train, n_target_val, size, hard_fraction)
    manifest = _complete(out, params)
    if manifest is not None:
        return _result(out, params, True, time.time() - t0, manifest)

    out.mkdir(parents=True, exist_ok=True)
    old_manifest = out / 'manifest.json'
    marker = out / _IN_PROGRESS
    if not old_manifest.exists() and not marker.exists():
        foreign = [d for d in (out / 'GTA5', out / 'Cityscapes') if d.is_dir() and any(d.iterdir())]
        if foreign:
            raise ValueError(f'{foreign[0]} exists and is not a synthetic tree (no manifest.json): '
                             f'refusing to write into it; choose an empty folder')
    marker.write_text('generation in progress; the tree is complete when manifest.json exists\n')
    old_lists = [out / 'GTA5' / 'all.txt', out / 'Cityscapes' / 'train.txt', out / 'Cityscapes' / 'val.txt']
    stale = set()
    if old_manifest.exists():  # a tree of ours with other parameters: forget it first
        for lst, base in zip(old_lists, (('GTA5/images', 'GTA5/labels'), ('Cityscapes/leftImg8bit/train',),
                                         ('Cityscapes/leftImg8bit/val', 'Cityscapes/gtFine/val'))):
            try:
                names = lst.read_text().split()
            except OSError:
                continue
            for b in base:
                for name in names:
                    if b.endswith('gtFine/val'):
                        name = name.replace('leftImg8bit', 'gtFine_labelIds')
                    stale.add(out / b / name)
        old_manifest.unlink()
    jobs, src_names, splits = _plan(out, params)
    keep = {j[4] for j in jobs} | {j[5] for j in jobs if j[5] is not None}
    for path in stale - keep:
        try:
            path.unlink()
        except OSError:
            pass

    size = tuple(params['size'])
    if workers and workers > 1:
        import multiprocessing as mp
        chunks = [(jobs[i::workers * 4], seed, size) for i in range(workers * 4)]
        with mp.get_context('fork' if sys.platform.startswith('linux') else 'spawn').Pool(workers) as pool:
            done = sum(pool.map(_render_chunk, chunks))
        assert done == len(jobs)
    else:
        for n, job in enumerate(jobs):
            _render_job(job, seed, size)
            if verbose and (n + 1) % 200 == 0:
                print(f'  {n + 1}/{len(jobs)} images', flush=True)

    (out / 'GTA5').mkdir(parents=True, exist_ok=True)
    _write_text_atomic(out / 'GTA5' / 'all.txt', ''.join(n + '\n' for n in src_names))
    for split in ('train', 'val'):
        _write_text_atomic(out / 'Cityscapes' / f'{split}.txt', ''.join(n + '\n' for n in splits[split][0]))
    manifest = dict(params)
    manifest.update({
        'generator': 'intrada.synthetic',
        'params': params,
        'classes': list(CLASS_NAMES),
        'hard_conditions': list(HARD_CONDITIONS),
        'source_domain': 'source (game-like: saturated randomised colours, flat shading, aliased edges)',
        'target_domain': 'target (real-like: textures, lighting, colour cast, blur, sensor noise)',
        'counts': {'source': params['n_source'], 'target_train': params['n_target_train'],
                   'target_val': params['n_target_val']},
    })
    for split in ('train', 'val'):
        names, conds = splits[split]
        manifest[f'target_{split}'] = {n: {'hard': c != 'normal', 'condition': c} for n, c in zip(names, conds)}
    _write_text_atomic(out / 'manifest.json', json.dumps(manifest, indent=1, sort_keys=True) + '\n')
    marker.unlink()
    return _result(out, params, False, time.time() - t0, manifest)


# --------------------------------------------------------------------------- contact sheet and CLI

def colourise(train_ids):
    pal = np.zeros((256, 3), np.uint8)
    pal[:19] = PALETTE
    return pal[np.asarray(train_ids, np.uint8)]


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
    ap = argparse.ArgumentParser(prog='python -m intrada.synthetic', description=__doc__.split('\n')[0])
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
    args = ap.parse_args(argv)
    counts = (60, 40, 30) if args.quick else (600, 400, 300)
    n_source = args.n_source if args.n_source is not None else counts[0]
    n_train = args.n_target_train if args.n_target_train is not None else counts[1]
    n_val = args.n_target_val if args.n_target_val is not None else counts[2]
    info = generate_benchmark(args.out, seed=args.seed, n_source=n_source, n_target_train=n_train,
                              n_target_val=n_val, size=tuple(args.size), hard_fraction=args.hard_fraction,
                              workers=args.workers, verbose=True)
    if args.contact_sheet:
        make_contact_sheet(args.contact_sheet, seed=args.seed, size=tuple(args.size))
    print(json.dumps(info, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
