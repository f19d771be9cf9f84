"""Evaluation on the target validation set (SPEC section 8).

'single' evaluates TEST.RESTORE_FROM (a weighted ensemble of the main outputs when
there are several models); 'best' walks model_{k}.pth in the snapshot folder, caches
each snapshot's per-class IoU and label-free scores in all_res.json (a rerun skips it)
and reports the snapshot TEST.SELECTION picks (selection.py, SPEC 11).

The work stays on the device: upsampling, argmax and the confusion matrix (a bincount,
a scatter-add on CUDA) never move a full-resolution score map to the host, and nothing in
the loop waits for the device. In best mode the labels are decoded once per run
(TEST.CACHE_LABELS, LabelCache). The result is the one the original's numpy path gives
(same argmax, same counts); tests/test_fast_paths.py checks it.
"""
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils import data

from advent.dataset.base_dataset import BaseDataset, DatasetError
from advent.dataset.synthia import CITYSCAPES_16_FROM_19
from advent.domain_adaptation.selection import LabelFreeScores, print_picks, selected
from advent.errors import UserError
from advent.utils import distributed
from advent.utils.func import fast_hist, per_class_iu
from advent.utils.precision import numeric_settings
from advent.utils.progress import progress_bar
from advent.utils.serialization import json_dump, json_load, load_model_weights
from advent.utils.viz_segmask import CLASS_COLOURS

