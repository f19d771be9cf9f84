"""advent.dataset: GTA5, Cityscapes (with and without labels, pseudo-labelled) and SYNTHIA,
on tiny trees written here in the real on-disk formats."""
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from advent.dataset.base_dataset import DatasetError, IdMapper, read_list_file
from advent.dataset.cityscapes import CityscapesDataSet, CityscapesPseudoDataSet
from advent.dataset.gta5 import GTA5DataSet
from advent.dataset.synthia import SYNTHIADataSet
from advent.domain_adaptation.config import DATASET_DIR

from conftest import IMG_MEAN

# The published tables (SPEC section 6).
GTA_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
SYNTHIA_TO_TRAIN = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 9, 10: 10, 17: 11, 8: 12,
                    19: 13, 12: 14, 11: 15}
CLASS_NAMES = ['road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'light', 'sign', 'vegetation',
               'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motocycle', 'bicycle']


def expected_train_ids(ids, table):
    ids = np.asarray(ids, np.int64)
    out = np.full(ids.shape, 255, np.int64)
    for k, v in table.items():
        out[ids == k] = v
    return out


def rgb_image(h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def save(path, arr, mode=None):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr)
    if mode is not None:
        img = img.convert(mode)
    img.save(path)
    return path


def save_palette_label(path, ids):
    """An 8-bit mode 'P' label (as the GTA5 release ships them) whose indices are the ids."""
    img = Image.fromarray(np.asarray(ids, np.uint8), mode='L').convert('P')
    img.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    with Image.open(path) as back:
        assert back.mode == 'P'
    return path


def write_list(path, names, newline='\n'):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', newline='') as f:
        f.write(''.join(n + newline for n in names))
    return path


def manual_image(path, size, mean=IMG_MEAN):
    """What an item's image must be: PIL RGB, BICUBIC to size, float32, RGB -> BGR, minus mean, CHW."""
    with Image.open(path) as img:
        img = img.convert('RGB').resize(size, Image.BICUBIC)
    arr = np.asarray(img, np.float32)[:, :, ::-1] - np.asarray(mean, np.float32)
    return arr.transpose(2, 0, 1)


ALL_IDS = np.arange(256, dtype=np.uint8).reshape(16, 16)


# ---------------------------------------------------------------- GTA5

@pytest.fixture
def gta_tree(tmp_path):
    root = tmp_path / 'GTA5'
    names = ['00001.png', '00002.png', '00003.png']
    save(root / 'images' / names[0], rgb_image(16, 16, 0))
    save(root / 'labels' / names[0], ALL_IDS, 'L')
    save(root / 'images' / names[1], rgb_image(16, 16, 1))
    save_palette_label(root / 'labels' / names[1], ALL_IDS[::-1])
    save(root / 'images' / names[2], rgb_image(30, 40, 2))  # another size
    lab = np.random.default_rng(3).choice(list(GTA_TO_TRAIN) + [0, 4, 34, 200], size=(30, 40)).astype(np.uint8)
    save_palette_label(root / 'labels' / names[2], lab)
    lst = write_list(tmp_path / 'gta5_list' / 'all.txt', names)
    return root, lst, names, lab


def test_gta5_every_id_mapping(gta_tree):
    root, lst, names, _ = gta_tree
    ds = GTA5DataSet(str(root), str(lst), crop_size=(16, 16), mean=IMG_MEAN)
    for i, ids in ((0, ALL_IDS), (1, ALL_IDS[::-1])):  # mode 'L', then mode 'P'
        image, label, shape, name = ds[i]
        assert name == names[i]
        assert label.dtype == np.float32  # as the original returned GTA5 labels
        np.testing.assert_array_equal(label.astype(np.int64), expected_train_ids(ids, GTA_TO_TRAIN))
    # the full table: each of the 256 ids exactly once
    label = ds[0][1]
    assert sorted(set(label.ravel().astype(int))) == list(range(19)) + [255]
    assert int((label != 255).sum()) == 19


