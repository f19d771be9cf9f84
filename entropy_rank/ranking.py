"""Stage 2: rank the target training images by the entropy of their predictions (SPEC 9).

score = mean over classes and pixels of prob_2_entropy(softmax(main head)), the main head
upsampled to the input size; with normalisation it is multiplied by
((11 - k) / 11 + 0.5), k = how many rare classes the argmax contains. Sorted ascending,
the first int(N * lambda1) names are the easy split, the rest the hard split. Every
image's argmax is saved as its pseudo-label (color_masks/<file name>) with a colour
version (color_masks/<stem>_color.png); a folder dataset's keep the image's path (SPEC 11),
and its class file gives the colours and the rare classes.
"""
import functools
import os
import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils import data

from advent.dataset.folder import check_distinct_pseudo_labels, load_class_file, pseudo_label_path
from advent.dataset.loader import worker_count
from advent.domain_adaptation.eval_UDA import argmax_channels, load_for_evaluation
from advent.errors import UserError
from advent.utils.func import prob_2_entropy
from advent.utils.precision import numeric_settings
from advent.utils.progress import progress_bar
from advent.utils.serialization import ImageWriter, atomic_write_text, check_writable_dir, json_dump, save_image
from advent.utils.viz_segmask import colorize_mask
from entropy_rank.overview import (OVERVIEW_COUNT, OVERVIEW_NAME, ExtremeImages, dataset_classes, overview_figure,
                                   ranking_summary)

# wall, fence, pole, light, sign, terrain, rider, truck, bus, train, motorcycle
RARE_CLASSES = (3, 4, 5, 6, 7, 9, 12, 14, 15, 16, 17)


class RankingError(UserError, ValueError):
    pass


def rare_class_count(prediction, rare_classes=RARE_CLASSES):
    """How many of the rare classes an argmax map (any size) holds: a 0-d tensor on its
    device, computed there without waiting for it."""
    present = torch.zeros(256, dtype=torch.bool, device=prediction.device)
    present[prediction.flatten().long()] = True
    return present[_class_index(tuple(rare_classes), prediction.device)].sum()


@functools.lru_cache(maxsize=None)
def _class_index(classes, device):
    """The classes as an index tensor on `device`, made once: a copy from the host for every
    image would wait for the device."""
    return torch.tensor(classes, device=device)


def normalizer_from_count(k, rare_classes=RARE_CLASSES):
    return (len(rare_classes) - k) / float(len(rare_classes)) + 0.5


def normalizer(prediction, rare_classes=RARE_CLASSES):
    """(11 - k) / 11 + 0.5 for an argmax map holding k of the rare classes (any size)."""
    return normalizer_from_count(int(rare_class_count(prediction, rare_classes)), rare_classes)


class _HostCopy:
    """One image's results on their way to the host: non-blocking copies into pinned
    memory on CUDA (read after an event), the tensors themselves elsewhere. The input image
    and the per-class entropy, for the overview, stay where they are."""

    def __init__(self, name, mean_entropy, prediction, rare, image=None, class_entropy=None):
        self.name = name
        self.image, self.class_entropy = image, class_entropy
        tensors = [mean_entropy, prediction] + ([] if rare is None else [rare])
        self.event = None
        if prediction.is_cuda:
            tensors = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)
                       for t in tensors]
            self.event = torch.cuda.Event()
            # the copies were queued on the stream of the prediction's GPU, which need not be
            # the current device (GPU_ID other than 0)
            self.event.record(torch.cuda.current_stream(prediction.device))
        self.tensors = tensors

    def get(self):
        if self.event is not None:
            self.event.synchronize()
        return self.tensors


def _save_masks(mask, mask_dir, name, keep_path=False, colours=None):
    mask_name, color_name = pseudo_label_names(name, keep_path)
    save_image(Image.fromarray(mask), mask_dir / mask_name)
    save_image(colorize_mask(mask, colours), mask_dir / color_name)


def _finish_image(result, records, writer, mask_dir, rare_classes=RARE_CLASSES, keep_path=False, colours=None,
                  extremes=None):
    """Record one image's score (the same float arithmetic as the original), queue its PNGs
    and offer it to the overview's extremes. An entropy map that is kept stays on the device
    until the figure is drawn: the loop never waits for it."""
    mean_entropy, prediction, *rare = result.get()
    mean_entropy = mean_entropy.item()
    factor = normalizer_from_count(int(rare[0]), rare_classes) if rare else 1
    records.append({'name': result.name, 'score': mean_entropy * factor, 'mean_entropy': mean_entropy,
                    'normalizer': factor})
    writer.submit(_save_masks, prediction.numpy(), mask_dir, result.name, keep_path, colours)
    if extremes is not None:
        extremes.offer(result.name, records[-1]['score'],
                       lambda: (result.image, prediction, result.class_entropy.sum(1)[0]))


