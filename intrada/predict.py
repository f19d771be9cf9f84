"""Prediction on any images with a trained model or a weighted ensemble.

    python -m intrada.predict --cfg configs/intrada_trained.yml my_photos/ --out-dir predictions/
    python -m intrada.predict --checkpoint a.pth b.pth --weight 0.5 0.5 'shots/*.jpg' --out-dir predictions/
    python -m intrada.predict --checkpoint experiments/snapshots/RUN/model_N.pth my_photos/ --out-dir predictions/

(also installed as `intrada-predict`). The models, their weights, IMG_MEAN and the input size
come from a config's TEST section (TEST.RESTORE_FROM, TEST.MODEL, TEST.MULTI_LEVEL,
TEST.MODEL_WEIGHT, TEST.IMG_MEAN, TEST.INPUT_SIZE_TARGET); what --cfg does not set comes from
the train_cfg.yml beside the checkpoint, else the defaults (intrada.predict_settings); flags
override them all. Several checkpoints are an ensemble as in the evaluation: sum of weight * main output;
without --weight, checkpoints given by --checkpoint weigh equally (1/n each).

IMAGES: folders (their image files, subfolders included), glob patterns (quoted), list files
(.txt or .lst: one path a line, relative to the list file's folder) or image files. Each
image, of any size, is preprocessed as the datasets do (bicubic to the input size, BGR minus
the mean); the scores are upsampled back to the image's own size. Under the output folder, at
the image's path relative to the inputs' common folder, four PNGs at the image's size:
<stem>_trainIds.png (argmax train ids), <stem>_color.png (palette), <stem>_entropy.png (the
normalised entropy as a heat map: black certain, yellow uncertain), <stem>_overlay.png.

The scores are upsampled, arg-maxed and turned into entropy in bands of rows, and the four
pictures made one after another, so that memory stays bounded for photos of any size (see
docs/predict.md). An image above --max-pixels (default 150 MP) is refused
from its header, before it is decoded (a decompression bomb, or a photo too large for the
machine).

Files that cannot be read or are refused are skipped and named at the end, one line each
(exit status 1); the others are written. An output that exists is kept unless --overwrite.
"""
import argparse
import glob
import itertools
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils import data

from advent.cli import OneLineParser, run_guarded
from advent.dataset.base_dataset import image_size_of, image_to_array, open_image, preprocess_image
from advent.dataset.loader import worker_count
from advent.domain_adaptation.config import get_device
from advent.domain_adaptation.inference import load_segmenters, segment
from advent.errors import UserError
from advent.model.deeplabv2 import MODEL_VARIANTS
from advent.utils.precision import numeric_settings
from advent.utils.progress import progress_bar
from advent.utils.serialization import ImageWriter, StateDictMismatch, check_writable_dir, save_image
from advent.utils.viz_segmask import prediction_images
from intrada.predict_settings import prediction_config, weights_mismatch

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm')
LIST_EXTENSIONS = ('.txt', '.lst')
OUTPUT_KINDS = ('trainIds', 'color', 'entropy', 'overlay')
MAX_PIXELS = 150_000_000   # a 108 MP phone photo passes; PIL itself refuses from 179 MP
PENDING_PIXELS = 100_000_000   # pixels of the images whose outputs wait to be written
CHECKPOINT_EXTENSIONS = ('.pth', '.pt')


class PredictionError(UserError, ValueError):
    pass


def find_images(inputs, exclude=None):
    """The image files that folders, glob patterns, list files and files name, in order,
    each once; files under `exclude` (the output folder) are left out."""
    files = []
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.rglob('*') if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            what = f'folder {spec}'
        elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            try:
                lines = [line.strip() for line in path.read_text().splitlines()]
            except UnicodeDecodeError:
                raise PredictionError(f'list file {spec} is not a text file') from None
            found = [path.parent / line for line in lines if line]
            what = f'list file {spec}'
        elif path.is_file():
            found = [path]
        elif glob.has_magic(spec):
            found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            what = f'pattern {spec!r}'
        else:
            raise PredictionError(f'input {spec} does not exist (expected a folder, a glob pattern, a list file '
                                  f'or an image)')
        if exclude is not None:
            found = [p for p in found if not _inside(p, exclude)]
        if not found:
            raise PredictionError(f'{what} holds no image files ({", ".join(IMAGE_EXTENSIONS)})')
        files += found
    unique = {os.path.abspath(p): Path(p) for p in files}
    return list(unique.values())