def test_gta5_item_image_and_resize(gta_tree):
    root, lst, names, lab = gta_tree
    size = (29, 17)  # (width, height), downsizing 40x30 with an odd aspect
    ds = GTA5DataSet(str(root), str(lst), set='all', crop_size=size, mean=IMG_MEAN)
    item = ds[2]
    assert isinstance(item, tuple) and len(item) == 4
    image, label, shape, name = item
    assert name == names[2]
    assert image.dtype == np.float32 and image.shape == (3, 17, 29)
    np.testing.assert_allclose(image, manual_image(root / 'images' / names[2], size), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(shape), [3, 17, 29])
    with Image.open(root / 'labels' / names[2]) as raw:
        raw = np.asarray(raw.resize(size, Image.NEAREST))
    assert label.shape == (17, 29)
    np.testing.assert_array_equal(label, expected_train_ids(raw, GTA_TO_TRAIN))


def test_gta5_bgr_order(gta_tree, tmp_path):
    # a pure red image: after RGB -> BGR the red value is the LAST channel
    root, lst, names, _ = gta_tree
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 200
    save(root / 'images' / names[0], red)
    ds = GTA5DataSet(str(root), str(lst), crop_size=(16, 16), mean=(0.0, 0.0, 0.0))
    image = ds[0][0]
    assert np.allclose(image[2], 200) and np.allclose(image[0], 0) and np.allclose(image[1], 0)
    ds = GTA5DataSet(str(root), str(lst), crop_size=(16, 16), mean=(10.0, 20.0, 30.0))
    image = ds[0][0]
    assert np.allclose(image[0], -10) and np.allclose(image[1], -20) and np.allclose(image[2], 170)


def test_gta5_max_iters_repeats(gta_tree):
    root, lst, names, _ = gta_tree
    assert len(GTA5DataSet(str(root), str(lst), crop_size=(8, 8))) == 3
    ds = GTA5DataSet(str(root), str(lst), max_iters=7, crop_size=(8, 8))
    assert len(ds) == 9  # ceil(7 / 3) = 3 repetitions
    assert [ds[i][3] for i in range(len(ds))] == names * 3
    assert len(GTA5DataSet(str(root), str(lst), max_iters=3, crop_size=(8, 8))) == 3
    assert len(GTA5DataSet(str(root), str(lst), max_iters=1, crop_size=(8, 8))) == 3


def test_dataloader_collates_items(gta_tree):
    root, lst, names, _ = gta_tree
    ds = GTA5DataSet(str(root), str(lst), crop_size=(12, 10), mean=IMG_MEAN)
    image, label, shape, name = next(iter(torch.utils.data.DataLoader(ds, batch_size=2, shuffle=False)))
    assert tuple(image.shape) == (2, 3, 10, 12) and image.dtype == torch.float32
    assert tuple(label.shape) == (2, 10, 12)
    assert tuple(shape.shape) == (2, 3)
    assert list(name) == names[:2]


# ---------------------------------------------------------------- Cityscapes

CS_TRAIN = ['aachen/aachen_000000_000019_leftImg8bit.png', 'bochum/bochum_000000_000313_leftImg8bit.png']
CS_VAL = ['frankfurt/frankfurt_000000_000294_leftImg8bit.png', 'lindau/lindau_000000_000019_leftImg8bit.png']


@pytest.fixture
def cs_tree(tmp_path):
    root = tmp_path / 'Cityscapes'
    labels = {}
    for split, names in (('train', CS_TRAIN), ('val', CS_VAL)):
        for k, n in enumerate(names):
            save(root / 'leftImg8bit' / split / n, rgb_image(24, 40, zlib.crc32(n.encode())))
            if k == 0:
                ids = np.zeros((24, 40), np.uint8)
                ids.ravel()[:256] = np.arange(256)  # every 8-bit id, incl. 34 and ids > 33
            else:
                ids = np.random.default_rng(k).integers(0, 40, size=(24, 40)).astype(np.uint8)
            labels[n] = ids
            save(root / 'gtFine' / split / n.replace('leftImg8bit', 'gtFine_labelIds'), ids, 'L')
    lists = tmp_path / 'cityscapes_list'
    write_list(lists / 'train.txt', CS_TRAIN)
    write_list(lists / 'val.txt', CS_VAL)
    return root, lists, labels


