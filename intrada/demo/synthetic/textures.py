"""The texture pass: analytic detail (windows, lane markings, tiles, fence bars), the sky
gradient and, in the target domain, grain, clouds, cast shadows and illumination."""
import cv2
import numpy as np

from intrada.demo.synthetic.camera import Planes
from intrada.demo.synthetic.labels import BUILDING, BUS, CAR, FENCE, LIGHT, MOTO, PERSON, POLE, RIDER, ROAD, \
    SIDEWALK, SKY, TERRAIN, TRAIN, TRUCK, VEG, VOID, WALL, BIKE
from intrada.demo.synthetic.street import lane_centres


def _smooth_noise(rng, W, H, cells_w, cells_h):
    small = rng.standard_normal((cells_h, cells_w), dtype=np.float32)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)


def _frac(x):
    return x - np.floor(x)


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


def apply_textures(rng, domain, p, cam, s, planes, want_emission):
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
        lanes = lane_centres(road_l, road_r)
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
        side = P['kind'][k] == Planes.SIDE
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
        win = (tex == Planes.BUILDING) & (
            ((B > np.maximum(shop_h, 0.8)) & (fa < P['frac_a'][k]) & (fb > 0.3) & (fb < 0.3 + P['frac_b'][k]))
            | ((B > 0.3) & (B < shop_h - 0.7) & (fa < 0.8)))
        seam = _frac(A / pa) < 0.04
        if target:
            seam |= _frac(B / 0.6) < 0.03
        detail = win | ((tex == Planes.WALLTEX) & seam) | \
            ((tex == Planes.FENCETEX) & (fa <= P['frac_a'][k]) & (_frac(B / 1.2) >= 0.12))
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
