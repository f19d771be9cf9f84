"""The street around the camera: its lateral layout, the facades, the ground strips and
where the objects stand (drawn far to near, so near objects occlude far ones)."""
from intrada.demo.synthetic.camera import Planes
from intrada.demo.synthetic.labels import BUILDING, BUS, CAR, PERSON, ROAD, SIDEWALK, TERRAIN, TRAIN, TRUCK, VEG
from intrada.demo.synthetic.objects import (draw_bicycle, draw_box, draw_car, draw_lamp, draw_motorcycle,
                                            draw_person, draw_sign, draw_traffic_light, draw_tree)


class _Street:
    """One street's parameters, filled in as it is laid out and painted."""


def street_layout(rng):
    """Lateral structure of the street (metres from the camera axis, per side)."""
    s = _Street()
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


def facade_segments(rng, side, zend, palette, planes):
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
        segs.append(make_segment(rng, kind, side['sgn'] * side['d3'], z, min(z + length, zend), palette, planes))
        z += length
    return segs


def make_segment(rng, kind, X, z0, z1, palette, planes, height=None):
    seg = {'kind': kind, 'X': X, 'z0': z0, 'z1': z1}
    if kind == 'building':
        seg['h'] = rng.uniform(6.0, 26.0) if height is None else height
        seg['colour'] = palette('building')
        seg['surf'] = planes.add(Planes.SIDE, X, Planes.BUILDING, palette('window'),
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


def draw_segment(p, seg):
    X, z0, z1 = seg['X'], seg['z0'], seg['z1']
    if seg['kind'] == 'building':
        h = seg['h']
        p.wpoly([(X, 0, z0), (X, h, z0), (X, h, z1), (X, 0, z1)], BUILDING, seg['colour'], surf=seg['surf'])
    elif seg['kind'] == 'veg':
        bumps = seg['bumps']
        n = len(bumps) - 1
        top = [(X, max(1.0, seg['h'] + b), z0 + (z1 - z0) * i / n) for i, b in enumerate(bumps)]
        p.wpoly([(X, 0, z0)] + top + [(X, 0, z1)], VEG, seg['colour'])


def draw_ground(p, s, palette, road_colour):
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


def place_objects(rng, s, pal, target):
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
                objs.add(X, z, 0.3, 0.3, draw_lamp, pal, X, z, side['sgn'], h, pole_colour)
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
                objs.add(X, zi, 0.3, 0.3, draw_traffic_light, pal, X, zi, side['sgn'], pole_colour, rng,
                         rng.random() < 0.35, check=False)
        if s.crosswalk is not None:
            for _ in range(int(rng.poisson(1.5))):
                X, Z = rng.uniform(road_l + 0.5, road_r - 0.5), rng.uniform(*s.crosswalk)
                objs.add(X, Z, 0.3, 0.3, draw_person, pal, X, Z, rng.uniform(1.55, 1.9), PERSON,
                         rng.uniform(0.0, 0.12))
    # traffic signs
    for _ in range(int(rng.integers(0, 4))):
        side = s.sides[int(rng.integers(2))]
        X, Z = side['sgn'] * (side['d1'] + rng.uniform(0.3, 0.7)), rng.uniform(zmin + 1, 60.0)
        objs.add(X, Z, 0.4, 0.4, draw_sign, pal, X, Z, pole_colour, rng)
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
                objs.add(X, z, 0.8, 0.8, draw_tree, pal, X, z, rng, veg_colour, trunk_colour, target)
                z += rng.uniform(6.0, 14.0)
    # pedestrians on the sidewalks
    for _ in range(int(rng.poisson(3.0))):
        side = s.sides[int(rng.integers(2))]
        X, Z = sidewalk_x(side), rng.uniform(zmin, 55.0)
        n = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
        for k in range(n):
            objs.add(X + 0.6 * k * side['sgn'], Z + rng.uniform(-0.4, 0.4), 0.3, 0.3, draw_person, pal,
                     X + 0.6 * k * side['sgn'], Z, rng.uniform(1.5, 1.95), PERSON, rng.uniform(0, 0.1))
    # parked bicycles and motorcycles, unlabelled clutter
    for _ in range(int(rng.poisson(0.8))):
        side = s.sides[int(rng.integers(2))]
        X, Z = sidewalk_x(side, 0.6), rng.uniform(zmin, 40.0)
        d = 1 if rng.random() < 0.5 else -1
        if rng.random() < 0.75:
            objs.add(X, Z, 0.9, 0.3, draw_bicycle, pal, X, Z, d, pal('bike'), False)
        else:
            objs.add(X, Z, 1.1, 0.4, draw_motorcycle, pal, X, Z, d, pal('moto'), False)
    for _ in range(int(rng.poisson(1.0))):
        side = s.sides[int(rng.integers(2))]
        X, Z = sidewalk_x(side, 0.4), rng.uniform(zmin, 40.0)
        w, h = rng.uniform(0.4, 0.9), rng.uniform(0.6, 1.3)
        objs.add(X, Z, w, 0.4, draw_box, X, Z, w, h, pal('clutter'))
    # riders
    for _ in range(int(rng.poisson(0.8))):
        near_edge = rng.random() < 0.6
        if near_edge:
            X = road_r - 0.8 if rng.random() < 0.5 else road_l + 0.8
        else:
            X = rng.uniform(road_l + 1.0, road_r - 1.0)
        Z, d = rng.uniform(zmin + 1, 50.0), (1 if rng.random() < 0.5 else -1)
        if rng.random() < 0.7:
            objs.add(X, Z, 1.0, 0.6, draw_bicycle, pal, X, Z, d, pal('bike'), True)
        else:
            objs.add(X, Z, 1.2, 0.6, draw_motorcycle, pal, X, Z, d, pal('moto'), True)
    # big vehicles
    if rng.random() < 0.45:
        kind = TRUCK if rng.random() < 0.5 else BUS
        lanes = lane_centres(road_l, road_r)
        X, Z = lanes[int(rng.integers(len(lanes)))], rng.uniform(8.0, 60.0)
        L = 4.5 if kind == TRUCK else 6.0
        objs.add(X, Z + L, 1.4, L + 0.5, draw_car, pal, X, Z, kind, pal('truck' if kind == TRUCK else 'bus'),
                 rng.random() < 0.3)
    if rng.random() < 0.12:
        X, Z = 0.5 * (road_l + road_r), rng.uniform(15.0, 50.0)
        objs.add(X, Z + 12.0, 1.5, 12.5, draw_car, pal, X, Z, TRAIN, pal('train'), rng.random() < 0.5)
    # cars: parked rows along the curbs, traffic in the lanes
    for side, edge in ((left, road_l), (right, road_r)):
        if rng.random() < 0.55:
            X = edge - side['sgn'] * 1.1
            z = rng.uniform(zmin + 1.0, 15.0)
            while z < 70.0:
                if rng.random() < 0.8:
                    objs.add(X, z + 2.2, 1.0, 2.4, draw_car, pal, X, z, CAR, pal('car'), False)
                z += rng.uniform(5.0, 9.0)
    lanes = lane_centres(road_l, road_r)
    for _ in range(int(rng.poisson(2.5))):
        X = lanes[int(rng.integers(len(lanes)))] + rng.uniform(-0.4, 0.4)
        Z = rng.uniform(zmin + 1.5, 75.0)
        objs.add(X, Z + 2.2, 1.0, 2.6, draw_car, pal, X, Z, CAR, pal('car'), X < 0 and rng.random() < 0.6)
    return objs


def lane_centres(road_l, road_r):
    """X of the middle of each lane (about 3.2 m wide) of the road between road_l and road_r."""
    n = max(1, int((road_r - road_l) / 3.2))
    w = (road_r - road_l) / n
    return [road_l + w * (i + 0.5) for i in range(n)]
