"""Colour masks in the Cityscapes palette."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

_INFO = Path(__file__).resolve().parent.parent / 'dataset' / 'cityscapes_list' / 'info.json'
with open(_INFO) as _f:
    _info = json.load(_f)
palette = [channel for colour in _info['palette'] for channel in colour]
palette += [0] * (256 * 3 - len(palette))
# (name, RGB) per train id, for a figure's legend
CLASS_COLOURS = [(name, tuple(colour)) for name, colour in zip(_info['label'], _info['palette'])]
# how colorize_mask draws the ignore label (255) of a ground truth: a legend entry of its own
IGNORE_COLOUR = ('ignore / unlabelled', (0, 0, 0))


def colorize_mask(mask, colours=None):
    """Train-id mask (H, W) -> paletted PIL image ('P' mode); 255 and unknown ids are black.
    colours: a flat [r, g, b, ...] palette (default: Cityscapes)."""
    new_mask = Image.fromarray(np.asarray(mask).astype(np.uint8)).convert('P')
    new_mask.putpalette(palette if colours is None else colours)
    return new_mask


def colorize_rgb(mask, colours=None):
    """Train-id mask (H, W) -> RGB uint8 (H, W, 3) in the palette."""
    return np.asarray(colorize_mask(mask, colours).convert('RGB'))


def entropy_heatmap(entropy):
    """Entropy map in [0, 1] (H, W) -> RGB uint8 (H, W, 3), from black (certain) through red
    to yellow (uncertain)."""
    e = np.clip(np.asarray(entropy, np.float32), 0, 1)[..., None]
    return (255 * np.concatenate([np.sqrt(e), e, e ** 3 * 0.3], axis=2)).astype(np.uint8)


def overlay(photo, mask, alpha=0.5, colours=None):
    """The colour mask blended over an RGB photo (H, W, 3) of the mask's size: RGB uint8."""
    photo = np.asarray(photo, np.float32)
    return np.rint((1 - alpha) * photo + alpha * colorize_rgb(mask, colours)).astype(np.uint8)


def prediction_images(photo, mask, entropy, alpha=0.5, colours=None):
    """The pictures of one prediction, all at the photo's size: {'color': paletted colour mask,
    'entropy': heat map, 'overlay': colour mask over the photo} as PIL images."""
    return {'color': colorize_mask(mask, colours), 'entropy': Image.fromarray(entropy_heatmap(entropy)),
            'overlay': Image.fromarray(overlay(photo, mask, alpha, colours))}
