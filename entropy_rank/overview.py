"""Stage 2 shows its decision: the easiest and the hardest target images with their
predictions and entropy maps, and the histogram of the scores with the lambda1 cut marked
(ranking_overview.png, in the spirit of the paper's figure), and the same numbers for
entropy_ranking.json (ranking_summary). The ranking keeps the images the figure may show
while it runs (ExtremeImages), so that drawing it runs no model."""
import heapq

import numpy as np
import torch

from advent.dataset.base_dataset import image_to_rgb
from advent.domain_adaptation.inference import segment
from advent.utils.figures import colour_bar, colour_legend, histogram_image, stack_images, tile_grid
from advent.utils.viz_segmask import CLASS_COLOURS, class_colours, colorize_rgb, entropy_heatmap

OVERVIEW_NAME = 'ranking_overview.png'
OVERVIEW_COUNT = 4      # easiest and hardest images shown
HISTOGRAM_BINS = 20
TILE_WIDTH = (160, 320)  # tiles are scaled to a width in this range


def ranking_summary(ranking, lambda1, count=OVERVIEW_COUNT, bins=HISTOGRAM_BINS):
    """The numbers of the overview figure. ranking: the records ({'name', 'score', ...})
    sorted by score, ascending, as the splits are cut from them.

    cut_score lies halfway between the last easy and the first hard score (None when a
    split is empty); easiest / hardest: up to `count` images from either end, never the same
    image twice."""
    scores = np.array([r['score'] for r in ranking], np.float64)
    n = len(ranking)
    cut = int(n * lambda1)
    shown = min(count, (n + 1) // 2)
    counts, edges = np.histogram(scores, bins=bins) if n else (np.zeros(0, int), np.zeros(0))
    return {
        'images': n, 'lambda1': lambda1, 'easy': cut, 'hard': n - cut,
        'cut_score': float((scores[cut - 1] + scores[cut]) / 2) if 0 < cut < n else None,
        'histogram': {'edges': [float(e) for e in edges], 'counts': [int(c) for c in counts]},
        'easiest': [_entry(ranking, i) for i in range(shown)],
        'hardest': [_entry(ranking, i) for i in range(n - 1, max(shown, n - count) - 1, -1)],
    }


def _entry(ranking, index):
    return {'rank': index + 1, 'name': ranking[index]['name'], 'score': ranking[index]['score']}


class ExtremeImages:
    """The images an overview of `count` per end may show, kept while the ranking runs: the
    `count` lowest and the `count` highest scores so far, in the order of the final ranking
    (score, then list position: a stable sort keeps the list order of equal scores), so that
    they hold ranking_summary's easiest and hardest. At most 2 * count images are held,
    whatever the size of the dataset."""

    def __init__(self, count):
        self.count = count
        self._lowest = []    # max-heap of (score, position) through negated keys
        self._highest = []   # min-heap of (score, position)
        self._position = 0

    def offer(self, name, score, tiles):
        """The next image of the list; tiles() gives what to keep (image, prediction, entropy
        map) and is called only when the image is kept."""
        position, self._position = self._position, self._position + 1
        if self.count == 0:
            return
        low = len(self._lowest) < self.count or (score, position) < (-self._lowest[0][0], -self._lowest[0][1])
        high = len(self._highest) < self.count or (score, position) > self._highest[0][:2]
        if not (low or high):
            return
        kept = (name, tiles())
        if low:
            heapq.heappush(self._lowest, (-score, -position, kept))
            if len(self._lowest) > self.count:
                heapq.heappop(self._lowest)
        if high:
            heapq.heappush(self._highest, (score, position, kept))
            if len(self._highest) > self.count:
                heapq.heappop(self._highest)

    def images(self):
        """{name: (image, prediction, entropy map)} of the kept images, as numpy arrays."""
        return {name: tuple(np.asarray(t.cpu()) if torch.is_tensor(t) else t for t in tiles)
                for _, _, (name, tiles) in self._lowest + self._highest}


def _names(dataset):
    """The list names of a project dataset (img_ids); other datasets are read item by item."""
    names = getattr(dataset, 'img_ids', None)
    return list(names) if names is not None else [dataset[i][3] for i in range(len(dataset))]


def _tile_size(width, height):
    tile_w = min(max(width, TILE_WIDTH[0]), TILE_WIDTH[1])
    return tile_w, max(1, round(height * tile_w / width))


def render_ranking_overview(model, dataset, device, summary, mean, notes=None):
    """overview_figure with the images of the summary predicted again by `model` (at each
    image's size, as stage 2 predicts them).

    dataset: items (image, label, shape, name) with preprocessed images (mean: their IMG_MEAN)."""
    index_of = {name: i for i, name in enumerate(_names(dataset))}
    images = {}
    model.eval()
    for entry in summary['easiest'] + summary['hardest']:
        image = dataset[index_of[entry['name']]][0]
        height, width = image.shape[1:]
        batch = torch.from_numpy(np.ascontiguousarray(image))[None].to(device)
        prediction, entropy = (t.cpu().numpy() for t in segment([model], [1.0], batch, [(width, height)])[0])
        images[entry['name']] = (image, prediction, entropy)
    return overview_figure(summary, images, mean, notes, *dataset_classes(dataset))


def dataset_classes(dataset):
    """(class names, palette) of a dataset with a class file; (None, None), the Cityscapes
    colours, for the others."""
    colours = getattr(dataset, 'palette', None)
    return (dataset.class_names, colours) if colours else (None, None)


def overview_figure(summary, images, mean, notes=None, class_names=None, colours=None):
    """ranking_overview.png as a PIL image: a row per image of summary['easiest'] and
    summary['hardest'] (the photo, the prediction, the entropy map), the entropy colour bar
    and the class legend, then the histogram of the scores with the cut.

    images: {name: (preprocessed image (3, H, W), prediction (H, W), entropy map (H, W))} of
    those images (mean: the images' IMG_MEAN). notes: optional {name: text}, a further line
    under an image's label. class_names, colours: a class file's (default: Cityscapes')."""
    rows, tile_size = [], None
    for entries in (summary['easiest'], summary['hardest']):
        for entry in entries:
            split = 'easy' if entry['rank'] <= summary['easy'] else 'hard'
            image, prediction, entropy = images[entry['name']]
            height, width = image.shape[1:]
            tile_size = tile_size or _tile_size(width, height)
            label = (f'rank {entry["rank"]}/{summary["images"]}, {split}\nscore {entry["score"]:.4g}\n'
                     f'{short_name(entry["name"])}')
            if notes and entry['name'] in notes:
                label += f'\n{notes[entry["name"]]}'
            rows.append((label, [image_to_rgb(image, mean), colorize_rgb(prediction, colours),
                                 entropy_heatmap(entropy)]))
    parts = [tile_grid(rows, ['image', 'prediction', 'entropy (black 0, yellow 1)'], tile_size)] if rows else []
    width = max(parts[0].width if parts else 0, 480)
    if rows:
        parts += [colour_bar(entropy_heatmap, '0 (certain)', '1 (uniform over the classes)',
                             'normalised entropy of a pixel', width),
                  colour_legend(class_colours(class_names, colours) if colours else CLASS_COLOURS,
                                width)]
    title = (f'{summary["images"]} images by entropy score; lambda1 {summary["lambda1"]}: '
             f'{summary["easy"]} easy, {summary["hard"]} hard')
    parts.append(_histogram(summary, width, title))
    return stack_images(parts)


def _histogram(summary, width, title):
    """The histogram image of the summary's counts (drawn from the bin centres, so that the
    figure shows exactly the counts the JSON holds)."""
    edges = np.array(summary['histogram']['edges'])
    centres = np.repeat((edges[:-1] + edges[1:]) / 2, summary['histogram']['counts'])
    return histogram_image(centres, edges, summary['cut_score'], (width, 180), title)


def short_name(name, limit=28):
    """An image's name for a figure: the file name without its extension and Cityscapes'
    '_leftImg8bit' suffix; a longer one keeps its start and its end, where names differ."""
    name = name.split('/')[-1].rsplit('.', 1)[0].replace('_leftImg8bit', '')
    if len(name) <= limit:
        return name
    head = (limit - 3) // 2
    return name[:head] + '...' + name[-(limit - 3 - head):]
