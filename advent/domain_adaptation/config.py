"""Configuration: the original ADVENT defaults, merged strictly with a YAML file.

`cfg` is the global config of the original code base; `cfg_from_file(path)` merges a
YAML file into it. Merging is strict: an unknown key or a value of another type is a
`ConfigError` naming the key and the file. Relative paths resolve against the project
root (the folder that holds `advent/`), so scripts work from any directory.
"""
import copy
import difflib
import os
from pathlib import Path

import numpy as np
import yaml
from easydict import EasyDict

from advent.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATASET_DIR = PROJECT_ROOT / 'advent' / 'dataset'

# Keys (dotted) whose values are filesystem paths, resolved against PROJECT_ROOT.
PATH_KEYS = (
    'DATA_LIST_SOURCE', 'DATA_LIST_TARGET', 'DATA_DIRECTORY_SOURCE', 'DATA_DIRECTORY_TARGET',
    'DATA_DIRECTORY_PSEUDO_LABELS', 'EXP_ROOT', 'EXP_ROOT_SNAPSHOT', 'EXP_ROOT_LOGS',
    'TRAIN.INFO_SOURCE', 'TRAIN.INFO_TARGET', 'TRAIN.RESTORE_FROM', 'TRAIN.SNAPSHOT_DIR',
    'TRAIN.TENSORBOARD_LOGDIR', 'TEST.RESTORE_FROM', 'TEST.SNAPSHOT_DIR', 'TEST.INFO_TARGET',
    'TEST.DATA_LIST_TARGET',
)

IMG_MEAN = (104.00698793, 116.66876762, 122.67891434)


class ConfigError(UserError, ValueError):
    """A config file or value that does not fit the defaults."""


