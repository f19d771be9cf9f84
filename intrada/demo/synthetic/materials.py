"""Materials: the colour distribution of every surface in the game-like source domain
(saturated, any object colour) and in the real-like target domain (desaturated), drawn
once per object."""
import colorsys

DOMAINS = ('source', 'target')

# material -> (source, target), each (hue centre, hue half-range, saturation range, value
# range) in HSV; hue half-range 0.5 = any hue
MATERIALS = {
    'road': ((0.75, 0.05, (0.12, 0.28), (0.38, 0.50)), (0.60, 0.10, (0.02, 0.08), (0.27, 0.36))),
    'sidewalk': ((0.03, 0.05, (0.30, 0.45), (0.72, 0.85)), (0.08, 0.05, (0.04, 0.12), (0.46, 0.58))),
    'curb': ((0.0, 0.5, (0.0, 0.05), (0.88, 0.97)), (0.0, 0.5, (0.0, 0.05), (0.60, 0.70))),
    'marking': ((0.15, 0.02, (0.0, 0.15), (0.95, 1.0)), (0.12, 0.03, (0.0, 0.10), (0.62, 0.75))),
    'building': ((0.0, 0.5, (0.35, 0.65), (0.55, 0.88)), (0.08, 0.06, (0.06, 0.30), (0.36, 0.68))),
    'window': ((0.52, 0.04, (0.45, 0.70), (0.55, 0.80)), (0.60, 0.05, (0.05, 0.15), (0.12, 0.22))),
    'wall': ((0.08, 0.08, (0.35, 0.55), (0.55, 0.75)), (0.10, 0.05, (0.05, 0.15), (0.45, 0.60))),
    'fence': ((0.10, 0.05, (0.55, 0.75), (0.45, 0.65)), (0.10, 0.05, (0.08, 0.25), (0.30, 0.45))),
    'pole': ((0.15, 0.03, (0.55, 0.75), (0.65, 0.85)), (0.0, 0.5, (0.0, 0.05), (0.30, 0.45))),
    'lightbox': ((0.0, 0.5, (0.0, 0.1), (0.10, 0.20)), (0.0, 0.5, (0.0, 0.1), (0.07, 0.14))),
    'sign': ((0.0, 0.5, (0.75, 0.95), (0.70, 0.95)), (0.0, 0.5, (0.35, 0.60), (0.40, 0.60))),
    'signface': ((0.0, 0.5, (0.0, 0.05), (0.95, 1.0)), (0.0, 0.5, (0.0, 0.05), (0.70, 0.80))),
    'veg': ((0.31, 0.04, (0.70, 0.90), (0.55, 0.75)), (0.22, 0.04, (0.35, 0.55), (0.20, 0.36))),
    'trunk': ((0.07, 0.02, (0.55, 0.70), (0.35, 0.45)), (0.08, 0.02, (0.25, 0.40), (0.18, 0.27))),
    'terrain': ((0.20, 0.03, (0.60, 0.80), (0.65, 0.78)), (0.17, 0.04, (0.25, 0.45), (0.35, 0.50))),
    'sky': ((0.58, 0.02, (0.55, 0.70), (0.92, 1.0)), (0.58, 0.03, (0.04, 0.20), (0.76, 0.90))),
    'horizon': ((0.55, 0.03, (0.15, 0.30), (0.97, 1.0)), (0.58, 0.03, (0.0, 0.08), (0.84, 0.95))),
    'skin': ((0.06, 0.02, (0.40, 0.60), (0.65, 0.95)), (0.06, 0.02, (0.30, 0.50), (0.45, 0.80))),
    'clothes': ((0.0, 0.5, (0.60, 1.0), (0.45, 0.95)), (0.0, 0.5, (0.0, 0.35), (0.10, 0.55))),
    'car': ((0.0, 0.5, (0.65, 1.0), (0.55, 1.0)), (0.0, 0.5, (0.0, 0.06), (0.10, 0.85))),
    'truck': ((0.0, 0.5, (0.55, 0.90), (0.55, 0.90)), (0.0, 0.5, (0.0, 0.10), (0.55, 0.85))),
    'bus': ((0.0, 0.5, (0.55, 0.90), (0.60, 0.95)), (0.12, 0.06, (0.10, 0.45), (0.55, 0.80))),
    'train': ((0.0, 0.5, (0.55, 0.90), (0.60, 0.95)), (0.0, 0.5, (0.05, 0.35), (0.55, 0.80))),
    'moto': ((0.0, 0.5, (0.70, 1.0), (0.55, 1.0)), (0.0, 0.5, (0.0, 0.25), (0.08, 0.40))),
    'bike': ((0.0, 0.5, (0.70, 1.0), (0.55, 1.0)), (0.0, 0.5, (0.0, 0.25), (0.08, 0.40))),
    'tyre': ((0.0, 0.5, (0.0, 0.1), (0.06, 0.12)), (0.0, 0.5, (0.0, 0.05), (0.04, 0.08))),
    'glass': ((0.55, 0.03, (0.50, 0.70), (0.30, 0.45)), (0.60, 0.05, (0.05, 0.15), (0.10, 0.18))),
    'clutter': ((0.0, 0.5, (0.5, 0.9), (0.4, 0.9)), (0.0, 0.5, (0.0, 0.3), (0.2, 0.6))),
    'hood': ((0.0, 0.5, (0.0, 0.1), (0.1, 0.2)), (0.0, 0.5, (0.0, 0.08), (0.06, 0.14))),
}


class Palette:
    """Colours of materials for one scene of one domain, drawn from rng."""

    def __init__(self, domain, rng):
        self.domain = domain
        self.column = DOMAINS.index(domain)
        self.rng = rng
        self.cache = {}

    def shared(self, material):
        """One colour of this material for the whole scene (tyres, glass, ...)."""
        if material not in self.cache:
            self.cache[material] = self(material)
        return self.cache[material]

    def __call__(self, material):
        h0, dh, (s0, s1), (v0, v1) = MATERIALS[material][self.column]
        rng = self.rng
        h = (h0 + rng.uniform(-dh, dh)) % 1.0
        s = rng.uniform(s0, s1)
        v = rng.uniform(v0, v1)
        if self.domain == 'target' and material == 'car' and rng.random() < 0.35:
            s = rng.uniform(0.15, 0.5)  # some coloured cars in the real domain too
            v = rng.uniform(0.2, 0.6)
        r, g, b = colorsys.hsv_to_rgb(h, s, v)
        return (int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5))


def shaded(colour, k):
    """The colour scaled by k (darker below 1), each channel at most 255."""
    r, g, b = colour
    return (min(255, int(r * k + 0.5)), min(255, int(g * k + 0.5)), min(255, int(b * k + 0.5)))