def split_by_entropy(scores, lambda1):
    """scores: [(name, score)] in list order. Returns (easy, hard) name lists."""
    if not 0.0 <= lambda1 <= 1.0:
        raise RankingError(f'--lambda1 must lie in [0, 1], got {lambda1}')
    ranked = [name for name, _ in sorted(scores, key=lambda item: item[1])]
    cut = int(len(ranked) * lambda1)
    return ranked[:cut], ranked[cut:]


def pseudo_label_names(name, keep_path=False):
    """color_masks/ file names for list entry `name`: (mask, colour mask); with keep_path (a
    folder dataset) the image's relative path with a .png suffix."""
    if keep_path:
        mask_name = pseudo_label_path(name)
        return mask_name, mask_name[:-len('.png')] + '_color.png'
    file_name = name.split('/')[-1]
    return file_name, file_name.split('.')[0] + '_color.png'


def rank_target_images(model, dataset, input_size, device, out_dir, normalize, lambda1, num_workers=0,
                       checkpoint='', overview_count=OVERVIEW_COUNT, overview=True):
    """Run the ranking; writes easy_split.txt, hard_split.txt, color_masks/,
    entropy_ranking.json and, with `overview`, ranking_overview.png (entropy_rank.overview,
    drawn from the images kept while ranking: the model runs once per image) in out_dir.
    Returns (easy, hard, scores).

    The pseudo-labels go to a hidden staging folder first and move into color_masks/ only
    once every image is done: a run that fails half-way leaves the previous outputs as they were."""
    out_dir = Path(out_dir)
    mask_dir = out_dir / 'color_masks'
    created_out_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix='.color_masks.', suffix='.tmp', dir=out_dir))
    try:
        extremes = ExtremeImages(overview_count) if overview else None
        easy, hard, records = _rank_into(model, dataset, input_size, device, staging, normalize, lambda1,
                                         num_workers, extremes)
        ranked = sorted(records, key=lambda r: r['score'])
        summary = ranking_summary(ranked, lambda1, overview_count)
        # a dataset without IMG_MEAN (a test's) is drawn as it is
        figure = (overview_figure(summary, extremes.images(), getattr(dataset, 'mean', 0), None,
                                  *dataset_classes(dataset)) if overview else None)
        mask_dir.mkdir(exist_ok=True)
        for file in sorted(p for p in staging.rglob('*') if p.is_file()):
            target = mask_dir / file.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)
        shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_out_dir and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    atomic_write_text(out_dir / 'easy_split.txt', ''.join(f'{n}\n' for n in easy))
    atomic_write_text(out_dir / 'hard_split.txt', ''.join(f'{n}\n' for n in hard))
    json_dump({'checkpoint': str(checkpoint), 'normalize': normalize, 'lambda1': lambda1, 'summary': summary,
               'ranking': ranked}, out_dir / 'entropy_ranking.json')
    if figure is not None:
        save_image(figure, out_dir / OVERVIEW_NAME)
    return easy, hard, records


def _rank_into(model, dataset, input_size, device, mask_dir, normalize, lambda1, num_workers, extremes=None):
    """Score every image, write its pseudo-labels into mask_dir and offer it to `extremes`
    (ExtremeImages or None); returns (easy, hard, records)."""
    loader = data.DataLoader(dataset, batch_size=1, shuffle=False, num_workers=worker_count(num_workers),
                             pin_memory=device.type == 'cuda')
    interp = nn.Upsample(size=(input_size[1], input_size[0]), mode='bilinear', align_corners=True)
    records = []
    rare_classes = getattr(dataset, 'rare_classes', None) or RARE_CLASSES
    mask_options = {'keep_path': getattr(dataset, 'PSEUDO_LABELS_KEEP_PATHS', False),
                    'colours': getattr(dataset, 'palette', None)}
    model.eval()
    # The device never waits for the host: each image's results (mean entropy, rare-class
    # count, uint8 argmax) are copied to the host without blocking, and read only after the
    # next image has been queued; the PNGs are written by a few threads.
    pending = None
    with ImageWriter() as writer:
        for image, _, _, names in progress_bar(loader, desc='entropy ranking'):
            with torch.no_grad():
                pred_main = interp(model(image.to(device, non_blocking=True))[1])
                class_entropy = prob_2_entropy(F.softmax(pred_main, dim=1))
                mean_entropy = class_entropy.mean()
                prediction = argmax_channels(pred_main)[0].to(torch.uint8)
                rare = rare_class_count(prediction, rare_classes) if normalize else None
            # the per-class entropy is held until the next image is queued only when an overview may need it
            current = _HostCopy(names[0], mean_entropy, prediction, rare, image[0],
                                class_entropy if extremes is not None else None)
            if pending is not None:
                _finish_image(pending, records, writer, mask_dir, rare_classes, extremes=extremes, **mask_options)
            pending = current
        if pending is not None:
            _finish_image(pending, records, writer, mask_dir, rare_classes, extremes=extremes, **mask_options)
    easy, hard = split_by_entropy([(r['name'], r['score']) for r in records], lambda1)
    return easy, hard, records