def _inside(path, folder):
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def output_bases(files, out_dir):
    """Per image, its outputs' path without the '_<kind>.png' ending: its path relative to the
    inputs' common folder, under out_dir, without its extension (kept where two images
    would otherwise share a name, as a.png and a.jpg)."""
    absolute = [Path(os.path.abspath(f)) for f in files]
    root = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    relative = [p.relative_to(root) for p in absolute]
    stems = [r.with_suffix('') for r in relative]
    shared = {s for s in stems if stems.count(s) > 1}
    return [Path(out_dir) / (r if s in shared else s) for r, s in zip(relative, stems)]


def output_path(base, kind):
    return base.parent / f'{base.name}_{kind}.png'


@contextmanager
def pil_pixel_limit(limit):
    """PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS: a warning above it, an error
    above twice it) set to `limit` inside the block."""
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_pixels(file, max_pixels):
    """Refuse, from its header alone, an image with more than max_pixels pixels."""
    with pil_pixel_limit(None):   # the check is ours: one line naming the file and the flag, no warning
        width, height = image_size_of(file, 'image')
    if width * height > max_pixels:
        raise PredictionError(f'image {file} is {width}x{height} ({width * height / 1e6:.1f} MP), above the limit '
                              f'of {max_pixels / 1e6:g} MP; --max-pixels raises it (nothing written for it)')


class ImageFiles(data.Dataset):
    """Items (index, network input or None, RGB photo (H, W, 3) or None, error or None): a file
    that cannot be read, or has more than max_pixels pixels, is an item with its one-line
    reason, not an exception."""

    def __init__(self, files, input_size, mean, max_pixels=MAX_PIXELS):
        self.files, self.input_size, self.mean, self.max_pixels = files, tuple(input_size), mean, max_pixels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        file = self.files[index]
        try:
            check_pixels(file, self.max_pixels)
            with pil_pixel_limit(self.max_pixels):   # PIL agrees: the images we accept decode without warnings
                photo = open_image(file, 'image')
            ImageOps.exif_transpose(photo, in_place=True)
            if photo.mode != 'RGB':   # converting an RGB image would only copy it
                photo = photo.convert('RGB')
            network_input = preprocess_image(image_to_array(photo, self.input_size, Image.BICUBIC), self.mean)
        except UserError as e:
            return index, None, None, str(e)
        except Exception as e:  # noqa: BLE001 - whatever a file does wrong, the others go on
            return index, None, None, f'image {file} cannot be used ({type(e).__name__}: {e})'
        return index, torch.from_numpy(network_input.copy()), np.asarray(photo), None


def save_prediction(photo, prediction, entropy, base, overwrite, colours=None):
    """The four PNGs of one image, each atomic, made and written one at a time; an existing
    one is kept unless `overwrite`."""
    images = itertools.chain([('trainIds', Image.fromarray(prediction))],
                             prediction_images(photo, prediction, entropy, colours=colours))
    for kind, image in images:
        path = output_path(base, kind)
        if overwrite or not path.exists():
            save_image(image, path)
        del image   # before the next picture is made (a 96 MP RGB picture is 288 MB)


