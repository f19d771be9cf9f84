"""What every dataset shares: the list file, image and label loading, preprocessing.

An item is (image, label, shape, name): image float32 CHW in BGR order minus the
mean, resized with BICUBIC to `image_size` (width, height); label resized with
NEAREST to `labels_size` (default: the image size); shape = image.shape; name as
in the list file.
"""
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils import data

from advent.errors import UserError
from advent.utils.serialization import json_load

LABEL_MODES = ('L', 'P', 'I', 'I;16')


# Ends the errors of a missing dataset: where each dataset comes from and where it goes.
WHERE_TO_GET = "where to get it: docs/reproducing.md, section 'Data and weights'"


class DatasetError(UserError, ValueError):
    """A dataset folder, list file, image or label that cannot be used."""


def read_list_file(list_path):
    """Names in a list file: one a line; blank lines and CRLF endings are fine;
    duplicates and names that leave the dataset folder are refused."""
    return [entry[0] for entry in read_list_entries(list_path)]


def read_list_entries(list_path, max_fields=None):
    """The entries of a list file, each a tuple of its fields: the whole line as one name
    (max_fields None) or up to `max_fields` whitespace-separated paths (the DeepLab list
    format, `IMAGE [LABEL]`). Blank lines and CRLF endings are fine; a repeated first field
    and paths that leave the dataset folder are refused, naming the file and line."""
    path = Path(list_path)
    if not path.is_file():
        raise DatasetError(f'list file {path} does not exist')
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise DatasetError(f'list file {path} is not a text file') from None
    entries, seen = [], set()
    for number, line in enumerate(lines, 1):
        fields = (line.strip(),) if max_fields is None else tuple(line.split())
        if not fields or not fields[0]:
            continue
        if max_fields is not None and len(fields) > max_fields:
            raise DatasetError(f'{path}:{number}: {len(fields)} fields {line.strip()!r}, expected IMAGE or '
                               f'IMAGE LABEL (paths relative to the dataset folder, without spaces)')
        for name in fields:
            pure = PurePosixPath(name.replace('\\', '/'))
            if pure.is_absolute() or '..' in pure.parts:
                raise DatasetError(f'{path}:{number}: name {name!r} leaves the dataset folder '
                                   f'(expected a relative path such as city/city_000000_000019_leftImg8bit.png)')
        if fields[0] in seen:
            raise DatasetError(f'{path}:{number}: duplicate name {fields[0]!r}')
        seen.add(fields[0])
        entries.append(fields)
    if not entries:
        raise DatasetError(f'list file {path} holds no names')
    return entries


def open_image(file, what='image'):
    """A decoded PIL image; a missing or unreadable file is a DatasetError naming it."""
    try:
        img = Image.open(file)
        img.load()
    except FileNotFoundError:
        raise DatasetError(f'{what} {file} does not exist') from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(f'{what} {file} is not a readable image ({e})') from None
    return img


def load_image(file, size, interpolation, rgb):
    """Open, convert and resize like the original: returns float32 (H, W[, 3])."""
    img = open_image(file, 'image' if rgb else 'label')
    if rgb:
        img = img.convert('RGB')
    elif img.mode not in LABEL_MODES:
        raise DatasetError(f'label {file} has mode {img.mode}, expected a single-channel id image '
                           f'(one of {", ".join(LABEL_MODES)})')
    return image_to_array(img, size, interpolation)


def image_to_array(img, size, interpolation):
    """A PIL image resized to `size` (width, height) as float32 (H, W[, 3])."""
    return np.asarray(img.resize(tuple(size), interpolation), np.float32)


def preprocess_image(image, mean):
    """Float32 RGB (H, W, 3) -> the network input: BGR minus `mean`, (3, H, W). Modifies `image`."""
    image = image[:, :, ::-1]  # RGB -> BGR
    image -= mean
    return image.transpose((2, 0, 1))


def image_to_rgb(image, mean):
    """The inverse of preprocess_image: a network input (3, H, W) -> RGB uint8 (H, W, 3)."""
    bgr = np.asarray(image).transpose(1, 2, 0) + np.asarray(mean, np.float32)
    return np.clip(np.rint(bgr[:, :, ::-1]), 0, 255).astype(np.uint8)


def image_size_of(file, what):
    """(width, height) from the header of an image file."""
    try:
        with Image.open(file) as img:
            return img.size
    except FileNotFoundError:
        raise DatasetError(f'{what} {file} does not exist') from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(f'{what} {file} is not a readable image ({e})') from None