def best_iteration_from_cache(snapshot_dir, selection='miou'):
    """(iteration, what is known of it) that TEST.SELECTION picks among the snapshots stage 1's
    best-mode evaluation recorded (all_res.json)."""
    from advent.domain_adaptation.eval_UDA import CACHE_NAME, selected_iteration
    picked = selected_iteration(snapshot_dir, selection)
    if picked is None:
        scores = '' if selection in ('miou', 'last') else f' with {selection} scores'
        raise RankingError(f'--best_iter not given and no best-mode evaluation result ({CACHE_NAME}{scores}) in '
                           f'{snapshot_dir}: run advent/scripts/test.py first or pass --best_iter')
    return picked


def target_rare_classes(cfg):
    """The rare classes of a folder target's class file (None: the Cityscapes ones)."""
    from advent.domain_adaptation.experiment import FOLDER_KINDS
    return load_class_file(cfg.TRAIN.INFO_TARGET, 'TRAIN.INFO_TARGET').get('rare') \
        if cfg.TARGET in FOLDER_KINDS else None


def run_ranking(cfg, best_iter, normalize, lambda1, out_dir):
    """Stage 2 from a finalised stage-1 config."""
    from advent.domain_adaptation.experiment import build_segmenter, build_target_dataset
    from advent.utils import distributed
    if not 0.0 <= lambda1 <= 1.0:
        raise RankingError(f'--lambda1 must lie in [0, 1], got {lambda1}')
    if normalize and cfg.NUM_CLASSES != 19 and not target_rare_classes(cfg):
        # the default rare classes are Cityscapes' 19-class train ids
        raise RankingError(f'--normalize True needs the 19 Cityscapes classes or a class file with "rare" '
                           f'(TRAIN.INFO_TARGET), the config has NUM_CLASSES {cfg.NUM_CLASSES}; rank with '
                           f'--normalize False')
    check_writable_dir(out_dir, '--out-dir')  # before any work
    snapshot_dir = Path(cfg.TRAIN.SNAPSHOT_DIR)
    if best_iter is None:
        best_iter, known = best_iteration_from_cache(cfg.TEST.SNAPSHOT_DIR[0], cfg.TEST.SELECTION)
        picked = 'best stage-1 iteration' if cfg.TEST.SELECTION == 'miou' else \
            f'stage-1 iteration selected by {cfg.TEST.SELECTION}'
        known = f' ({", ".join(known)})' if known else ''
        print(f'Using the {picked} {best_iter}{known} from {cfg.TEST.SNAPSHOT_DIR[0]}')
    checkpoint = snapshot_dir / f'model_{best_iter}.pth'
    if not checkpoint.is_file():
        raise RankingError(f'--best_iter {best_iter}: snapshot {checkpoint} does not exist')
    model = build_segmenter(cfg.TRAIN.MODEL, cfg.NUM_CLASSES, cfg.TRAIN.MULTI_LEVEL)
    device = distributed.device_for_rank(cfg.GPU_ID)
    print('Loading the generator:', checkpoint)
    load_for_evaluation(model, checkpoint, device)
    dataset = build_target_dataset(cfg)
    if getattr(dataset, 'PSEUDO_LABELS_KEEP_PATHS', False):
        check_distinct_pseudo_labels(dict.fromkeys(dataset.img_ids), dataset.list_path)
    with numeric_settings(cfg.ALLOW_TF32):
        easy, hard, _ = rank_target_images(model, dataset, cfg.TRAIN.INPUT_SIZE_TARGET, device, out_dir, normalize,
                                           lambda1, cfg.NUM_WORKERS, checkpoint)
    print(f'{len(easy)} easy and {len(hard)} hard images written to {Path(out_dir).resolve()}')
    return easy, hard
