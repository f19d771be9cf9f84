"""Camera and drawing: a pinhole camera over the ground plane, and a painter that draws
world-space primitives into aligned label, colour, surface and light canvases."""
import numpy as np
from PIL import Image, ImageDraw

from intrada.demo.synthetic.labels import SKY

SCALE = 2  # scenes are drawn at SCALE x the output size, then reduced


class Camera:
    """Pinhole camera at height hc over the ground plane, looking along +Z (render pixels)."""

    def __init__(self, rng, W, H):
        self.f = W * rng.uniform(0.85, 1.15)
        self.hc = rng.uniform(1.2, 1.7)
        self.yh = H * rng.uniform(0.36, 0.47)
        self.xv = W * rng.uniform(0.42, 0.58)

    def pt(self, X, Y, Z):
        return (self.xv + self.f * X / Z, self.yh + self.f * (self.hc - Y) / Z)


class Painter:
    """Draws every primitive into aligned canvases: train ids and colour always; surface
    ids (1 ground, >= 2 textured vertical planes) and emitted light (for night) only for
    the primitives that have them. Occlusion of a surface or a light by a later primitive
    shows in the label map, which the texture pass checks (textures.py)."""

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


class Planes:
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