def _info_table(info_path=DATASET_DIR / 'cityscapes_list' / 'info.json'):
    with open(info_path) as f:
        info = json.load(f)
    return {a: (255 if b < 0 else b) for a, b in info['label2train'] if a >= 0}


def test_packaged_info_json_is_the_published_table():
    table = _info_table()
    for i in range(34):
        assert table[i] == GTA_TO_TRAIN.get(i, 255), i
    with open(DATASET_DIR / 'cityscapes_list' / 'info.json') as f:
        info = json.load(f)
    assert info['label'] == CLASS_NAMES
    assert [-1, 255] in info['label2train']


def test_cityscapes_every_id_mapping(cs_tree):
    root, lists, labels = cs_tree
    ds = CityscapesDataSet(str(root), str(lists / '{}.txt'), set='val', crop_size=(40, 24), mean=IMG_MEAN)
    assert len(ds) == 2
    image, label, shape, name = ds[0]
    assert name == CS_VAL[0]
    ids = labels[CS_VAL[0]].astype(np.int64)
    expected = expected_train_ids(ids, GTA_TO_TRAIN)  # ids > 33 (and 34) -> 255
    np.testing.assert_array_equal(np.asarray(label, np.int64), expected)
    assert np.all(np.asarray(label)[ids > 33] == 255)
    assert [str(c) for c in ds.class_names] == CLASS_NAMES
    np.testing.assert_allclose(image, manual_image(root / 'leftImg8bit' / 'val' / CS_VAL[0], (40, 24)), atol=1e-4)


def test_cityscapes_mapping_comes_from_info_json(cs_tree, tmp_path):
    root, lists, labels = cs_tree
    with open(DATASET_DIR / 'cityscapes_list' / 'info.json') as f:
        info = json.load(f)
    info['label2train'] = [[7, 3], [8, -1], [40, 1], [-1, 255]]
    info_path = tmp_path / 'my_info.json'
    info_path.write_text(json.dumps(info))
    ds = CityscapesDataSet(str(root), str(lists / '{}.txt'), set='val', crop_size=(40, 24), info_path=str(info_path))
    label = np.asarray(ds[0][1])
    ids = labels[CS_VAL[0]]
    np.testing.assert_array_equal(label, expected_train_ids(ids, {7: 3, 40: 1}))


def test_id_mapper_negative_and_large_ids():
    m = IdMapper([[7, 0], [8, 1], [9, -1], [-1, 255]])
    out = m(np.array([-1, 7, 8, 9, 10, 300, 70000]))
    np.testing.assert_array_equal(out, [255, 0, 1, 255, 255, 255, 255])


def test_cityscapes_labels_size_nearest(cs_tree):
    root, lists, labels = cs_tree
    ds = CityscapesDataSet(str(root), str(lists / 'val.txt'), set='val', crop_size=(20, 12), mean=IMG_MEAN,
                           labels_size=(57, 31))
    image, label, shape, name = ds[1]
    assert image.shape == (3, 12, 20)
    np.testing.assert_array_equal(np.asarray(shape), [3, 12, 20])
    assert label.shape == (31, 57)
    with Image.open(root / 'gtFine' / 'val' / CS_VAL[1].replace('leftImg8bit', 'gtFine_labelIds')) as raw:
        raw = np.asarray(raw.resize((57, 31), Image.NEAREST))
    np.testing.assert_array_equal(np.asarray(label, np.int64), expected_train_ids(raw, GTA_TO_TRAIN))