def predict_files(models, weights, files, bases, input_size, mean, device, batch_size=1, num_workers=0,
                  overwrite=False, colours=None, max_pixels=MAX_PIXELS):
    """Predict `files` and write their outputs (output_bases), colour masks in `colours` (a class
    file's palette; default the Cityscapes one). Returns (written, skipped, failures): image
    counts and one line per file that could not be read or was refused."""
    todo = [i for i, base in enumerate(bases)
            if overwrite or not all(output_path(base, kind).exists() for kind in OUTPUT_KINDS)]
    loader = data.DataLoader(ImageFiles([files[i] for i in todo], input_size, mean, max_pixels),
                             batch_size=batch_size, num_workers=worker_count(num_workers), collate_fn=list)
    failures, written = [], 0
    with ImageWriter(max_pending_pixels=PENDING_PIXELS) as writer:
        for batch in progress_bar(loader, desc='predicting (batches)'):
            good = [item for item in batch if item[3] is None]
            failures += [item[3] for item in batch if item[3] is not None]
            if good:
                images = torch.stack([item[1] for item in good]).to(device)
                sizes = [(photo.shape[1], photo.shape[0]) for _, _, photo, _ in good]
                for (index, _, photo, _), (prediction, entropy) in zip(good, segment(models, weights, images, sizes)):
                    writer.submit(save_prediction, photo, prediction.cpu().numpy(), entropy.cpu().numpy(),
                                  bases[todo[index]], overwrite, colours, pixels=prediction.numel())
                written += len(good)
    return written, len(files) - len(todo), failures


def choose_device(spec, cfg):
    if spec == 'auto':
        return get_device(cfg)  # the config's GPU_ID, as every other script
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise PredictionError(f'--device {spec!r}: expected auto, cpu, cuda or cuda:N') from None
    if device.type == 'cuda' and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise PredictionError(f'--device {spec}: no such CUDA GPU here')
    return device


def _per_model(values, n, flag):
    values = list(values)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise PredictionError(f'{flag}: {len(values)} values for {n} checkpoints')
    return values


def resolve_ensemble(args, cfg):
    """(checkpoints, model names, multi-level flags, weights) from the flags and the config."""
    checkpoints = args.checkpoint or [p for p in cfg.TEST.RESTORE_FROM if p]
    if not checkpoints:
        raise PredictionError('no checkpoint: pass --checkpoint, or --cfg with a config whose TEST.RESTORE_FROM '
                              'names one')
    n = len(checkpoints)
    names = _per_model(args.model or cfg.TEST.MODEL, n, '--model' if args.model else 'TEST.MODEL')
    multi = cfg.TEST.MULTI_LEVEL if len(cfg.TEST.MULTI_LEVEL) == n else cfg.TEST.MULTI_LEVEL[:1]
    multi = _per_model(multi, n, 'TEST.MULTI_LEVEL')
    if args.weight:
        weights = _per_model(args.weight, n, '--weight')
    elif not args.checkpoint and len(cfg.TEST.MODEL_WEIGHT) == n:
        weights = list(cfg.TEST.MODEL_WEIGHT)
    else:
        weights = [1.0 / n] * n
    return checkpoints, names, multi, weights


def run(args):
    """The command: returns the failure lines (empty when every image was written)."""
    cfg, colours, settings = prediction_config(args)
    input_size = cfg.TEST.INPUT_SIZE_TARGET if args.input_size is None else args.input_size
    batch_size = cfg.TEST.BATCH_SIZE_TARGET if args.batch_size is None else args.batch_size
    if args.num_workers is None:
        num_workers = cfg.NUM_WORKERS if args.cfg else 0
    else:
        num_workers = args.num_workers
    for flag, value, least in (('--input-size', min(input_size), 1), ('--batch-size', batch_size, 1),
                               ('--num-workers', num_workers, 0), ('--max-pixels', args.max_pixels, 1)):
        if value < least:
            raise PredictionError(f'{flag} must be at least {least}, got {value}')
    checkpoints, names, multi, weights = resolve_ensemble(args, cfg)
    files = find_images(args.images, exclude=args.out_dir)
    check_writable_dir(args.out_dir, '--out-dir')
    device = choose_device(args.device, cfg)
    for line in settings:
        print(line, flush=True)
    try:
        models = load_segmenters(names, multi, checkpoints, cfg.NUM_CLASSES, device)
    except StateDictMismatch as e:
        raise weights_mismatch(e) from None
    print(f'{len(files)} images; {" + ".join(f"{w:g} x {c}" for w, c in zip(weights, checkpoints))} on {device}, '
          f'input size {input_size[0]}x{input_size[1]}', flush=True)
    with numeric_settings(cfg.ALLOW_TF32):  # strict fp32 by default, as evaluation and ranking
        written, skipped, failures = predict_files(models, weights, files, output_bases(files, args.out_dir),
                                                   input_size, cfg.TEST.IMG_MEAN, device, batch_size, num_workers,
                                                   args.overwrite, colours, args.max_pixels)
    print(f'{written} images predicted into {args.out_dir}'
          + (f'; {skipped} skipped, their outputs exist (--overwrite replaces them)' if skipped else ''))
    for line in failures:
        print(f'error: {line}', file=sys.stderr)
    if failures:
        print(f'{len(failures)} of {len(files)} images failed', file=sys.stderr)
    return failures


