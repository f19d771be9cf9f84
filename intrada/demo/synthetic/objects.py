"""The objects standing in the street, each drawn by the painter at its distance:
vehicles, people, riders on bicycles and motorcycles, trees, lamps, signs, traffic lights
and unlabelled clutter."""
import math

from intrada.demo.synthetic.labels import BIKE, BUS, CAR, LIGHT, MOTO, PERSON, POLE, RIDER, SIGN, TRAIN, TRUCK, \
    VEG, VOID
from intrada.demo.synthetic.materials import shaded

_OCTAGON = [(math.sin(2 * math.pi * i / 8), math.cos(2 * math.pi * i / 8)) for i in range(8)]


def draw_car(p, pal, X, Z, kind, colour, oncoming):
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
    side_colour = shaded(colour, 0.78)
    x0, x1 = X - w / 2, X + w / 2
    detailed = p.cam.f * w / Z > 10  # far vehicles skip their small parts
    # near side face (the side facing the camera axis)
    if abs(X) > w / 2:
        xs = x0 if X > 0 else x1
        p.wpoly([(xs, 0.25, Z), (xs, body, Z), (xs, body, Z + L), (xs, 0.25, Z + L)], kind, side_colour)
        if kind == CAR:
            p.wpoly([(xs, body, Z + 0.9), (xs, h, Z + 1.5), (xs, h, Z + L - 1.6), (xs, body, Z + L - 0.6)],
                    kind, shaded(glass, 1.2))
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
                shaded(colour, 0.92))
        p.wpoly([(x0 + 0.2, body + 0.04, Z), (x0 + 0.32, h - 0.08, Z), (x1 - 0.32, h - 0.08, Z),
                 (x1 - 0.2, body + 0.04, Z)], kind, glass)
        p.wrect(x0 + 0.05, x0 + 0.3, body - 0.25, body - 0.08, Z, kind, lamp, emit=lamp, min_px=1)
        p.wrect(x1 - 0.3, x1 - 0.05, body - 0.25, body - 0.08, Z, kind, lamp, emit=lamp, min_px=1)
        if detailed:
            p.wrect(x0 + 0.1, x1 - 0.1, 0.22, 0.4, Z, kind, shaded(colour, 0.55), min_px=1)
    else:
        top_glass = (1.6, h - 0.3) if kind != TRUCK else (h - 0.9, h - 0.3)
        if kind == TRUCK:
            p.wrect(x0, x1, h - 0.08, h, Z, kind, shaded(colour, 0.7), min_px=1)
        else:
            p.wrect(x0 + 0.2, x1 - 0.2, top_glass[0], top_glass[1], Z, kind, glass, min_px=1)
        p.wrect(x0 + 0.1, x0 + 0.4, 0.5, 0.8, Z, kind, lamp, emit=lamp, min_px=1)
        p.wrect(x1 - 0.4, x1 - 0.1, 0.5, 0.8, Z, kind, lamp, emit=lamp, min_px=1)
        if kind == TRAIN:
            p.wline((X - 0.6, h), (X, h + 0.9), Z, 0.06, TRAIN, shaded(colour, 0.4))
            p.wline((X, h + 0.9), (X + 0.6, h + 0.9), Z, 0.06, TRAIN, shaded(colour, 0.4))


def draw_person(p, pal, X, Z, h, cls=PERSON, stride=0.0):
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
            cls, shaded(shirt, 0.85))
    p.wpoly([(X + 0.21, 0.80 * h, Z), (X + 0.27, 0.47 * h, Z), (X + 0.21, 0.46 * h, Z), (X + 0.17, 0.72 * h, Z)],
            cls, shaded(shirt, 0.85))
    p.wrect(X - 0.05, X + 0.05, 0.80 * h, 0.85 * h, Z, cls, skin, min_px=1)
    p.wellipse(X, 0.915 * h, Z, 0.085 * h * 0.8, 0.075 * h, cls, skin)
    p.wellipse(X, 0.95 * h, Z, 0.08 * h * 0.8, 0.045 * h, cls, hair)


def draw_bicycle(p, pal, X, Z, d, colour, rider=False):
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
        draw_side_rider(p, pal, (seat[0], seat[1] + 0.08), crank, (head[0] + 0.03 * d, 1.05), Z, d, helmet=False)