def test_cityscapes_without_labels_needs_no_gtfine(cs_tree):
    root, lists, _ = cs_tree
    import shutil
    shutil.rmtree(root / 'gtFine')
    ds = CityscapesDataSet(str(root), str(lists / '{}.txt'), set='train', crop_size=(20, 12), mean=IMG_MEAN,
                           load_labels=False)
    assert len(ds) == 2
    for i in range(2):
        image, label, shape, name = ds[i]
        assert name == CS_TRAIN[i]
        assert image.shape == (3, 12, 20)
        assert np.asarray(label).shape == (12, 20) and np.all(np.asarray(label) == 255)
    ds = CityscapesDataSet(str(root), str(lists / '{}.txt'), set='train', crop_size=(20, 12), load_labels=False,
                           labels_size=(9, 5))
    assert np.asarray(ds[0][1]).shape == (5, 9)
    # with labels requested, the missing file is an error naming it
    ds = CityscapesDataSet(str(root), str(lists / '{}.txt'), set='train', crop_size=(20, 12))
    with pytest.raises(DatasetError, match='gtFine_labelIds'):
        ds[0]


def test_cityscapes_pseudo_dataset(cs_tree, tmp_path):
    root, lists, _ = cs_tree
    pseudo = tmp_path / 'color_masks'
    pseudo_labels = {}
    for k, n in enumerate(CS_TRAIN):
        lab = np.random.default_rng(10 + k).choice(list(range(19)) + [255], size=(12, 20)).astype(np.uint8)
        pseudo_labels[n] = lab
        save(pseudo / Path(n).name, lab, 'L')
    ds = CityscapesPseudoDataSet(str(root), str(lists / '{}.txt'), str(pseudo), set='train', crop_size=(20, 12),
                                 mean=IMG_MEAN)
    assert len(ds) == 2
    for i, n in enumerate(CS_TRAIN):
        image, label, shape, name = ds[i]
        assert name == n
        np.testing.assert_array_equal(np.asarray(label, np.int64), pseudo_labels[n].astype(np.int64))
        np.testing.assert_allclose(image, manual_image(root / 'leftImg8bit' / 'train' / n, (20, 12)), atol=1e-4)
    # nearest-resized like any label
    ds = CityscapesPseudoDataSet(str(root), str(lists / 'train.txt'), str(pseudo), crop_size=(20, 12),
                                 labels_size=(7, 5))
    expected = np.asarray(Image.fromarray(pseudo_labels[CS_TRAIN[1]]).resize((7, 5), Image.NEAREST))
    np.testing.assert_array_equal(np.asarray(ds[1][1], np.int64), expected.astype(np.int64))
    # a missing pseudo-label is named
    (pseudo / Path(CS_TRAIN[1]).name).unlink()
    with pytest.raises(DatasetError) as e:
        CityscapesPseudoDataSet(str(root), str(lists / 'train.txt'), str(pseudo), crop_size=(20, 12))
    assert str(pseudo / Path(CS_TRAIN[1]).name) in str(e.value)
    with pytest.raises(DatasetError) as e:
        CityscapesPseudoDataSet(str(root), str(lists / 'train.txt'), str(tmp_path / 'nope'), crop_size=(20, 12))
    assert str(tmp_path / 'nope') in str(e.value)


# ---------------------------------------------------------------- SYNTHIA

def save_synthia_label(path, class_ids, other=None):
    """16-bit 3-channel PNG whose first PNG channel (R; index 2 of OpenCV's BGR) holds the class id."""
    h, w = class_ids.shape
    arr = np.zeros((h, w, 3), np.uint16)
    arr[..., 2] = class_ids
    if other is None:
        other = (1000 + np.arange(h * w).reshape(h, w)) % 65536
    arr[..., 1] = other           # instance ids, > 255 (like the real release)
    arr[..., 0] = 300 + arr[..., 2] * 7
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, arr)
    return path


@pytest.fixture
def synthia_tree(tmp_path):
    root = tmp_path / 'SYNTHIA'
    names = ['0000000.png', '0000001.png']
    ids0 = np.zeros((4, 10), np.uint16)
    ids0.ravel()[:26] = np.arange(26)            # every SYNTHIA id 0..25
    ids0.ravel()[26:30] = [256 + 3, 259 + 256, 1000, 65535]  # > 255: must not wrap to 8 bits
    ids1 = np.random.default_rng(5).choice(list(SYNTHIA_TO_TRAIN) + [0, 13, 22], size=(24, 40)).astype(np.uint16)
    save(root / 'RGB' / names[0], rgb_image(4, 10, 7))
    save_synthia_label(root / 'GT' / 'LABELS' / names[0], ids0)
    save(root / 'RGB' / names[1], rgb_image(24, 40, 8))
    save_synthia_label(root / 'GT' / 'LABELS' / names[1], ids1)
    lst = write_list(tmp_path / 'synthia_list' / 'all.txt', names)
    return root, lst, names, (ids0, ids1)


