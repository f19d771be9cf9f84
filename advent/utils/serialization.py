"""Files the project reads and writes: checkpoints, JSON, YAML, images.

Every writer is atomic (a temporary file in the same folder, then a rename), so a
crash leaves either the previous file or the complete new one, never half of it.
Checkpoints load with ``weights_only=True``: a file that needs arbitrary pickled
objects is refused instead of executed.
"""
import collections
import contextlib
import json
import os
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from advent.errors import UserError

IMAGENET_INIT_TAG = 'DeepLab_resnet_pretrained_imagenet'


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be used for the model at hand."""


class StateDictMismatch(CheckpointError):
    """A state dict whose keys or shapes are those of another model (variant or class count)."""


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; keep the usual permissions
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


_UMASK_LOCK = threading.Lock()  # os.umask can only be read by setting it: one thread at a time


def _current_umask():
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def check_writable_dir(path, what='output folder'):
    """Fail early, and without creating anything, when `path` cannot become a writable folder:
    probe the folder, or its nearest existing parent, with a temporary file."""
    path = Path(path)
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f'{what} {path}: {existing} is not a folder')
    try:
        fd, probe = tempfile.mkstemp(prefix='.write-probe.', suffix='.tmp', dir=existing)
    except OSError as e:
        raise UserError(f'{what} {path}: cannot write in {existing} ({e.strerror or e})') from None
    os.close(fd)
    os.unlink(probe)


def atomic_write_text(path, text):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def json_load(path):
    with open(path) as f:
        return json.load(f)


def json_dump(obj, path):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + '\n')


def save_image(image, path):
    """Save a PIL image atomically; the format comes from `path`'s extension."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format=_pil_format(path))


def _pil_format(path):
    ext = path.suffix.lower()
    return {'.png': 'PNG', '.jpg': 'JPEG', '.jpeg': 'JPEG'}.get(ext, 'PNG')


class ImageWriter:
    """Saves images on a few threads, each save atomic (save_image), so that encoding PNGs
    does not hold up the device. At most `max_pending` saves wait, and, with
    `max_pending_pixels`, saves of at most that many pixels in all (`submit`'s `pixels`; one
    save always may), so that large images do not pile up in memory; the first failure is
    raised by `submit` or on leaving the `with` block, which waits for every save."""

    def __init__(self, workers=None, max_pending=32, max_pending_pixels=None):
        self.pool = ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1), thread_name_prefix='png-writer')
        self.max_pending, self.max_pending_pixels = max_pending, max_pending_pixels
        self.pending = collections.deque()   # (future, pixels)

    def submit(self, fn, *args, pixels=0):
        def full():
            waiting = sum(p for _, p in self.pending) + pixels
            return len(self.pending) >= self.max_pending or (self.max_pending_pixels is not None
                                                             and waiting > self.max_pending_pixels)
        while self.pending and full():
            self.pending.popleft()[0].result()
        self.pending.append((self.pool.submit(fn, *args), pixels))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            while self.pending:
                future, _ = self.pending.popleft()
                if exc_type is None:
                    future.result()
                else:
                    future.cancel()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        return False


def save_checkpoint(obj, path):
    """torch.save to `path` atomically (a plain state dict stays loadable by the original code)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def missing_checkpoint_message(path):
    """'checkpoint <path> does not exist', with where to get it when it is one of the released files."""
    path = Path(path)
    message = f'checkpoint {path} does not exist'
    if path.parent.name == 'pretrained_models' or IMAGENET_INIT_TAG in path.name:
        message += '; where to get it: pretrained_models/README.md'
    return message


def load_checkpoint(path):
    """Load a checkpoint with weights_only=True; any failure names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(missing_checkpoint_message(path))
    try:
        with warnings.catch_warnings():  # e.g. about the pickle protocol of old files: the error says enough
            warnings.simplefilter('ignore')
            return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f'cannot load checkpoint {path} safely (weights_only=True): {_load_failure(e)}') from None


def _load_failure(error):
    """The informative line of a torch.load error."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if lines[0].startswith('Weights only load failed'):
        details = [line for line in lines[1:]
                   if not line.startswith(('Please file an issue', 'Check the documentation'))]
        return ('it is corrupt or holds more than tensors and plain containers'
                + (f' ({details[0]})' if details else ''))
    return lines[0]


def convert_imagenet_init(state_dict):
    """The ImageNet-initialised DeepLab release: strip one leading key component
    (e.g. 'Scale.') and drop its classifier (layer5), so both heads keep their fresh init."""
    converted = {}
    for key, value in state_dict.items():
        parts = key.split('.')
        if len(parts) > 1 and parts[1] == 'layer5':
            continue
        converted['.'.join(parts[1:])] = value
    return converted


def check_state_dict(model, state_dict, path, may_miss=lambda key: False):
    """Raise CheckpointError naming the first key that is missing, unexpected or of another shape."""
    if not isinstance(state_dict, dict) or not all(torch.is_tensor(v) for v in state_dict.values()):
        raise CheckpointError(f'checkpoint {path} is not a state dict of tensors')
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state_dict:
            if may_miss(key):
                continue
            raise StateDictMismatch(f'checkpoint {path}: missing key {key!r} (shape {tuple(tensor.shape)})')
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            raise StateDictMismatch(
                f'checkpoint {path}: key {key!r} has shape {tuple(state_dict[key].shape)}, the model expects '
                f'{tuple(tensor.shape)} (another class count or model variant?)')
    for key in state_dict:
        if key not in expected:
            raise StateDictMismatch(f'checkpoint {path}: unexpected key {key!r} for this model')


def _imagenet_may_miss(key):
    return key.split('.')[0] in ('layer5', 'layer6') or key.endswith('num_batches_tracked')


def load_model_weights(model, path):
    """Load `path` into `model`: a plain state dict, or the ImageNet-init release
    (recognised by 'DeepLab_resnet_pretrained_imagenet' in its file name)."""
    state_dict = load_checkpoint(path)
    if IMAGENET_INIT_TAG in Path(path).name:
        if not isinstance(state_dict, dict):
            raise CheckpointError(f'checkpoint {path} is not a state dict of tensors')
        state_dict = convert_imagenet_init(state_dict)
        # Keys the release lacks (the heads, BatchNorm counters of old PyTorch) keep the model's values.
        check_state_dict(model, state_dict, path, may_miss=_imagenet_may_miss)
        merged = model.state_dict()
        merged.update(state_dict)
        model.load_state_dict(merged)
    else:
        check_state_dict(model, state_dict, path)
        model.load_state_dict(state_dict)
    return model