def default_config():
    """A fresh EasyDict with every key and its default value."""
    c = EasyDict()
    c.SOURCE = 'GTA'
    c.TARGET = 'Cityscapes'
    c.NUM_WORKERS = 4
    c.DATA_LIST_SOURCE = str(DATASET_DIR / 'gta5_list' / '{}.txt')
    c.DATA_LIST_TARGET = str(DATASET_DIR / 'cityscapes_list' / '{}.txt')
    c.DATA_DIRECTORY_SOURCE = str(PROJECT_ROOT / 'data' / 'GTA5')
    c.DATA_DIRECTORY_TARGET = str(PROJECT_ROOT / 'data' / 'Cityscapes')
    # Stage 3: pseudo-labels of the easy split; '' = color_masks/ beside DATA_LIST_SOURCE.
    c.DATA_DIRECTORY_PSEUDO_LABELS = ''
    c.NUM_CLASSES = 19
    c.EXP_NAME = ''
    c.EXP_ROOT = str(PROJECT_ROOT / 'experiments')
    c.EXP_ROOT_SNAPSHOT = str(PROJECT_ROOT / 'experiments' / 'snapshots')
    c.EXP_ROOT_LOGS = str(PROJECT_ROOT / 'experiments' / 'logs')
    c.GPU_ID = 0                     # -1: the CPU even when a GPU is present
    # fp32 convolutions and matrix products in TF32 on Ampere and later GPUs; off by default,
    # so that fp32 means IEEE fp32, as on the original's GPUs (advent/utils/precision.py)
    c.ALLOW_TF32 = False

    c.TRAIN = EasyDict()
    c.TRAIN.SET_SOURCE = 'all'
    c.TRAIN.SET_TARGET = 'train'
    c.TRAIN.BATCH_SIZE_SOURCE = 1
    c.TRAIN.BATCH_SIZE_TARGET = 1
    c.TRAIN.IGNORE_LABEL = 255
    c.TRAIN.INPUT_SIZE_SOURCE = [1280, 720]
    c.TRAIN.INPUT_SIZE_TARGET = [1024, 512]
    c.TRAIN.INFO_SOURCE = ''
    c.TRAIN.INFO_TARGET = str(DATASET_DIR / 'cityscapes_list' / 'info.json')
    c.TRAIN.MODEL = 'DeepLabv2'
    c.TRAIN.MULTI_LEVEL = True
    c.TRAIN.RESTORE_FROM = ''
    c.TRAIN.IMG_MEAN = np.array(IMG_MEAN, dtype=np.float32)
    c.TRAIN.LEARNING_RATE = 2.5e-4
    c.TRAIN.MOMENTUM = 0.9
    c.TRAIN.WEIGHT_DECAY = 0.0005
    c.TRAIN.POWER = 0.9
    # The original's SGD update: each backbone parameter updated once per time the original's
    # parameter generator listed it (advent/domain_adaptation/optim.py); False = textbook SGD.
    c.TRAIN.ORIGINAL_SGD = True
    c.TRAIN.LAMBDA_SEG_MAIN = 1.0
    c.TRAIN.LAMBDA_SEG_AUX = 0.1
    c.TRAIN.DA_METHOD = 'AdvEnt'
    c.TRAIN.LEARNING_RATE_D = 1e-4
    # Width of the discriminators' first conv (ndf; the others are 2x, 4x, 8x it). 64 is the
    # original's; the demo's reduced segmenter uses a narrower one (docs/demo.md).
    c.TRAIN.D_NDF = 64
    c.TRAIN.LAMBDA_ADV_MAIN = 0.001
    c.TRAIN.LAMBDA_ADV_AUX = 0.0002
    c.TRAIN.LAMBDA_ENT_MAIN = 0.001
    c.TRAIN.LAMBDA_ENT_AUX = 0.0002
    c.TRAIN.MAX_ITERS = 250000
    c.TRAIN.EARLY_STOP = 120000
    c.TRAIN.SAVE_PRED_EVERY = 2000
    c.TRAIN.SNAPSHOT_DIR = ''
    c.TRAIN.RANDOM_SEED = 1234
    c.TRAIN.TENSORBOARD_LOGDIR = ''
    c.TRAIN.TENSORBOARD_VIZRATE = 100
    # Speed options, off by default so that the default path is the faithful fp32 one.
    c.TRAIN.AMP = ''                 # '' (fp32), 'bf16' or 'fp16' (with a grad scaler)
    c.TRAIN.CHANNELS_LAST = False
    c.TRAIN.CUDNN_BENCHMARK = False

    c.TEST = EasyDict()
    c.TEST.MODE = 'best'
    c.TEST.MODEL = ['DeepLabv2']
    c.TEST.MODEL_WEIGHT = [1.0]
    c.TEST.MULTI_LEVEL = [True]
    c.TEST.IMG_MEAN = np.array(IMG_MEAN, dtype=np.float32)
    c.TEST.RESTORE_FROM = ['']
    c.TEST.SNAPSHOT_DIR = ['']
    c.TEST.SNAPSHOT_STEP = 2000
    c.TEST.SNAPSHOT_MAXITER = 120000
    c.TEST.SET_TARGET = 'val'
    c.TEST.DATA_LIST_TARGET = str(DATASET_DIR / 'cityscapes_list' / '{}.txt')
    c.TEST.BATCH_SIZE_TARGET = 1
    c.TEST.INPUT_SIZE_TARGET = [1024, 512]
    c.TEST.OUTPUT_SIZE_TARGET = [2048, 1024]
    c.TEST.INFO_TARGET = str(DATASET_DIR / 'cityscapes_list' / 'info.json')
    c.TEST.WAIT_MODEL = True
    c.TEST.CACHE_LABELS = True       # best mode: decode the val labels once per run (memory permitting)
    c.TEST.SELECTION = 'miou'        # best mode: how the snapshot is picked (SPEC 11; 'miou' is the original's)
    return c


cfg = default_config()

# Allowed values of a few string keys, checked after a merge.
CHOICES = {
    'SOURCE': ('GTA', 'SYNTHIA', 'CityscapesEasy', 'Folder', 'FolderEasy'),
    'TARGET': ('Cityscapes', 'CityscapesHard', 'Folder', 'FolderHard'),
    'TRAIN.DA_METHOD': ('AdvEnt', 'MinEnt', 'SourceOnly', 'BNOnly'),
    'TRAIN.AMP': ('', 'bf16', 'fp16'),
    'TEST.MODE': ('best', 'single'),
    'TEST.SELECTION': ('miou', 'entropy', 'im', 'last'),
}
POSITIVE_INTS = ('NUM_CLASSES', 'TRAIN.BATCH_SIZE_SOURCE', 'TRAIN.BATCH_SIZE_TARGET', 'TRAIN.D_NDF', 'TRAIN.MAX_ITERS',
                 'TRAIN.EARLY_STOP', 'TRAIN.SAVE_PRED_EVERY', 'TRAIN.TENSORBOARD_VIZRATE',
                 'TEST.SNAPSHOT_STEP', 'TEST.SNAPSHOT_MAXITER', 'TEST.BATCH_SIZE_TARGET')
# Stage 3's targets: the hard split of a ranking (SPEC 9, 11).
STAGE3_TARGETS = ('CityscapesHard', 'FolderHard')
SIZE_KEYS = ('TRAIN.INPUT_SIZE_SOURCE', 'TRAIN.INPUT_SIZE_TARGET', 'TEST.INPUT_SIZE_TARGET',
             'TEST.OUTPUT_SIZE_TARGET')


