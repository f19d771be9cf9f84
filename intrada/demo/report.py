"""The demo's report: figures of predictions and of the entropy ranking, the results
table and DIR/report.md."""
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from advent.domain_adaptation.config import finalize_paths, load_config
from advent.domain_adaptation.eval_UDA import load_for_evaluation
from advent.domain_adaptation.experiment import build_segmenter, build_target_dataset, build_test_dataset
from advent.utils.func import prob_2_entropy
from advent.utils.serialization import atomic_write_text, json_load, save_image
from advent.utils.viz_segmask import colorize_mask


def to_rgb(image_chw, mean):
    """A preprocessed dataset image (BGR minus mean, CHW) back to RGB uint8."""
    bgr = image_chw.transpose(1, 2, 0) + mean
    return np.clip(bgr[:, :, ::-1], 0, 255).astype(np.uint8)


def predict(model, image_chw):
    with torch.no_grad():
        logits = model(torch.from_numpy(image_chw)[None])[1]
        logits = F.interpolate(logits, size=image_chw.shape[1:], mode='bilinear', align_corners=True)
        prob = F.softmax(logits, dim=1)
    return prob.argmax(1)[0].numpy().astype(np.uint8), prob_2_entropy(prob).sum(1)[0].numpy()


def colour(mask):
    return np.array(colorize_mask(mask).convert('RGB'))


def heat(entropy):
    """Entropy in [0, 1] as a dark-to-yellow heat map."""
    e = np.clip(entropy, 0, 1)[..., None]
    return (255 * np.concatenate([np.sqrt(e), e, e ** 3 * 0.3], axis=2)).astype(np.uint8)