CACHE_NAME = 'all_res.json'
# Among the 16 SYNTHIA classes, the 13 reported without wall, fence and pole.
CLASSES_13_OF_16 = [0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
# The names of those 16 (info16.json); another 16-class problem (a folder dataset's) has no mIoU13.
SYNTHIA_16_NAMES = [CLASS_COLOURS[i][0] for i in CITYSCAPES_16_FROM_19]


class EvaluationError(UserError, RuntimeError):
    pass


def evaluate_domain_adaptation(models, test_loader, cfg, fixed_test_size=True, verbose=True):
    device = distributed.device_for_rank(cfg.GPU_ID)
    interp = None
    if fixed_test_size:
        interp = nn.Upsample(size=(cfg.TEST.OUTPUT_SIZE_TARGET[1], cfg.TEST.OUTPUT_SIZE_TARGET[0]),
                             mode='bilinear', align_corners=True)
    evaluate = {'single': eval_single, 'best': eval_best}.get(cfg.TEST.MODE)
    if evaluate is None:
        raise NotImplementedError(f'TEST.MODE {cfg.TEST.MODE!r}')
    with numeric_settings(cfg.ALLOW_TF32):
        return evaluate(cfg, models, device, test_loader, interp, fixed_test_size, verbose)


def confusion_matrix(models, weights, test_loader, num_classes, device, interp, fixed_test_size, desc='',
                     labels=None, keep_labels=None, scores=None):
    """num_classes x num_classes counts (rows = label, columns = prediction), int64 on the host.

    labels: the labels of the loader's batches, in order (see LabelCache); the labels the
    loader yields are then ignored. keep_labels: a list that receives every batch's label
    (uint8, on the host) for a later pass. scores: a LabelFreeScores fed in the same pass."""
    return evaluation_pass(models, weights, test_loader, num_classes, device, interp, desc, labels, keep_labels,
                           scores)


def evaluation_pass(models, weights, test_loader, num_classes, device, interp, desc='', labels=None,
                    keep_labels=None, scores=None, count=True):
    """One forward pass over the loader: the confusion matrix (as confusion_matrix; None when
    not `count`, and then no label is looked at) and the label-free `scores`, from the same
    main outputs."""
    # one extra bin collects the pixels whose label is not a class (255, ...)
    hist = torch.zeros(num_classes * num_classes + 1, dtype=torch.int64, device=device) if count else None
    for index, (image, label, _, _) in enumerate(progress_bar(test_loader, desc=desc, leave=False)):
        image = image.to(device, non_blocking=True)
        at_scores_size = None
        with torch.no_grad():
            main_outputs = [model(image)[1] for model in models]
            if scores is not None:
                at_scores_size = weighted_sum(main_outputs, weights, scores.upsample)
                scores.add(at_scores_size)
        if not count:
            continue
        if labels is not None:
            label = labels[index]
        elif keep_labels is not None:
            keep_labels.append(compact_labels(label, num_classes))
        label = label.to(device, non_blocking=True)
        upsample = interp or nn.Upsample(size=tuple(label.shape[1:]), mode='bilinear', align_corners=True)
        with torch.no_grad():
            # where the evaluation's size is the scores' (the demo's), their map is this one
            same_size = at_scores_size is not None and tuple(upsample.size) == tuple(scores.upsample.size)
            output = at_scores_size if same_size else weighted_sum(main_outputs, weights, upsample)
            del main_outputs, at_scores_size
            prediction = argmax_channels(output)
            del output  # the full-resolution score map goes before the next image's arrives
        accumulate_hist(hist, label, prediction, num_classes)
    return None if hist is None else hist[:-1].view(num_classes, num_classes).cpu().numpy()


def weighted_sum(main_outputs, weights, upsample):
    """The ensemble of TEST.MODEL_WEIGHT: sum over k of weight_k * upsample(main_outputs[k]),
    in model order, in place (the original's arithmetic; a weight of 1 changes no value and
    is skipped). main_outputs is left as it is; it may be a generator, so that one model's output
    at a time is held."""
    output = None
    for scores, weight in zip(main_outputs, weights):
        scores = upsample(scores)
        if weight != 1:
            scores.mul_(weight)
        output = scores if output is None else output.add_(scores)
        del scores
    return output


def argmax_channels(scores):
    """Argmax over the class dimension of NCHW scores: the first maximum, as np.argmax.
    On the CPU torch.max(dim) gives the same indices several times faster than
    torch.argmax, which is slow over a dimension that is not the innermost."""
    return scores.max(1).indices if scores.device.type == 'cpu' else scores.argmax(1)


def accumulate_hist(hist, label, prediction, num_classes, scatter=None):
    """Add one batch to a flat (num_classes ** 2 + 1) count vector, on its device; pixels
    with a label outside [0, num_classes) are not counted (on CUDA they land in the last
    bin). On an accelerator (scatter=None) a scatter-add, which, unlike bincount or boolean
    indexing, never waits for the device; on the CPU numpy's bincount (fast_hist), the
    fastest there."""
    if not (hist.device.type != 'cpu' if scatter is None else scatter):
        counts = fast_hist(label.numpy().ravel(), prediction.numpy().ravel(), num_classes)
        hist[:-1] += torch.from_numpy(counts.ravel())
        return
    label = label.long()
    index = torch.where((label >= 0) & (label < num_classes), num_classes * label + prediction,
                        num_classes * num_classes).flatten()
    hist.scatter_add_(0, index, torch.ones_like(index))


def compact_labels(label, num_classes):
    """A label batch as uint8 (classes kept, every other value 255): 1 byte a pixel instead of 8."""
    label = torch.as_tensor(label)
    return torch.where((label >= 0) & (label < num_classes), label, 255).to(torch.uint8)


class ImagesOnly(data.Dataset):
    """The images of a labelled dataset (items as the dataset's, the label a dummy 0):
    the evaluation decodes the labels only once (LabelCache)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        img_file, _, name = self.dataset.files[index]
        image = self.dataset.preprocess(self.dataset.get_image(img_file))
        return image.copy(), 0, np.array(image.shape), name


class LabelCache:
    """Val labels decoded once per run: the first evaluated snapshot keeps them in memory
    (uint8, width x height bytes an image), later snapshots load only the images. Used when
    the loader goes through a standard dataset in order and the labels take at most a
    quarter of the memory available."""

    def __init__(self, test_loader, num_classes):
        self.test_loader = test_loader
        self.num_classes = num_classes
        self.labels = None
        self.enabled = self._usable(test_loader)

    @staticmethod
    def _usable(loader):
        dataset = loader.dataset
        if not (standard_dataset(dataset) and isinstance(loader.sampler, data.SequentialSampler)):
            return False
        needed = len(dataset) * dataset.labels_size[0] * dataset.labels_size[1]
        available = available_memory()
        return available is not None and needed <= available // 4

    def confusion_matrix(self, models, weights, device, interp, fixed_test_size, desc='', scores=None):
        loader = self.test_loader
        if not self.enabled:
            return confusion_matrix(models, weights, loader, self.num_classes, device, interp, fixed_test_size, desc,
                                    scores=scores)
        if self.labels is None:
            kept = []
            hist = confusion_matrix(models, weights, loader, self.num_classes, device, interp, fixed_test_size,
                                    desc, keep_labels=kept, scores=scores)
            self.labels = kept
            return hist
        return confusion_matrix(models, weights, images_only(loader), self.num_classes, device, interp,
                                fixed_test_size, desc, labels=self.labels, scores=scores)


def standard_dataset(dataset):
    """A dataset whose items BaseDataset makes (so ImagesOnly gives the same images)."""
    return isinstance(dataset, BaseDataset) and type(dataset).__getitem__ is BaseDataset.__getitem__


def images_only(loader):
    """The loader's images without opening a label file (ImagesOnly) for a standard dataset;
    other datasets' loaders as they are."""
    if not standard_dataset(loader.dataset):
        return loader
    return data.DataLoader(ImagesOnly(loader.dataset), batch_size=loader.batch_size,
                           num_workers=loader.num_workers, pin_memory=loader.pin_memory)


def available_memory():
    """Bytes of memory available (Linux /proc/meminfo), or None when unknown."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def miou_percent(ious, classes=None):
    ious = np.asarray(ious, dtype=np.float64)
    if classes is not None:
        ious = ious[classes]
    return round(float(np.nanmean(ious)) * 100, 2)


def display_stats(cfg, class_names, ious):
    for name, iou in zip(class_names[:cfg.NUM_CLASSES], ious):
        print(f'{name}\t{round(float(iou) * 100, 2)}')


def reports_miou13(class_names):
    return [str(name) for name in class_names] == SYNTHIA_16_NAMES


def print_miou(ious, prefix, class_names):
    print(f'{prefix}{miou_percent(ious)}')
    if reports_miou13(class_names):
        print(f'mIoU13 = \t{miou_percent(ious, CLASSES_13_OF_16)}')


def iou_summary(ious, class_names):
    """{'mIoU': percent, 'per_class': {class name: percent or None (class absent)}}."""
    return {'mIoU': miou_percent(ious),
            'per_class': {str(n): _percent_or_none(v) for n, v in zip(class_names, ious)}}


def write_iou_table(path, checkpoint, ious, class_names):
    """The per-class IoU table (percent) as JSON beside the checkpoint."""
    table = {'checkpoint': str(checkpoint), **iou_summary(ious, class_names)}
    if reports_miou13(class_names):
        table['mIoU13'] = miou_percent(ious, CLASSES_13_OF_16)
    json_dump(table, path)


def _percent_or_none(value):
    return None if math.isnan(value) else round(float(value) * 100, 2)


def load_for_evaluation(model, checkpoint, device):
    load_model_weights(model, checkpoint)
    model.eval()
    model.to(device)


def eval_single(cfg, models, device, test_loader, interp, fixed_test_size, verbose):
    if len(cfg.TEST.RESTORE_FROM) != len(models):
        raise EvaluationError(f'TEST.RESTORE_FROM has {len(cfg.TEST.RESTORE_FROM)} entries for {len(models)} models')
    for checkpoint, model in zip(cfg.TEST.RESTORE_FROM, models):
        load_for_evaluation(model, checkpoint, device)
    hist = confusion_matrix(models, cfg.TEST.MODEL_WEIGHT, test_loader, cfg.NUM_CLASSES, device, interp,
                            fixed_test_size, desc='evaluating')
    ious = per_class_iu(hist)
    class_names = test_loader.dataset.class_names
    print_miou(ious, 'mIoU = \t', class_names)
    if verbose:
        display_stats(cfg, class_names, ious)
    first = Path(cfg.TEST.RESTORE_FROM[0])
    write_iou_table(first.with_name(first.stem + '_iou.json'), ', '.join(cfg.TEST.RESTORE_FROM), ious, class_names)
    return ious


def snapshot_iterations(cfg):
    return range(cfg.TEST.SNAPSHOT_STEP, cfg.TEST.SNAPSHOT_MAXITER + 1, cfg.TEST.SNAPSHOT_STEP)


def present_snapshots(cfg):
    """The iterations of snapshot_iterations whose model_<k>.pth is in TEST.SNAPSHOT_DIR: the
    snapshots a finished best-mode evaluation chose among. A cached score of another iteration
    (an earlier, longer run in the same folder) is no candidate."""
    snapshot_dir = Path(cfg.TEST.SNAPSHOT_DIR[0])
    return [i for i in snapshot_iterations(cfg) if (snapshot_dir / f'model_{i}.pth').is_file()]


def snapshot_signature(path):
    """Size and modification time: a snapshot retrained in place is evaluated again."""
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]


def load_results_cache(snapshot_dir):
    """{iteration: per-class IoU array} from all_res.json ({} when absent). Entries whose
    snapshot file has changed since it was evaluated are dropped."""
    return load_cache(snapshot_dir)[0]


def load_cache(snapshot_dir):
    """(results, label_free) from all_res.json: {iteration: per-class IoU array} and
    {iteration: {'entropy': float, 'im': float}} ({} when absent; a cache written before the
    label-free scores has none). Entries whose snapshot file has changed since it was
    evaluated are dropped."""
    path = Path(snapshot_dir) / CACHE_NAME
    if not path.is_file():
        return {}, {}
    try:
        raw = json_load(path)
        results = {int(k): np.array([np.nan if v is None else v for v in ious], dtype=np.float64)
                   for k, ious in raw['results'].items()}
        label_free = {int(k): {name: float(scores[name]) for name in ('entropy', 'im')}
                      for k, scores in raw.get('label_free', {}).items()}
        signatures = {int(k): v for k, v in raw['snapshots'].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise EvaluationError(f'result cache {path} is not a valid all_res.json; delete it to re-evaluate') from None
    for entries in (results, label_free):
        for i_iter in list(entries):
            snapshot = Path(snapshot_dir) / f'model_{i_iter}.pth'
            if snapshot.is_file() and snapshot_signature(snapshot) != signatures.get(i_iter):
                del entries[i_iter]
    return results, label_free


def save_results_cache(snapshot_dir, results, class_names, label_free=None):
    label_free = label_free or {}
    snapshots = {i: Path(snapshot_dir) / f'model_{i}.pth' for i in set(results) | set(label_free)}
    raw = {'class_names': [str(n) for n in class_names],
           'results': {str(k): [None if math.isnan(v) else float(v) for v in ious]
                       for k, ious in sorted(results.items())},
           'label_free': {str(k): dict(scores) for k, scores in sorted(label_free.items())},
           'snapshots': {str(k): snapshot_signature(p) if p.is_file() else None
                         for k, p in sorted(snapshots.items())}}
    json_dump(raw, Path(snapshot_dir) / CACHE_NAME)


def selected_iteration(snapshot_dir, selection, candidates=None):
    """(iteration, what is known of it, e.g. ['entropy 0.012345', 'mIoU 40.1']) that the
    criterion `selection` picks among the snapshots cached in all_res.json (only those of
    `candidates`, iterations, when given); None when the cache holds no score it needs."""
    results, label_free = load_cache(snapshot_dir)
    mious = {i_iter: miou_percent(ious) for i_iter, ious in results.items()}
    cached = set(results) | set(label_free)
    return selected(selection, cached if candidates is None else cached & set(candidates), mious, label_free)


def selected_snapshot(cfg):
    """selected_iteration among this run's snapshots (present_snapshots): the pick a best-mode
    evaluation of `cfg` reports, read back from its all_res.json."""
    return selected_iteration(cfg.TEST.SNAPSHOT_DIR[0], cfg.TEST.SELECTION, present_snapshots(cfg))


def check_val_labels(dataset, mode, selection):
    """The labels an evaluation in TEST.MODE `mode` needs on the val list (dataset.labelled):
    single mode reports the mIoU, so every item needs one; best mode needs them only for
    TEST.SELECTION 'miou'. The evaluation and intrada.check both apply this rule."""
    if getattr(dataset, 'labelled', True):
        return
    list_path = getattr(dataset, 'list_path', 'the val list')
    first = dataset.first_unlabelled() if hasattr(dataset, 'first_unlabelled') else 'an item'
    if mode == 'single':
        raise DatasetError(f"{list_path}: {first!r} has no label; the mIoU evaluation of TEST.MODE 'single' needs "
                           f"a label on every val item (IMAGE LABEL lines)")
    if selection == 'miou':
        raise EvaluationError(f"TEST.SELECTION 'miou' needs a label on every val item, and in {list_path} {first!r} "
                              f"has no label: label it, or choose one of 'entropy', 'im', 'last'")


def eval_best(cfg, models, device, test_loader, interp, fixed_test_size, verbose):
    if len(models) != 1:
        raise EvaluationError('TEST.MODE best evaluates one model; use single mode for an ensemble')
    snapshot_dir = Path(cfg.TEST.SNAPSHOT_DIR[0])
    if not snapshot_dir.is_dir():
        raise EvaluationError(f'snapshot folder {snapshot_dir} does not exist (TEST.SNAPSHOT_DIR)')
    selection = cfg.TEST.SELECTION
    check_val_labels(test_loader.dataset, 'best', selection)
    # Without a label on every val item there is no mIoU, and no label file is opened.
    labelled = getattr(test_loader.dataset, 'labelled', True)
    results, label_free = load_cache(snapshot_dir)
    class_names = test_loader.dataset.class_names
    label_cache = None
    if labelled:
        label_cache = LabelCache(test_loader, cfg.NUM_CLASSES)
        label_cache.enabled = label_cache.enabled and cfg.TEST.get('CACHE_LABELS', True)
    cur_best_miou, cur_best_model = -1, ''
    evaluated = []
    for i_iter in snapshot_iterations(cfg):
        restore_from = snapshot_dir / f'model_{i_iter}.pth'
        if not restore_from.exists():
            if not cfg.TEST.WAIT_MODEL:
                continue
            print('Waiting for model..!', flush=True)
            while not restore_from.exists():
                time.sleep(5)
            time.sleep(1)  # snapshots are renamed into place, but let the writer finish its D files
        print('Evaluating model', restore_from)
        needs_miou = labelled and i_iter not in results
        if needs_miou or i_iter not in label_free:
            ious, label_free[i_iter] = evaluate_snapshot(cfg, models[0], restore_from, device, test_loader,
                                                         label_cache if needs_miou else None, interp,
                                                         fixed_test_size, f'model_{i_iter}')
            if needs_miou:
                results[i_iter] = ious
            save_results_cache(snapshot_dir, results, class_names, label_free)
            if needs_miou:
                write_iou_table(snapshot_dir / f'model_{i_iter}_iou.json', restore_from, results[i_iter], class_names)
        evaluated.append(i_iter)
        if labelled:
            ious = results[i_iter]
            computed_miou = miou_percent(ious)
            if cur_best_miou < computed_miou:
                cur_best_miou, cur_best_model = computed_miou, str(restore_from)
            print('\tCurrent mIoU:', computed_miou)
            if reports_miou13(class_names):
                print('\tCurrent mIoU13:', miou_percent(ious, CLASSES_13_OF_16))
            print('\tCurrent best model:', cur_best_model)
            print('\tCurrent best mIoU:', cur_best_miou)
        if selection != 'miou':
            print(f'\tCurrent entropy: {label_free[i_iter]["entropy"]:.6f}')
            print(f'\tCurrent IM: {label_free[i_iter]["im"]:.6f}')
        if verbose and labelled:
            display_stats(cfg, class_names, results[i_iter])
    if not evaluated:
        raise EvaluationError(f'no snapshot model_<k>.pth with k in {snapshot_iterations(cfg)} '
                              f'in {snapshot_dir}')
    mious = {i: miou_percent(results[i]) for i in evaluated} if labelled else {}
    print_picks(selection, evaluated, mious, label_free)
    chosen, known = selected(selection, evaluated, mious, label_free)
    chosen_model = snapshot_dir / f'model_{chosen}.pth'
    if selection == 'miou':
        print(f'Best iteration: {chosen} (mIoU {mious[chosen]}, {chosen_model})')
    else:
        details = known + [str(chosen_model)]
        print(f'Best iteration: {chosen} (selected by {selection}: {", ".join(details)})')
    return results


def evaluate_snapshot(cfg, model, checkpoint, device, test_loader, label_cache, interp, fixed_test_size, desc):
    """One forward pass of a snapshot over the val set. Returns (per-class IoU, label-free
    scores); without a label_cache (LabelCache) only the scores, and no label is read."""
    load_for_evaluation(model, checkpoint, device)
    scores = LabelFreeScores(cfg.TEST.INPUT_SIZE_TARGET, cfg.NUM_CLASSES, device)
    ious = None
    if label_cache is not None:
        ious = per_class_iu(label_cache.confusion_matrix([model], [1.0], device, interp, fixed_test_size, desc,
                                                         scores=scores))
    else:
        evaluation_pass([model], [1.0], images_only(test_loader), cfg.NUM_CLASSES, device, interp, desc,
                        scores=scores, count=False)
    return ious, scores.result()
