"""Where a prediction's settings come from: the model variant, the classes and their palette,
the mean and the input size.

Highest first: a flag (--model, --input-size); a key the --cfg file sets; the train_cfg.yml
that training wrote beside the checkpoint (the run's own model, classes and evaluation
settings); the defaults. So `--checkpoint experiments/.../model_N.pth` alone predicts with
the model that made the weights, at the size its run evaluated at. Every setting is printed
with its source."""
import json
from pathlib import Path

from advent.dataset.folder import load_class_file
from advent.domain_adaptation.config import dotted_keys, load_config, load_yaml
from advent.domain_adaptation.experiment import FOLDER_KINDS
from advent.errors import UserError
from advent.model.deeplabv2 import MODEL_VARIANTS
from advent.utils.viz_segmask import CLASS_COLOURS

RUN_CONFIG = 'train_cfg.yml'
# Taken from the run's config unless --cfg sets them: its classes and its evaluation's settings.
SHARED_TEST_KEYS = ('INFO_TARGET', 'IMG_MEAN', 'INPUT_SIZE_TARGET')


class SettingsError(UserError, ValueError):
    pass


def run_config_beside(checkpoint):
    """(path, config) of the train_cfg.yml in the checkpoint's folder; config None when there is none."""
    path = Path(checkpoint).parent / RUN_CONFIG
    return path, (load_config(path) if path.is_file() else None)


def prediction_config(args):
    """(cfg, palette, lines): the config the prediction runs with (--cfg or the defaults,
    completed from the checkpoints' run configs), the classes' palette, and one line per
    setting naming its value and source."""
    cfg = load_config(args.cfg)
    given = set(dotted_keys(load_yaml(args.cfg))) if args.cfg else set()
    checkpoints = args.checkpoint or [p for p in cfg.TEST.RESTORE_FROM if p]
    runs = [run_config_beside(checkpoint) for checkpoint in checkpoints]
    found = [(path, run) for path, run in runs if run is not None]
    notes = [f'note: no {RUN_CONFIG} beside {checkpoint}: the defaults are used where no flag or --cfg '
             f'sets a value' for checkpoint, (_, run) in zip(checkpoints, runs) if run is None]

    def source(key, flag=None, from_run=None):
        if flag:
            return flag
        if key in given:
            return f'--cfg {args.cfg}'
        return str(from_run) if from_run else 'default'

    shared_from = found[0][0] if found else None
    # TEST.INFO_TARGET is a class file when the config it comes from has a folder target
    classes_from = found[0][1] if found and 'TEST.INFO_TARGET' not in given else cfg
    if found:
        if 'NUM_CLASSES' not in given:
            cfg.NUM_CLASSES = found[0][1].NUM_CLASSES
        for key in SHARED_TEST_KEYS:
            if f'TEST.{key}' not in given:
                cfg.TEST[key] = found[0][1].TEST[key]
    for key in ('MODEL', 'MULTI_LEVEL'):
        if found and f'TEST.{key}' not in given:   # the model that made each checkpoint's weights
            values = cfg.TEST[key]
            cfg.TEST[key] = [run.TRAIN[key] if run else values[i if len(values) == len(runs) else 0]
                             for i, (_, run) in enumerate(runs)]
    model_sources = ([source('TEST.MODEL', '--model')] if args.model else
                     [source('TEST.MODEL', from_run=path if run else None) for path, run in runs])
    models = args.model or cfg.TEST.MODEL
    size = args.input_size or cfg.TEST.INPUT_SIZE_TARGET
    palette, palette_source = class_palette(cfg.TEST.INFO_TARGET, classes_from.TARGET in FOLDER_KINDS,
                                            f'TEST.INFO_TARGET from {source("TEST.INFO_TARGET", from_run=shared_from)}')
    lines = notes + [
        f'model: {", ".join(models)} (from {"; ".join(dict.fromkeys(model_sources))})',
        f'classes: {cfg.NUM_CLASSES} (from {source("NUM_CLASSES", from_run=shared_from)}), palette '
        f'{palette_source} (from {source("TEST.INFO_TARGET", from_run=shared_from)})',
        f'mean (BGR): {" ".join(f"{v:.2f}" for v in cfg.TEST.IMG_MEAN)} '
        f'(from {source("TEST.IMG_MEAN", from_run=shared_from)})',
        f'input size: {size[0]}x{size[1]} '
        f'(from {source("TEST.INPUT_SIZE_TARGET", "--input-size" if args.input_size else None, shared_from)})',
    ]
    return cfg, palette, lines


def class_palette(info_path, class_file, key):
    """([r, g, b] per class, description) from the 'palette' of a folder dataset's class file
    (`class_file`: read and checked by load_class_file, a missing or bad one is an error
    naming `key`) or of a canonical dataset's info file (the Cityscapes palette, said so, when
    it cannot be read: a run config from another machine names that machine's copy)."""
    if class_file:
        return load_class_file(info_path, key)['palette'], f'of {info_path}'
    try:
        colours = [[int(channel) for channel in colour] for colour in json.loads(Path(info_path).read_text())['palette']]
    except (OSError, ValueError, KeyError, TypeError):
        return [list(colour) for _, colour in CLASS_COLOURS], f'of Cityscapes ({info_path} cannot be read)'
    return colours, f'of {info_path}'


def weights_mismatch(error):
    """A checkpoint that does not fit the model built for it, with the flags that choose the model."""
    return SettingsError(f'{error}; choose the model variant with --model (one of {", ".join(MODEL_VARIANTS)}) '
                         f'and the class count with --cfg (NUM_CLASSES), or put the {RUN_CONFIG} of the run that '
                         f'wrote the checkpoint beside it')