def test_synthia_every_id_mapping_first_channel(synthia_tree):
    root, lst, names, (ids0, _) = synthia_tree
    ds = SYNTHIADataSet(str(root), str(lst), crop_size=(10, 4), mean=IMG_MEAN)
    image, label, shape, name = ds[0]
    assert name == names[0]
    expected = expected_train_ids(ids0, SYNTHIA_TO_TRAIN)
    np.testing.assert_array_equal(np.asarray(label, np.int64), expected)
    assert sorted(set(np.asarray(label).ravel().astype(int))) == list(range(16)) + [255]
    # ids 259, 515, ... in the first channel are not 3 modulo 256
    assert np.all(np.asarray(label).ravel()[26:30] == 255)
    np.testing.assert_allclose(image, manual_image(root / 'RGB' / names[0], (10, 4)), atol=1e-4)


def test_synthia_labels_nearest_resized(synthia_tree):
    root, lst, names, (_, ids1) = synthia_tree
    ds = SYNTHIADataSet(str(root), str(lst), crop_size=(17, 9), mean=IMG_MEAN)
    image, label, shape, name = ds[1]
    assert image.shape == (3, 9, 17) and np.asarray(label).shape == (9, 17)
    raw = np.asarray(Image.fromarray(ids1.astype(np.int32), mode='I').resize((17, 9), Image.NEAREST))
    raw8 = np.asarray(Image.fromarray(ids1.astype(np.uint8)).resize((17, 9), Image.NEAREST))
    np.testing.assert_array_equal(raw, raw8)  # the same nearest sampling at any bit depth
    np.testing.assert_array_equal(np.asarray(label, np.int64), expected_train_ids(raw, SYNTHIA_TO_TRAIN))


# ---------------------------------------------------------------- list files and errors

def test_list_file_blank_lines_and_crlf(tmp_path):
    names = ['a/x_leftImg8bit.png', 'b/y_leftImg8bit.png', 'c/z_leftImg8bit.png']
    p = tmp_path / 'l.txt'
    p.write_bytes(b'a/x_leftImg8bit.png\r\n\r\nb/y_leftImg8bit.png\r\n   \r\nc/z_leftImg8bit.png')
    assert read_list_file(p) == names


def test_dataset_reads_crlf_list(gta_tree, tmp_path):
    root, _, names, _ = gta_tree
    lst = write_list(tmp_path / 'crlf.txt', [names[0], '', names[1], ''], newline='\r\n')
    ds = GTA5DataSet(str(root), str(lst), crop_size=(8, 8))
    assert [ds[i][3] for i in range(len(ds))] == names[:2]


@pytest.mark.parametrize('lines,what', [
    (['a.png', 'b.png', 'a.png'], 'duplicate'),
    (['a.png', '../x.png'], '../x.png'),
    (['sub/../../x.png'], 'leaves'),
    (['/etc/passwd'], '/etc/passwd'),
    (['', '  '], 'no names'),
])
def test_list_file_refused(tmp_path, lines, what):
    p = write_list(tmp_path / 'bad.txt', lines)
    with pytest.raises(DatasetError) as e:
        read_list_file(p)
    assert what in str(e.value)


def test_dataset_refuses_bad_list(gta_tree, tmp_path):
    root, _, names, _ = gta_tree
    with pytest.raises(DatasetError, match='duplicate'):
        GTA5DataSet(str(root), str(write_list(tmp_path / 'dup.txt', [names[0], names[0]])))
    # images/../x.png exists, so only the refusal of '..' can stop it
    save(root / 'x.png', rgb_image(16, 16, 9))
    with pytest.raises(DatasetError, match=r'\.\./x\.png'):
        GTA5DataSet(str(root), str(write_list(tmp_path / 'up.txt', [names[0], '../x.png'])))


