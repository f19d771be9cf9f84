"""The demo's figures, composed from the library's pieces (advent.utils.figures, the
inference and colouring of advent, stage 2's overview):

- summary.png: a bar chart of the rows' mIoU (with the spread over seeds when there are several);
- qualitative.png: val images with every row's prediction and the ground truth;
- easy_hard.png: stage 2's overview of the easiest and hardest target-train images, each
  with the generator's true condition (read from the manifest for the figure only).
"""
from pathlib import Path

import numpy as np
import torch

from advent.dataset.base_dataset import image_to_rgb
from advent.domain_adaptation.config import finalize_paths, load_config
from advent.domain_adaptation.experiment import build_target_dataset, build_test_dataset
from advent.domain_adaptation.inference import load_segmenters, segment
from advent.utils.figures import bar_chart, caption, colour_legend, stack_images, tile_grid
from advent.utils.serialization import json_load, save_image
from advent.utils.viz_segmask import CLASS_COLOURS, IGNORE_COLOUR, colorize_rgb
from entropy_rank.overview import render_ranking_overview, short_name

ZOOM = 2  # the demo's 128 x 64 images are drawn twice as large
CPU = torch.device('cpu')


def summary_figure(bars, title, path):
    """bars: [(row title, mIoU, sd or None)]."""
    labels = [t.replace(' (', '\n(') for t, _, _ in bars]
    errors = [sd for _, _, sd in bars]
    chart = bar_chart(labels, [m for _, m, _ in bars], errors if any(e is not None for e in errors) else None,
                      title, size=(max(560, 110 * len(bars)), 260), y_label='mIoU (%)')
    save_image(chart, path)
    return path


def _models(cfg, checkpoints):
    return load_segmenters([cfg.TRAIN.MODEL] * len(checkpoints), [cfg.TRAIN.MULTI_LEVEL] * len(checkpoints),
                           checkpoints, cfg.NUM_CLASSES, CPU)


def _predict(model, image):
    height, width = image.shape[1:]
    prediction, _ = segment([model], [1.0], torch.from_numpy(np.ascontiguousarray(image))[None], [(width, height)])[0]
    return prediction.numpy()


def qualitative_figure(stage1_cfg, runs, path, count=4):
    """image | each run's prediction | ground truth, for `count` val images spread over the list.
    runs: [(column title, checkpoint)]."""
    cfg = finalize_paths(load_config(stage1_cfg))
    cfg.TEST.OUTPUT_SIZE_TARGET = cfg.TEST.INPUT_SIZE_TARGET
    dataset = build_test_dataset(cfg)
    models = _models(cfg, [checkpoint for _, checkpoint in runs])
    rows = []
    for index in np.linspace(0, len(dataset) - 1, min(count, len(dataset))).astype(int):
        image, label, _, name = dataset[index]
        tiles = [image_to_rgb(image, cfg.TEST.IMG_MEAN)] + [colorize_rgb(_predict(m, image)) for m in models]
        rows.append((f'val image\n{short_name(name)}', tiles + [colorize_rgb(np.asarray(label, np.uint8))]))
    height, width = rows[0][1][0].shape[:2]
    grid = tile_grid(rows, ['image'] + [title for title, _ in runs] + ['ground truth'], (width * ZOOM, height * ZOOM))
    title = ('Target val images: the prediction of each run\'s best snapshot (columns), '
             'against the generated ground truth')
    save_image(stack_images([caption(title, grid.width), grid, colour_legend(CLASS_COLOURS + [IGNORE_COLOUR], grid.width)]), path)
    return path


def easy_hard_figure(stage1_cfg, checkpoint, model_title, rank_dir, manifest_path, path):
    """Stage 2's overview of this ranking (the easiest and hardest images), each image with
    the condition the generator rendered it under."""
    cfg = finalize_paths(load_config(stage1_cfg))
    summary = json_load(Path(rank_dir) / 'entropy_ranking.json')['summary']  # stage 2's own numbers
    conditions = {name: f'true condition: {entry["condition"]}'
                  for name, entry in json_load(manifest_path)['target_train'].items()}
    overview = render_ranking_overview(_models(cfg, [checkpoint])[0], build_target_dataset(cfg), CPU, summary,
                                       cfg.TRAIN.IMG_MEAN, notes=conditions)
    title = (f'Target train images ranked by {model_title}: the easiest and the hardest, with its predictions '
             f'and entropy maps')
    save_image(stack_images([caption(title, overview.width), overview]), path)
    return path