class BaseDataset(data.Dataset):
    # Shown after a missing-path error; subclasses describe their folder layout.
    LAYOUT = ''
    # Whether a label must have its image's exact size (Cityscapes gtFine). Not checked for
    # GTA5 (a few real image/label size mismatches, resized as the original did) nor for
    # pseudo-labels (stage 2 writes them at the training input size, of any shape).
    LABEL_SIZE_MUST_MATCH = False
    # The ids a label file of this dataset may hold (None: get_train_ids checks them), and
    # how to name them in a message; the loader maps unknown ids to 255, intrada.check reports them.
    LABEL_IDS = None
    LABEL_IDS_TEXT = ''
    # True when every list item has a label (the canonical datasets; a folder dataset's
    # items may lack one, SPEC 11).
    labelled = True

    def __init__(self, root, list_path, set_, max_iters, image_size, labels_size, mean):
        self.root = Path(root)
        self.set = set_
        self.list_path = str(list_path).format(self.set)
        self.image_size = tuple(image_size)
        self.labels_size = self.image_size if labels_size is None else tuple(labels_size)
        self.mean = mean
        if not self.root.is_dir():
            raise DatasetError(f'dataset folder {self.root} does not exist; expected {self.LAYOUT}; {WHERE_TO_GET}')
        if next(self.root.iterdir(), None) is None:
            raise DatasetError(f'dataset folder {self.root} is empty; expected {self.LAYOUT}; {WHERE_TO_GET}')
        self.img_ids = self.read_names()
        if max_iters is not None:
            self.img_ids = self.img_ids * int(np.ceil(float(max_iters) / len(self.img_ids)))
        # The list may repeat (max_iters); look each name up once.
        metadata = {name: self.get_metadata(name) for name in dict.fromkeys(self.img_ids)}
        self.files = [(*metadata[name], name) for name in self.img_ids]
        missing = [img_file for img_file, _ in metadata.values() if not Path(img_file).is_file()]
        if missing:
            raise DatasetError(f'image {missing[0]} (listed in {self.list_path}) does not exist '
                               f'({len(missing)} of the {len(metadata)} listed images are missing); '
                               f'expected {self.LAYOUT}; {WHERE_TO_GET}')

    def read_names(self):
        return read_list_file(self.list_path)

    def get_metadata(self, name):
        raise NotImplementedError

    def __len__(self):
        return len(self.files)

    def preprocess(self, image):
        return preprocess_image(image, self.mean)

    def get_image(self, file):
        return load_image(file, self.image_size, Image.BICUBIC, rgb=True)

    def get_labels(self, file):
        return load_image(file, self.labels_size, Image.NEAREST, rgb=False)

    def __getitem__(self, index):
        img_file, label_file, name = self.files[index]
        label = self.get_train_ids(label_file)
        image = self.preprocess(self.get_image(img_file))
        if self.LABEL_SIZE_MUST_MATCH and label_file is not None and getattr(self, 'load_labels', True):
            self.check_label_size(img_file, label_file)
        return image.copy(), label, np.array(image.shape), name

    def check_label_size(self, img_file, label_file):
        """Refuse a label that cannot belong to its image."""
        iw, ih = image_size_of(img_file, 'image')
        lw, lh = image_size_of(label_file, 'label')
        if (lw, lh) != (iw, ih):
            raise DatasetError(f'label {label_file} is {lw}x{lh}, its image {img_file} is {iw}x{ih}: '
                               f'expected the same size')

    def get_train_ids(self, label_file):
        """The label map of one item in train ids (255 = ignore)."""
        raise NotImplementedError


class SyntheticSourceDataset(BaseDataset):
    """A labelled synthetic source (GTA5, SYNTHIA): every list entry has an image and a label
    of the dataset's own ids, which TO_TRAIN_ID maps to train ids."""
    TO_TRAIN_ID = {}

    def __init__(self, root, list_path, set='all', max_iters=None, crop_size=(321, 321), mean=(128, 128, 128)):
        super().__init__(root, list_path, set, max_iters, crop_size, None, mean)
        self.map_labels = IdMapper(self.TO_TRAIN_ID.items())

    def get_train_ids(self, label_file):
        # float32 labels, as the original returned them
        return self.map_labels(self.get_labels(label_file)).astype(np.float32)


def read_json_file(path, description):
    """A JSON file's content; a missing or broken file is a DatasetError starting with `description`."""
    try:
        return json_load(path)
    except FileNotFoundError:
        raise DatasetError(f'{description} does not exist') from None
    except ValueError as e:
        raise DatasetError(f'{description} is not valid JSON ({e})') from None


def check_train_ids(ids, label_file, num_classes, what):
    """`ids` (a label map read as train ids), refused when a value is not a class or 255."""
    bad = (ids != 255) & ((ids < 0) | (ids >= num_classes))
    if bad.any():
        raise DatasetError(f'{what} {label_file} holds the value {int(ids[bad][0])}: expected train ids '
                           f'0..{num_classes - 1} or 255 (ignore)')
    return ids


class PseudoLabels:
    """Mixin of the stage-3 sources (listed before their dataset class): the labels are stage
    2's pseudo-labels, 8-bit train ids of the dataset's classes, checked as they are read."""

    def get_train_ids(self, label_file):
        return check_train_ids(self.get_labels(label_file).astype(np.int64), label_file, len(self.class_names),
                               'pseudo-label')


class IdMapper:
    """Maps dataset label ids to train ids; ids the table does not list become 255."""

    def __init__(self, pairs):
        pairs = [(int(a), int(b)) for a, b in pairs if int(a) >= 0]
        self.table = np.full(max(a for a, _ in pairs) + 1, 255, dtype=np.int64)
        for source_id, train_id in pairs:
            self.table[source_id] = 255 if train_id < 0 else train_id

    def __call__(self, label):
        ids = label.astype(np.int64)
        known = (ids >= 0) & (ids < len(self.table))
        out = np.full(ids.shape, 255, dtype=np.int64)
        out[known] = self.table[ids[known]]
        return out