def _coerce(key, value, default, source):
    """Return `value` converted to the type of `default`, or raise ConfigError."""
    where = f'{source}: ' if source else ''
    if isinstance(default, np.ndarray):
        if not isinstance(value, (list, tuple)) or len(value) != default.size:
            raise ConfigError(f'{where}{key} must be a list of {default.size} numbers, got {value!r}')
        try:
            return np.array(value, dtype=default.dtype)
        except (TypeError, ValueError):
            raise ConfigError(f'{where}{key} must be a list of {default.size} numbers, got {value!r}') from None
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where}{key} must be a list, got {type(value).__name__} {value!r}')
        if not default:
            return list(value)
        # every entry must fit the type of the default's entries (str paths, bool flags, float weights)
        return [_coerce(f'{key}[{i}]', item, default[0], source) for i, item in enumerate(value)]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f'{where}{key} must be true or false, got {value!r}')
        return value
    if isinstance(default, float):
        if isinstance(value, str):
            value = _parse_float(value)  # YAML 1.1 reads '1e-4' (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{where}{key} must be a number, got {type(value).__name__} {value!r}')
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{where}{key} must be an integer, got {type(value).__name__} {value!r}')
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f'{where}{key} must be a string, got {type(value).__name__} {value!r}')
        return value
    raise ConfigError(f'{where}{key}: unsupported default type {type(default).__name__}')


def _parse_float(text):
    try:
        return float(text)
    except ValueError:
        return text


def resolve_path(value):
    """'' stays ''; a relative path resolves against the project root; '~' expands."""
    if value == '':
        return value
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else PROJECT_ROOT / path)


def _merge(overrides, into, source, prefix=''):
    if not isinstance(overrides, dict):
        raise ConfigError(f'{source}: {prefix or "the top level"} must be a mapping of keys to values')
    for key, value in overrides.items():
        dotted = f'{prefix}{key}'
        if key not in into:
            raise ConfigError(f'{source}: unknown config key {dotted!r}{_did_you_mean(dotted)}')
        if isinstance(into[key], dict):
            _merge(value, into[key], source, dotted + '.')
            continue
        value = _coerce(dotted, value, into[key], source)
        if dotted in PATH_KEYS:
            value = [resolve_path(v) for v in value] if isinstance(value, list) else resolve_path(value)
        into[key] = value


def dotted_keys(c, prefix=''):
    """Every leaf key of a config, dotted ('TRAIN.LEARNING_RATE')."""
    keys = []
    for key, value in c.items():
        keys += dotted_keys(value, f'{prefix}{key}.') if isinstance(value, dict) else [f'{prefix}{key}']
    return keys


def _did_you_mean(dotted):
    """' (did you mean A?)' with the known key(s) nearest to a misspelt one, or '': the key
    in other letter case, else a key of another section with the same last name, else the
    closest by spelling."""
    dotted = dotted.upper()

    def score(key):
        if key == dotted:
            return 2.0
        if key.split('.')[-1] == dotted.split('.')[-1]:
            return 1.0
        return difflib.SequenceMatcher(None, dotted, key).ratio()
    scores = {key: score(key) for key in dotted_keys(default_config())}
    best = max(scores.values())
    close = sorted((key for key, score in scores.items() if score >= max(0.75, best - 0.05)),
                   key=lambda key: -scores[key])[:3]
    return f' (did you mean {" or ".join(close)}?)' if close else ''


def _get(c, dotted):
    for part in dotted.split('.'):
        c = c[part]
    return c


def validate(c, source=''):
    """Check the values that have a restricted range; raise ConfigError naming the key."""
    where = f'{source}: ' if source else ''
    for key, allowed in CHOICES.items():
        if _get(c, key) not in allowed:
            raise ConfigError(f'{where}{key} is {_get(c, key)!r}, expected one of {list(allowed)}')
    for key in POSITIVE_INTS:
        if _get(c, key) <= 0:
            raise ConfigError(f'{where}{key} must be positive, got {_get(c, key)}')
    for key in SIZE_KEYS:
        size = _get(c, key)
        if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
            raise ConfigError(f'{where}{key} must be [width, height] with positive integers, got {size}')
    n_models = len(c.TEST.MODEL)
    for key in ('TEST.MODEL_WEIGHT', 'TEST.MULTI_LEVEL', 'TEST.RESTORE_FROM'):
        if c.TEST.MODE == 'single' and len(_get(c, key)) != n_models:
            raise ConfigError(f'{where}{key} has {len(_get(c, key))} entries, TEST.MODEL has {n_models}')
    if c.NUM_WORKERS < 0:
        raise ConfigError(f'{where}NUM_WORKERS must be >= 0, got {c.NUM_WORKERS}')
    if c.GPU_ID < -1:
        raise ConfigError(f'{where}GPU_ID must be a GPU index or -1 (the CPU), got {c.GPU_ID}')


