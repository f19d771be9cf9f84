"""Colour masks in the Cityscapes palette, or in a class file's (`colours`: one [r, g, b] per
train id, e.g. a folder dataset's `palette`)."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

_INFO = Path(__file__).resolve().parent.parent / 'dataset' / 'cityscapes_list' / 'info.json'
with open(_INFO) as _f:
    _info = json.load(_f)


def flat_palette(colours):
    """[r, g, b] per train id -> PIL's flat 768-entry palette (other ids black)."""
    flat = [channel for colour in colours for channel in colour]
    return flat + [0] * (256 * 3 - len(flat))


def class_colours(names, colours):
    """(name, RGB) per train id, for a figure's legend."""
    return [(str(name), tuple(colour)) for name, colour in zip(names, colours)]


palette = flat_palette(_info['palette'])
BAND_PIXELS = 2 ** 21  # pixels in one band of rows of the pictures made in bands
# (name, RGB) per train id, for a figure's legend
CLASS_COLOURS = class_colours(_info['label'], _info['palette'])
# how colorize_mask draws the ignore label (255) of a ground truth: a legend entry of its own
IGNORE_COLOUR = ('ignore / unlabelled', (0, 0, 0))


def colorize_mask(mask, colours=None):
    """Train-id mask (H, W) -> paletted PIL image ('P' mode); 255 and unknown ids are black.
    colours: [r, g, b] per train id (a class file's palette; default: Cityscapes)."""
    new_mask = Image.fromarray(np.asarray(mask).astype(np.uint8)).convert('P')
    new_mask.putpalette(palette if colours is None else flat_palette(colours))
    return new_mask


def colorize_rgb(mask, colours=None):
    """Train-id mask (H, W) -> RGB uint8 (H, W, 3) in the palette."""
    return np.asarray(colorize_mask(mask, colours).convert('RGB'))


def _rgb_by_rows(compute, *arrays):
    """compute(*bands) over bands of rows of `arrays` (all H x W ...), into one RGB uint8
    (H, W, 3): the float temporaries are a band's, not the whole picture's (a 96 MP photo
    in float64 is 2.3 GB)."""
    height, width = np.shape(arrays[0])[:2]
    rows = max(1, BAND_PIXELS // max(width, 1))
    out = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, rows):
        out[top:top + rows] = compute(*(np.asarray(a[top:top + rows]) for a in arrays))
    return out


def entropy_heatmap(entropy):
    """Entropy map in [0, 1] (H, W) -> RGB uint8 (H, W, 3), from black (certain) through red
    to yellow (uncertain)."""
    def heat(band):
        e = np.clip(np.asarray(band, np.float32), 0, 1)[..., None]
        return (255 * np.concatenate([np.sqrt(e), e, e ** 3 * 0.3], axis=2)).astype(np.uint8)
    return _rgb_by_rows(heat, entropy)


def overlay(photo, mask, alpha=0.5, colours=None):
    """The colour mask blended over an RGB photo (H, W, 3) of the mask's size: RGB uint8."""
    def blend(photo_band, mask_band):
        blended = (1 - alpha) * np.asarray(photo_band, np.float32) + alpha * colorize_rgb(mask_band, colours)
        return np.rint(blended).astype(np.uint8)
    return _rgb_by_rows(blend, photo, mask)


def prediction_images(photo, mask, entropy, alpha=0.5, colours=None):
    """The pictures of one prediction, all at the photo's size, made one at a time so that
    only one is held (a 96 MP RGB picture is 288 MB): ('color', paletted colour mask),
    ('entropy', heat map), ('overlay', colour mask over the photo), as PIL images."""
    yield 'color', colorize_mask(mask, colours)
    yield 'entropy', Image.fromarray(entropy_heatmap(entropy))
    yield 'overlay', Image.fromarray(overlay(photo, mask, alpha, colours))
