"""Check a setup before a long run:  python -m intrada.check --cfg configs/advent.yml

One line per check: the device and its free memory, the output folders, the checkpoints
the config loads, and for each dataset it reads (source, target, val) its list file and
files, then a sample of images and labels decoded as training would (sizes, label ids);
with --full every listed image and label, naming each one that cannot be used.
A summary says what to fix. Exit status 0 when nothing failed, 1 otherwise, 2 when the
config itself cannot be used.

The checks build the library's own datasets and load checkpoints with its own loader,
so they fail where the run would, with the same messages.
"""
import sys
from pathlib import Path

import numpy as np

from advent.cli import base_parser, config_from_args, device_line, print_header, run_guarded
from advent.dataset.base_dataset import DatasetError, image_size_of
from advent.domain_adaptation.config import DATASET_DIR, PROJECT_ROOT, STAGE3_TARGETS
from advent.errors import UserError
from advent.utils.progress import progress_bar

OK, WARN, FAIL = 'ok', 'WARN', 'FAIL'
GIB = 2 ** 30


class Report:
    """Prints each check as it completes and keeps the results for the summary."""

    def __init__(self):
        self.results = []
        self.decoded = []   # (items decoded, items listed) per dataset

    def add(self, status, name, detail):
        self.results.append((status, name, detail))
        print(f'{status:<4}  {name:<16}  {detail}', flush=True)

    def failed(self):
        return [name for status, name, _ in self.results if status == FAIL]

    def print_summary(self):
        failed = self.failed()
        warned = [name for status, name, _ in self.results if status == WARN]
        if failed:
            print(f'\n{len(failed)} of {len(self.results)} checks failed: {", ".join(failed)}. Fix what their lines '
                  f'say (docs/reproducing.md, section "Data and weights", tells where each dataset and weight file comes '
                  f'from), then run this check again.')
        else:
            print(f'\nAll {len(self.results)} checks passed'
                  + (f'; read the warnings ({", ".join(warned)}) before a long run.' if warned else '.'))
        decoded, listed = (sum(counts) for counts in zip(*self.decoded)) if self.decoded else (0, 0)
        if decoded < listed:
            print(f'Decoded {decoded} of the {listed} listed items (a sample); --full decodes every image and '
                  f'label, as the run will.')
        elif listed:
            print(f'Decoded all {listed} listed items.')


def shown(path):
    """A path relative to the project when it lies inside it (shorter lines)."""
    path = Path(path)
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def check_device(report, cfg):
    import torch

    from advent.domain_adaptation.eval_UDA import available_memory
    from advent.utils import distributed
    device = distributed.device_for_rank(cfg.GPU_ID)
    if device.type == 'cuda':
        free, total = torch.cuda.mem_get_info(device)
        report.add(OK, 'device', f'{device_line(cfg)}: {free / GIB:.1f} GiB free of {total / GIB:.1f} GiB')
        return
    memory = available_memory()
    detail = f'{device_line(cfg)}; {memory / GIB:.1f} GiB of memory available' if memory else device_line(cfg)
    if cfg.TRAIN.MODEL in ('DeepLabv2', 'DeepLabv2-R50'):
        report.add(WARN, 'device', f'{detail}: {cfg.TRAIN.MODEL} at these sizes needs a GPU for a run of '
                                   f'{cfg.TRAIN.EARLY_STOP} iterations')
    else:
        report.add(OK, 'device', detail)


def check_output_folders(report, cfg):
    from advent.utils.serialization import check_writable_dir
    folders = dict.fromkeys([cfg.TRAIN.SNAPSHOT_DIR, cfg.TEST.SNAPSHOT_DIR[0], cfg.EXP_ROOT_LOGS])
    try:
        for folder in folders:
            check_writable_dir(folder, 'output folder')
    except UserError as e:
        report.add(FAIL, 'output folders', str(e))
        return
    report.add(OK, 'output folders', f'writable: {", ".join(shown(f) for f in folders)}')