def pixel_count(text):
    """A pixel count such as 150000000 or 1.5e8."""
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f'expected a number of pixels such as 1.5e8, got {text!r}') from None


def get_arguments(argv=None):
    parser = OneLineParser(prog='python -m intrada.predict',
                           description='Segment any images with a trained model or an ensemble; writes train ids, '
                                       'colour, entropy and overlay PNGs at each image\'s size')
    parser.add_argument('images', nargs='*', help='folders, glob patterns, list files (.txt, .lst) or images')
    parser.add_argument('--out-dir', '--out_dir', '--out', dest='out_dir', required=True, help='output folder')
    parser.add_argument('--cfg', default=None, help='YAML config: its TEST section gives the models and settings')
    parser.add_argument('--checkpoint', nargs='+', default=None, help='checkpoint(s) (default: TEST.RESTORE_FROM)')
    parser.add_argument('--weight', nargs='+', type=float, default=None,
                        help='ensemble weights, one per checkpoint (default: TEST.MODEL_WEIGHT, or equal)')
    parser.add_argument('--model', nargs='+', default=None,
                        help=f'model variant(s): {", ".join(MODEL_VARIANTS)} (default: TEST.MODEL of --cfg, else '
                             f'TRAIN.MODEL of the train_cfg.yml beside the checkpoint, else DeepLabv2)')
    parser.add_argument('--input-size', '--input_size', dest='input_size', nargs=2, type=int, default=None,
                        metavar=('WIDTH', 'HEIGHT'), help='what the network sees (default: TEST.INPUT_SIZE_TARGET)')
    parser.add_argument('--batch-size', '--batch_size', dest='batch_size', type=int, default=None,
                        help='images per forward pass (default: TEST.BATCH_SIZE_TARGET)')
    parser.add_argument('--num-workers', '--num_workers', dest='num_workers', type=int, default=None,
                        help='image-loading processes (default: NUM_WORKERS with --cfg, else 0)')
    parser.add_argument('--device', default='auto', help='auto (a GPU when there is one), cpu, cuda or cuda:N')
    parser.add_argument('--overwrite', action='store_true', help='replace outputs that exist')
    parser.add_argument('--max-pixels', '--max_pixels', dest='max_pixels', type=pixel_count, default=MAX_PIXELS,
                        help=f'refuse images with more pixels, checked before decoding (default {MAX_PIXELS:.3g})')
    parser.add_argument('--debug', action='store_true', help='show the full traceback on errors')
    args = parser.parse_args(argv)
    # `--checkpoint model_N.pth my_photos/` : the inputs that follow the checkpoints are inputs
    while args.checkpoint and not args.checkpoint[-1].endswith(CHECKPOINT_EXTENSIONS):
        args.images.insert(0, args.checkpoint.pop())
    if not args.images:
        parser.error('the following arguments are required: images')
    return args


def main(argv=None):
    args = get_arguments(argv)
    outcome = {}
    status = run_guarded(lambda a: outcome.update(failures=run(a)), args)
    return status or (1 if outcome['failures'] else 0)


if __name__ == '__main__':
    sys.exit(main())
