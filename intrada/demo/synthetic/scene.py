"""One scene: lays the street out, draws it far to near, textures it and images it."""
import numpy as np

from intrada.demo.synthetic.camera import SCALE, Camera, Painter, Planes
from intrada.demo.synthetic.conditions import CONDITIONS, finish_image
from intrada.demo.synthetic.labels import BUILDING, FENCE, TERRAIN, VEG, VOID, WALL
from intrada.demo.synthetic.materials import DOMAINS, Palette, shaded
from intrada.demo.synthetic.randomness import Rand
from intrada.demo.synthetic.street import draw_ground, draw_segment, facade_segments, make_segment, \
    place_objects, street_layout
from intrada.demo.synthetic.textures import apply_textures


def paint_scene(rng, domain, Wr, Hr):
    """Lays out and draws one scene at render resolution. Returns the canvases and the
    geometry needed by the texture pass."""
    target = domain == 'target'
    pal = Palette(domain, rng)
    cam = Camera(rng, Wr, Hr)
    s = street_layout(rng)
    planes = Planes()
    p = Painter(Wr, Hr, cam)
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
            k = planes.add(Planes.FRONT, s.zend, Planes.BUILDING, pal('window'), period_a=rng.uniform(2.5, 4.0),
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
            draw_segment(p, make_segment(rng, kind, X, z, min(z + length, s.zend), pal, planes))
            z += length
    draw_ground(p, s, pal, road_colour)
    # front row
    for side in s.sides:
        side['segments'] = facade_segments(rng, side, s.zend, pal, planes)
    for seg in sorted(s.sides[0]['segments'] + s.sides[1]['segments'], key=lambda g: -g['z0']):
        draw_segment(p, seg)
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
                    k = planes.add(Planes.SIDE, X, Planes.WALLTEX, shaded(colour, 0.8), period_a=rng.uniform(1.5, 3.0))
                else:
                    k = planes.add(Planes.SIDE, X, Planes.FENCETEX, shaded(colour, 0.55),
                                   period_a=rng.uniform(0.15, 0.3), frac_a=rng.uniform(0.35, 0.6))
                p.wpoly([(X, 0, z), (X, h, z), (X, h, z1), (X, 0, z1)], cls, colour, surf=k)
                z = z1 + rng.uniform(3.0, 20.0)
    objs = place_objects(rng, s, pal, target)
    objs.draw(p)
    if target:  # ego-vehicle hood, unlabelled
        hood = pal('hood')
        hh = Hr * rng.uniform(0.05, 0.09)
        us = np.linspace(-0.1 * Wr, 1.1 * Wr, 17)
        curve = [(u, Hr - hh * (1.0 - 0.55 * ((u - Wr / 2) / (0.6 * Wr)) ** 2)) for u in us]
        p.poly(curve + [(1.1 * Wr, Hr + 2), (-0.1 * Wr, Hr + 2)], VOID, hood)
    return p, cam, s, planes


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
    if not isinstance(rng, Rand):
        rng = Rand(rng)
    p, cam, s, planes = paint_scene(rng, domain, Wr, Hr)
    col, lab, emission = apply_textures(rng, domain, p, cam, s, planes, want_emission=condition == 'night')
    rgb = finish_image(rng, domain, condition, col, emission, (W, H))
    labels = np.ascontiguousarray(lab[::SCALE, ::SCALE])
    return rgb, labels
