"""Colour masks in the Cityscapes palette."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

_INFO = Path(__file__).resolve().parent.parent / 'dataset' / 'cityscapes_list' / 'info.json'
with open(_INFO) as _f:
    palette = [channel for colour in json.load(_f)['palette'] for channel in colour]
palette += [0] * (256 * 3 - len(palette))


def colorize_mask(mask):
    """Train-id mask (H, W) -> paletted PIL image ('P' mode); 255 and unknown ids are black."""
    new_mask = Image.fromarray(np.asarray(mask).astype(np.uint8)).convert('P')
    new_mask.putpalette(palette)
    return new_mask