def check_checkpoints(report, cfg):
    """The init checkpoint (and in single mode the evaluated ones) load into their models."""
    from advent.domain_adaptation.experiment import build_segmenter
    from advent.utils.serialization import load_model_weights
    jobs = [('init checkpoint', cfg.TRAIN.RESTORE_FROM, cfg.TRAIN.MODEL, cfg.TRAIN.MULTI_LEVEL)]
    if cfg.TEST.MODE == 'single':
        jobs += [('test checkpoint', path, model, multi)
                 for path, model, multi in zip(cfg.TEST.RESTORE_FROM, cfg.TEST.MODEL, cfg.TEST.MULTI_LEVEL)]
    for name, path, model_name, multi_level in jobs:
        if not path:
            report.add(WARN, name, f'none: the {model_name} segmenter starts from random weights')
            continue
        try:
            load_model_weights(build_segmenter(model_name, cfg.NUM_CLASSES, multi_level), path)
        except UserError as e:
            report.add(FAIL, name, str(e))
            continue
        report.add(OK, name, f'{shown(path)} loads into {model_name} ({cfg.NUM_CLASSES} classes)')


def dataset_jobs(cfg):
    """(name, list file, builder, written by stage 2) for every dataset the config reads."""
    from advent.domain_adaptation.experiment import build_source_dataset, build_target_dataset, build_test_dataset
    return [
        ('source', cfg.DATA_LIST_SOURCE.format(cfg.TRAIN.SET_SOURCE), build_source_dataset,
         cfg.SOURCE in ('CityscapesEasy', 'FolderEasy')),
        ('target', cfg.DATA_LIST_TARGET.format(cfg.TRAIN.SET_TARGET), build_target_dataset,
         cfg.TARGET in STAGE3_TARGETS),
        ('val', cfg.TEST.DATA_LIST_TARGET.format(cfg.TEST.SET_TARGET), build_test_dataset, False),
    ]


def check_datasets(report, cfg, samples):
    for role, list_file, build, from_stage2 in dataset_jobs(cfg):
        if from_stage2 and not Path(list_file).is_file():
            report.add(WARN, f'{role} data', f'{shown(list_file)} is not there yet: stage 2 '
                                             f'(entropy_rank/entropy.py) writes it; check again after it')
            continue
        try:
            dataset = build(cfg)
        except UserError as e:
            report.add(FAIL, f'{role} data', str(e))
            continue
        files = {name: (image, label) for image, label, name in dataset.files}  # the list may repeat
        packaged = ' (the packaged list)' if Path(list_file).parent.parent == DATASET_DIR else ''
        report.add(OK, f'{role} data', f'{type(dataset).__name__}: the {len(files)} images listed in '
                                       f'{shown(list_file)}{packaged} are present')
        labelled = getattr(dataset, 'load_labels', True)
        if role == 'val' and not check_val_selection(report, dataset, cfg):
            continue
        if labelled and not check_labels_present(report, role, dataset, files):
            continue
        check_sample(report, role, dataset, files, samples, labelled)


def check_val_selection(report, dataset, cfg):
    """Val items without a label: a failure where the evaluation needs them (single mode, or
    TEST.SELECTION 'miou'), fine for best mode with a label-free TEST.SELECTION."""
    from advent.domain_adaptation.eval_UDA import check_val_labels
    try:
        check_val_labels(dataset, cfg.TEST.MODE, cfg.TEST.SELECTION)
    except UserError as e:
        report.add(FAIL, 'val labels', str(e))
        return False
    return True


def check_labels_present(report, role, dataset, files):
    from advent.dataset.base_dataset import WHERE_TO_GET
    labels = [label for _, label in files.values() if label is not None]  # a folder dataset's may lack one
    missing = [label for label in labels if not Path(label).is_file()]
    if missing:
        report.add(FAIL, f'{role} labels', f'label {missing[0]} does not exist ({len(missing)} of the {len(files)} '
                                           f'labels are missing); expected {dataset.LAYOUT}; {WHERE_TO_GET}')
        return False
    unlabelled = f'; {len(files) - len(labels)} items without a label' if len(labels) < len(files) else ''
    report.add(OK, f'{role} labels', f'all {len(labels)} present{unlabelled}')
    return True