def _packaged_config_hint(filename):
    """' (did you mean configs/NAME?)' when a packaged config has the missing file's name: the
    original's commands ran from inside its script folders with a bare file name."""
    packaged = PROJECT_ROOT / 'configs' / Path(filename).name
    if not packaged.is_file():
        return ''
    shown = os.path.relpath(packaged) if Path(os.path.relpath(packaged)).parts[0] != '..' else packaged
    return f' (did you mean {shown}?)'


def load_yaml(filename):
    """Read a YAML mapping with the safe loader; errors name the file."""
    try:
        with open(filename) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f'config file {filename} does not exist{_packaged_config_hint(filename)}') from None
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f'{filename}: not a valid safe YAML file ({first})') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f'{filename}: expected a mapping of config keys at the top level')
    return data


def merge_from_file(filename, into):
    """Merge the YAML file `filename` into the config `into` (strictly) and validate it."""
    _merge(load_yaml(filename), into, str(filename))
    validate(into, str(filename))
    return into


def cfg_from_file(filename):
    """The original entry point: merge `filename` into the global `cfg`."""
    merge_from_file(filename, cfg)


def load_config(filename=None):
    """A fresh config: defaults, merged with `filename` when given."""
    c = default_config()
    if filename is not None:
        merge_from_file(filename, c)
    return c


def to_plain(c):
    """Plain dicts, lists and scalars (numpy arrays become lists), e.g. for YAML or JSON."""
    if isinstance(c, dict):
        return {k: to_plain(v) for k, v in c.items()}
    if isinstance(c, (list, tuple)):
        return [to_plain(v) for v in c]
    if isinstance(c, np.ndarray):
        return c.tolist()
    if isinstance(c, np.generic):
        return c.item()
    return c


def dump_yaml(c):
    return yaml.safe_dump(to_plain(c), default_flow_style=False, sort_keys=False)


def experiment_name(c, exp_suffix=''):
    name = c.EXP_NAME or f'{c.SOURCE}2{c.TARGET}_{c.TRAIN.MODEL}_{c.TRAIN.DA_METHOD}'
    return f'{name}_{exp_suffix}' if exp_suffix else name


def finalize_paths(c, exp_suffix=''):
    """Fill in the derived defaults: EXP_NAME, the snapshot folders, the pseudo-label folder."""
    c.EXP_NAME = experiment_name(c, exp_suffix)
    if c.EXP_NAME in ('.', '..') or any(sep in c.EXP_NAME for sep in ('/', '\\', '\0')):
        # the name becomes a folder under EXP_ROOT_SNAPSHOT: it must not lead elsewhere
        raise ConfigError(f'EXP_NAME (with --exp-suffix) {c.EXP_NAME!r} must be a plain folder name, '
                          f'without path separators or "..": it names a folder under EXP_ROOT_SNAPSHOT')
    if c.TRAIN.SNAPSHOT_DIR == '':
        c.TRAIN.SNAPSHOT_DIR = str(Path(c.EXP_ROOT_SNAPSHOT) / c.EXP_NAME)
    if c.TEST.SNAPSHOT_DIR[0] == '':
        c.TEST.SNAPSHOT_DIR[0] = str(Path(c.EXP_ROOT_SNAPSHOT) / c.EXP_NAME)
    # Stage 1 evaluates on DATA_LIST_TARGET's val list, as the original did, unless the
    # config names TEST.DATA_LIST_TARGET; stage 3 (target = the hard split) always uses the latter.
    if c.TARGET not in STAGE3_TARGETS and c.TEST.DATA_LIST_TARGET == default_config().TEST.DATA_LIST_TARGET:
        c.TEST.DATA_LIST_TARGET = c.DATA_LIST_TARGET
    if c.DATA_DIRECTORY_PSEUDO_LABELS == '':
        c.DATA_DIRECTORY_PSEUDO_LABELS = str(Path(c.DATA_LIST_SOURCE).parent / 'color_masks')
    return c


def clone(c):
    return copy.deepcopy(c)


def get_device(c):
    """cuda:GPU_ID when a GPU is present and GPU_ID is not -1, else the CPU."""
    from advent.utils.distributed import device_for_rank
    return device_for_rank(c.GPU_ID)