def draw_motorcycle(p, pal, X, Z, d, colour, rider=False):
    tyre = pal.shared('tyre')
    r = 0.32
    for hx in (X - 0.7 * d, X + 0.7 * d):
        p.wellipse(hx, r, Z, r, r, MOTO, tyre)
        p.wellipse(hx, r, Z, r * 0.45, r * 0.45, MOTO, shaded(colour, 0.6))
    p.wpoly([(X - 0.75 * d, 0.55, Z), (X - 0.45 * d, 0.85, Z), (X + 0.15 * d, 0.95, Z), (X + 0.5 * d, 1.0, Z),
             (X + 0.6 * d, 0.6, Z), (X + 0.2 * d, 0.35, Z), (X - 0.3 * d, 0.35, Z)], MOTO, colour)
    p.wline((X + 0.5 * d, 1.0), (X + 0.7 * d, r), Z, 0.06, MOTO, shaded(colour, 0.5))
    p.wline((X + 0.45 * d, 1.0), (X + 0.55 * d, 1.12), Z, 0.05, MOTO, tyre)
    if rider:
        draw_side_rider(p, pal, (X - 0.2 * d, 1.0), (X + 0.05 * d, 0.5), (X + 0.5 * d, 1.1), Z, d, helmet=True)


def draw_side_rider(p, pal, hip, foot, hand, Z, d, helmet):
    shirt, pants, skin = pal('clothes'), pal('clothes'), pal('skin')
    shoulder = (hip[0] + 0.22 * d, hip[1] + 0.55)
    p.wline(hip, foot, Z, 0.14, RIDER, pants)
    knee = (hip[0] + 0.35 * d, hip[1] - 0.05)
    p.wline(hip, knee, Z, 0.15, RIDER, pants)
    p.wline(knee, foot, Z, 0.12, RIDER, pants)
    p.wline(hip, shoulder, Z, 0.3, RIDER, shirt)
    p.wline(shoulder, hand, Z, 0.09, RIDER, shaded(shirt, 0.85))
    head = (shoulder[0] + 0.08 * d, shoulder[1] + 0.2)
    p.wellipse(head[0], head[1], Z, 0.12, 0.13, RIDER, pal('clothes') if helmet else skin)
    if not helmet:
        p.wellipse(head[0] - 0.02 * d, head[1] + 0.05, Z, 0.11, 0.07, RIDER, pal.shared('tyre'))


def draw_tree(p, pal, X, Z, rng, veg_colour, trunk_colour, target):
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
        c = shaded(veg_colour, k) if target else veg_colour
        p.wellipse(X + dx * cr, cy + dy * cr, Z, cr * s, cr * s * 0.9, VEG, c)


def draw_lamp(p, pal, X, Z, side_sgn, h, colour):
    w = 0.09
    p.wrect(X - w, X + w, 0, h, Z, POLE, colour)
    arm = -side_sgn * 1.4
    p.wline((X, h), (X + arm, h + 0.25), Z, 0.08, POLE, colour)
    lamp = (255, 235, 190)
    p.wellipse(X + arm, h + 0.15, Z, 0.3, 0.1, POLE, shaded(colour, 0.8), emit=lamp)


def draw_sign(p, pal, X, Z, pole_colour, rng, pole_h=None):
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


def draw_traffic_light(p, pal, X, Z, side_sgn, pole_colour, rng, overhead):
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
        colour = c if on else shaded(c, 0.25)
        p.wellipse(bx, top - 0.15 - 0.3 * i, Z, 0.09, 0.09, LIGHT, colour, emit=c if on else None)
    if not overhead and rng.random() < 0.5:
        p.wrect(bx - 0.15, bx + 0.15, h - 0.6, h - 0.3, Z, SIGN, pal('sign'), min_px=1)


def draw_box(p, X, Z, w, h, colour):
    p.wrect(X - w / 2, X + w / 2, 0, h, Z, VOID, colour)
    p.wrect(X - w / 2 - 0.05, X + w / 2 + 0.05, h - 0.1, h, Z, VOID, shaded(colour, 0.7), min_px=1)