def grid_figure(rows, header, path, zoom=2):
    """rows: list of (label, [H x W x 3 tiles]); header: column titles."""
    tile_h, tile_w = rows[0][1][0].shape[:2]
    pad, label_w, head_h = 4, 110, 18
    width = label_w + len(header) * (tile_w * zoom + pad)
    height = head_h + len(rows) * (tile_h * zoom + pad)
    canvas = Image.new('RGB', (width, height), 'white')
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(header):
        draw.text((label_w + j * (tile_w * zoom + pad), 3), title, fill='black')
    for i, (label, tiles) in enumerate(rows):
        y = head_h + i * (tile_h * zoom + pad)
        draw.text((3, y + tile_h * zoom // 2 - 6), label, fill='black')
        for j, tile in enumerate(tiles):
            big = Image.fromarray(tile).resize((tile_w * zoom, tile_h * zoom), Image.NEAREST)
            canvas.paste(big, (label_w + j * (tile_w * zoom + pad), y))
    save_image(canvas, path)
    return path


def load_model(cfg, checkpoint):
    model = build_segmenter(cfg.TRAIN.MODEL, cfg.NUM_CLASSES, cfg.TRAIN.MULTI_LEVEL)
    load_for_evaluation(model, checkpoint, torch.device('cpu'))
    return model


def qualitative_figure(stage1_cfg, advent_ckpt, intrada_ckpt, path, count=4):
    """image | stage 1 | stage 3 | ground truth for a few val images."""
    cfg = finalize_paths(load_config(stage1_cfg))
    cfg.TEST.OUTPUT_SIZE_TARGET = cfg.TEST.INPUT_SIZE_TARGET
    dataset = build_test_dataset(cfg)
    models = [load_model(cfg, advent_ckpt), load_model(cfg, intrada_ckpt)]
    rows = []
    for index in np.linspace(0, len(dataset) - 1, count).astype(int):
        image, label, _, name = dataset[index]
        tiles = [to_rgb(image, cfg.TEST.IMG_MEAN)]
        tiles += [colour(predict(model, image)[0]) for model in models]
        tiles.append(colour(np.asarray(label, np.uint8)))
        rows.append((name.split('/')[-1][:14], tiles))
    return grid_figure(rows, ['image', 'stage 1 (AdvEnt)', 'stage 3 (IntraDA)', 'ground truth'], path)


def easy_hard_figure(stage1_cfg, checkpoint, rank_dir, manifest_path, path, count=4):
    """The easiest and the hardest target images with their entropy maps and true condition."""
    cfg = finalize_paths(load_config(stage1_cfg))
    dataset = build_target_dataset(cfg)
    index_of = {name: i for i, name in enumerate(dataset.img_ids)}
    ranking = json_load(Path(rank_dir) / 'entropy_ranking.json')['ranking']
    conditions = json_load(manifest_path)['target_train']
    model = load_model(cfg, checkpoint)
    rows = []
    for kind, entries in (('easy', ranking[:count]), ('hard', ranking[-count:])):
        for entry in entries:
            image = dataset[index_of[entry['name']]][0]
            mask, entropy = predict(model, image)
            label = f'{kind} {entry["score"]:.3f}\n{conditions[entry["name"]]["condition"]}'
            rows.append((label, [to_rgb(image, cfg.TRAIN.IMG_MEAN), colour(mask), heat(entropy)]))
    return grid_figure(rows, ['image', 'prediction', 'entropy'], path)


def results_table(results, class_names):
    runs = [('source_only', 'source only'), ('bn_only', 'BN-only control'), ('advent', 'AdvEnt (stage 1)'),
            ('intrada', 'IntraDA (stage 3)')]
    lines = ['| run | mIoU (best snapshot) | mean of last snapshots | ' + ' | '.join(class_names) + ' |',
             '|---|---|---|' + '---|' * len(class_names)]
    for key, title in runs:
        r = results[key]
        cells = ['-' if r['per_class'][n] is None else f'{r["per_class"][n]:.1f}' for n in class_names]
        lines.append(f'| {title} | {r["mIoU"]:.2f} (iter {r["best_iter"]}) | {r["mIoU_last_mean"]:.2f} | '
                     + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_report(out, results, settings, args, lambda1):
    class_names = list(results['advent']['per_class'])
    split = results['split']
    conditions = ', '.join(f'{c}: {v["in_hard_split"]}/{v["images"]}' for c, v in sorted(split['by_condition'].items()))
    gain_advent = results['advent']['mIoU'] - results['source_only']['mIoU']
    gain_bn = results['bn_only']['mIoU'] - results['source_only']['mIoU']
    gain_intra = results['intrada']['mIoU'] - results['advent']['mIoU']
    text = f"""# IntraDA demo report

Command: `python -m intrada.demo{' --quick' if args.quick else ''} --seed {args.seed} --sgd {args.sgd} --out {args.out}`

Synthetic benchmark: {settings['n_source']} source (GTA5 format), {settings['n_target_train']} target-train and
{settings['n_target_val']} target-val images (Cityscapes format) of {settings['size'][0]}x{settings['size'][1]} pixels;
model {settings['model']}, batch {settings['batch']} + {settings['batch']}, from random weights. Source-only runs
{settings['warmup'] + settings['adapt']} iterations; the BN-only control and AdvEnt continue its snapshot at
{settings['warmup']} for {settings['adapt']} iterations; IntraDA starts from the best AdvEnt snapshot and runs
{settings['intra']} iterations on easy -> hard (lambda1 = {lambda1}). Snapshots every {settings['every']} iterations;
mIoU in percent on the target val set, best snapshot (as the paper selects) and the mean of the last
{settings['last_k']}.

{results_table(results, class_names)}

Change against source only: BN-only control {gain_bn:+.2f}, AdvEnt {gain_advent:+.2f}; IntraDA against AdvEnt {gain_intra:+.2f}.

## Entropy ranking against the generator's hard-condition flag

Hard split: {split['hard_split_size']} images, {split['truly_hard']} truly hard. Precision {split['precision']},
recall {split['recall']}, AUROC of the entropy score {split['auroc']}.
Images of each condition that went to the hard split: {conditions}.

![easy and hard samples](easy_hard.png)

## Predictions on val (image | stage 1 | stage 3 | ground truth)

![qualitative](qualitative.png)

## Time per stage (seconds)

{chr(10).join(f'- {k}: {v}' for k, v in results['seconds'].items())}
"""
    atomic_write_text(out / 'report.md', text)