def check_sample(report, role, dataset, files, samples, labelled):
    """Decode evenly spaced items as training does (every item when `samples` is None, with a
    progress bar); the FAIL line counts the items that cannot be used, and names each."""
    names = list(files)
    if samples is None:
        picks = progress_bar(names, desc=f'decoding the {role} data')
    else:
        picks = [names[i] for i in sorted(set(np.linspace(0, len(names) - 1, min(samples, len(names))).round()
                                              .astype(int)))]
    image_sizes, warnings, errors, decoded, labels_decoded = set(), [], [], 0, 0
    for name in picks:
        image, label = files[name]
        decoded += 1
        try:
            image_sizes.add('x'.join(map(str, image_size_of(image, 'image'))))
            dataset.get_image(image)
        except UserError as e:
            errors.append(str(e))
        if labelled and label is not None:
            labels_decoded += 1
            try:
                warnings.append(check_label(dataset, image, label))
            except UserError as e:
                errors.append(str(e))
    errors, warnings = list(dict.fromkeys(errors)), [w for w in warnings if w]
    report.decoded.append((decoded, len(names)))
    what = 'images and labels' if labels_decoded else 'images'
    if errors:
        others = ''.join(f'\n{"":<24}{error}' for error in errors[1:])
        report.add(FAIL, f'{role} sample', f'{len(errors)} problem{"s" * (len(errors) > 1)} in the {decoded} items decoded: '
                                           f'{errors[0]}{others}')
        return
    detail = f'{decoded} of {len(names)} {what} decode; image size {", ".join(sorted(image_sizes))}'
    if warnings:
        more = f' (and {len(warnings) - 1} more)' if len(warnings) > 1 else ''
        report.add(WARN, f'{role} sample', f'{detail}; {warnings[-1]}{more}')
    else:
        report.add(OK, f'{role} sample', detail)


def check_label(dataset, image, label):
    """Raise DatasetError for a label training cannot use; return a warning text or None."""
    if dataset.LABEL_SIZE_MUST_MATCH:
        dataset.check_label_size(image, label)
    ids = np.unique(dataset.get_labels(label)).astype(np.int64)
    if dataset.LABEL_IDS is not None:
        foreign = [int(i) for i in ids if int(i) not in dataset.LABEL_IDS]
        if foreign:
            raise DatasetError(f'label {label} holds the id {foreign[0]}: expected {dataset.LABEL_IDS_TEXT}')
    if (dataset.get_train_ids(label) == 255).all():
        return f'no pixel of label {label} is of a training class (all ignored)'
    # Pseudo-labels (LABEL_IDS None) are written at the training input size: any size is theirs.
    # A GTA5 or SYNTHIA label of another size is resized to the image's, as in the original.
    image_size, label_size = image_size_of(image, 'image'), image_size_of(label, 'label')
    if not dataset.LABEL_SIZE_MUST_MATCH and dataset.LABEL_IDS is not None and label_size != image_size:
        return f'label {label} is {label_size[0]}x{label_size[1]}, its image {image_size[0]}x{image_size[1]}'
    return None


def run_checks(cfg, samples=5):
    """Every check of the module docstring (samples None: decode every item); returns the Report."""
    report = Report()
    check_device(report, cfg)
    check_output_folders(report, cfg)
    check_checkpoints(report, cfg)
    check_datasets(report, cfg, samples)
    report.print_summary()
    return report


def get_arguments(argv=None):
    parser = base_parser('Check a config, its datasets, checkpoints, output folders and device before a run')
    parser.add_argument('--samples', type=int, default=5,
                        help='images (and labels) per dataset to decode (default: %(default)s)')
    parser.add_argument('--full', action='store_true',
                        help='decode every listed image and label, as the run will, and name every one that '
                             'cannot be used')
    return parser.parse_args(argv)


def main(args):
    if args.samples < 1:
        raise UserError(f'--samples must be positive, got {args.samples}')
    cfg = config_from_args(args)
    print_header(args, cfg, snapshots=cfg.TRAIN.SNAPSHOT_DIR)
    return run_checks(cfg, None if args.full else args.samples)


def console_main(argv=None):
    """0 when every check passed, 1 when one failed, 2 when the config or a flag is unusable."""
    reports = []
    status = run_guarded(lambda args: reports.append(main(args)), get_arguments(argv))
    return status or (1 if reports[0].failed() else 0)


if __name__ == '__main__':
    sys.exit(console_main())