def test_missing_root(tmp_path, gta_tree, cs_tree):
    _, gta_list, _, _ = gta_tree
    _, cs_lists, _ = cs_tree
    missing = tmp_path / 'does_not_exist'
    for make in (lambda: GTA5DataSet(str(missing), str(gta_list)),
                 lambda: CityscapesDataSet(str(missing), str(cs_lists / 'val.txt')),
                 lambda: SYNTHIADataSet(str(missing), str(gta_list))):
        with pytest.raises(DatasetError) as e:
            make()
        assert str(missing) in str(e.value)


def test_missing_list_file(gta_tree, tmp_path):
    root, _, _, _ = gta_tree
    lst = tmp_path / 'nolist' / 'all.txt'
    with pytest.raises(DatasetError) as e:
        GTA5DataSet(str(root), str(lst))
    assert str(lst) in str(e.value)
    with pytest.raises(DatasetError) as e:
        GTA5DataSet(str(root), str(tmp_path / 'nolist' / '{}.txt'), set='all')
    assert str(lst) in str(e.value)  # the set name is substituted before the error


def test_missing_image(gta_tree, cs_tree, synthia_tree):
    root, lst, names, _ = gta_tree
    (root / 'images' / names[1]).unlink()
    with pytest.raises(DatasetError) as e:
        GTA5DataSet(str(root), str(lst))
    assert str(root / 'images' / names[1]) in str(e.value)

    croot, lists, _ = cs_tree
    img = croot / 'leftImg8bit' / 'val' / CS_VAL[1]
    img.unlink()
    with pytest.raises(DatasetError) as e:
        CityscapesDataSet(str(croot), str(lists / 'val.txt'), set='val')
    assert str(img) in str(e.value)

    sroot, slst, snames, _ = synthia_tree
    (sroot / 'RGB' / snames[0]).unlink()
    with pytest.raises(DatasetError) as e:
        SYNTHIADataSet(str(sroot), str(slst))
    assert str(sroot / 'RGB' / snames[0]) in str(e.value)


def test_missing_label_is_named(gta_tree):
    root, lst, names, _ = gta_tree
    (root / 'labels' / names[0]).unlink()
    ds = GTA5DataSet(str(root), str(lst), crop_size=(8, 8))
    with pytest.raises(DatasetError) as e:
        ds[0]
    assert str(root / 'labels' / names[0]) in str(e.value)


def test_packaged_list_files():
    assert len(read_list_file(DATASET_DIR / 'cityscapes_list' / 'train.txt')) == 2975
    assert len(read_list_file(DATASET_DIR / 'cityscapes_list' / 'val.txt')) == 500
    assert len(read_list_file(DATASET_DIR / 'gta5_list' / 'all.txt')) == 24966


def test_loader_workers_are_capped_at_the_usable_cores_with_one_note(monkeypatch, capsys, recwarn):
    from advent.dataset import loader
    monkeypatch.setattr(loader, 'usable_cores', lambda: 2)
    monkeypatch.setattr(loader, '_capped', set())
    assert loader.worker_count(0) == 0 and loader.worker_count(2) == 2
    assert capsys.readouterr().out == ''
    train = loader.build_train_loader(list(range(4)), 1, 4, seed=0)
    assert train.num_workers == 2
    assert loader.worker_count(4) == 2   # announced once per process
    printed = capsys.readouterr().out.splitlines()
    assert printed == ['note: 4 data-loading workers asked for (NUM_WORKERS), 2 used: the CPU cores this '
                       'process may use']
    assert len(list(train)) == 4   # PyTorch's check runs when iteration starts
    assert not [w for w in recwarn if 'worker' in str(w.message)]


def test_usable_cores_is_the_process_affinity():
    from advent.dataset.loader import usable_cores
    import os
    assert usable_cores() == len(os.sched_getaffinity(0)) >= 1
