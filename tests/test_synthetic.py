"""The procedural GTA5 -> Cityscapes stand-in (intrada/demo/synthetic/): determinism, on-disk
formats, manifest, class coverage, domain gap, hard conditions, loading through the
library's datasets. Small trees at 128 x 64; a few seconds on two cores."""
import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from intrada.demo import synthetic as syn  # noqa: E402
from intrada.demo.synthetic import cli, labels, writer  # noqa: E402

SIZE = (128, 64)
VALID_IDS = {0} | set(syn.TRAIN_ID_TO_LABEL_ID)
REQUIRED = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'light', 'sign', 'vegetation', 'terrain',
            'sky', 'person', 'rider', 'car', 'bicycle')


def _tree(path, seed=0, **kw):
    args = dict(seed=seed, n_source=6, n_target_train=10, n_target_val=5, size=SIZE, hard_fraction=0.4)
    args.update(kw)
    return syn.generate_benchmark(path, **args)


def _digest(root):
    """name -> sha1 of every file of a tree (manifest included)."""
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp('synthetic') / 'bench'
    return _tree(out)


def _scenes(domain, n, seed=11, condition='normal'):
    return [syn.render_scene(np.random.default_rng([seed, i]), domain, condition, SIZE) for i in range(n)]


# --------------------------------------------------------------------------- determinism

def test_render_scene_is_deterministic():
    a = syn.render_scene(np.random.default_rng([3, 1, 4]), 'target', 'normal', SIZE)
    b = syn.render_scene(np.random.default_rng([3, 1, 4]), 'target', 'normal', SIZE)
    c = syn.render_scene(np.random.default_rng([3, 1, 5]), 'target', 'normal', SIZE)
    assert a[0].shape == (SIZE[1], SIZE[0], 3) and a[0].dtype == np.uint8
    assert a[1].shape == (SIZE[1], SIZE[0]) and a[1].dtype == np.uint8
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_same_seed_same_bytes_other_seed_other_bytes(tree, tmp_path):
    again = _tree(tmp_path / 'again')
    assert not again['skipped']
    first, second = _digest(tree['root']), _digest(again['root'])
    assert first == second
    other = _digest(_tree(tmp_path / 'other', seed=1)['root'])
    assert other.keys() == first.keys()
    images = [k for k in first if k.endswith('.png')]
    assert sum(first[k] != other[k] for k in images) >= len(images) - 1


# Pinned when the renderer was one module, so that reorganising its code cannot change a
# pixel: the tree of the `tree` fixture (both domains, images, labels, lists, manifest;
# night, rain, noise and motion blur among its hard images) and one scene per condition.
TREE_SHA256 = 'e583987a232bafef6099f3a37d8e0147e288df660890730df643388b4b2a56f0'
TRAIN_LABELS_SHA256 = '59efa134585f344e876c3220163d4ba8d27d8d40284370c9bcd84e8911538b63'
SCENE_SHA256 = {
    ('source', 'normal'): 'b3d2b7995f09f8919de1d2d9631e864fbbf1394a9e13e2a426a8d53881be7d55',
    ('target', 'normal'): 'a2a650cc36806bbd0260d0d8347559cee66d193d9ca7193843ed0149fc546d1b',
    ('target', 'night'): '0a9cba1188b6b017bbbfd968a9dda946ffcca61070941ba2d2a5d4d00d205158',
    ('target', 'rain'): 'f666060404e46ae1a0273b96221a31cd8d41a80fa29bd094af155b74382efecb',
    ('target', 'noise'): '3ef37f1badb565b1a70cd4c8d7152729b089b78178d4be0c9fc2164c969af7f4',
    ('target', 'motion_blur'): '1309b587d64c770459928fe876d889bf90dca5c3ff372f3f58edee6db6813625',
    ('target', 'low_contrast'): '89d36dc2cb6ef475f11dc21451ae8eb84850b38397de83c78f5076c3e0042b70',
}


def _content_sha256(root, files):
    """sha256 over the files' relative paths and contents; a PNG counts by its mode, size
    and pixels, so that another zlib or PNG encoder does not read as a change."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode())
        if path.suffix == '.png':
            with Image.open(path) as image:
                digest.update(f'{image.mode} {image.size}'.encode() + image.tobytes())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_rendered_tree_is_pinned(tree):
    root = Path(tree['root'])
    train_labels = root / 'Cityscapes' / 'gtFine' / 'train'
    files = [p for p in root.rglob('*') if p.is_file()]
    # the target-train labels came later: every file before them keeps its bytes
    assert _content_sha256(root, [p for p in files if train_labels not in p.parents]) == TREE_SHA256
    assert _content_sha256(root, [p for p in files if train_labels in p.parents]) == TRAIN_LABELS_SHA256


def test_rendered_scenes_are_pinned():
    got = {}
    for domain, condition in SCENE_SHA256:
        rgb, labels = syn.render_scene(np.random.default_rng([12, 0]), domain, condition, SIZE)
        got[domain, condition] = hashlib.sha256(rgb.tobytes() + labels.tobytes()).hexdigest()
    assert got == SCENE_SHA256


def test_generation_is_skipped_when_complete_and_redone_when_parameters_change(tmp_path):
    out = tmp_path / 'b'
    info = _tree(out, n_source=4, n_target_train=4, n_target_val=3)
    assert not info['skipped']
    assert _tree(out, n_source=4, n_target_train=4, n_target_val=3)['skipped']
    # an incomplete tree (a file lost) is regenerated
    (out / 'GTA5' / 'images' / '00002.png').unlink()
    again = _tree(out, n_source=4, n_target_train=4, n_target_val=3)
    assert not again['skipped'] and (out / 'GTA5' / 'images' / '00002.png').is_file()
    # other parameters: regenerated, files of the old tree that the new one lacks are removed
    smaller = _tree(out, n_source=2, n_target_train=4, n_target_val=3)
    assert not smaller['skipped']
    assert sorted(p.name for p in (out / 'GTA5' / 'images').iterdir()) == ['00001.png', '00002.png']
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['n_source'] == 2 and manifest['params']['n_source'] == 2
    assert not list(out.rglob('*.tmp-*')) and not (out / '.synthetic_in_progress').exists()


def test_refuses_to_write_into_a_foreign_tree(tmp_path):
    (tmp_path / 'GTA5' / 'images').mkdir(parents=True)
    (tmp_path / 'GTA5' / 'images' / '00001.png').write_bytes(b'a real image')
    with pytest.raises(ValueError, match='not a synthetic tree'):
        _tree(tmp_path, n_source=1, n_target_train=1, n_target_val=1)
    assert (tmp_path / 'GTA5' / 'images' / '00001.png').read_bytes() == b'a real image'


# --------------------------------------------------------------------------- formats

def test_on_disk_formats(tree):
    root = Path(tree['root'])
    gta, cs = root / 'GTA5', root / 'Cityscapes'
    assert Path(tree['source_root']) == gta and Path(tree['target_root']) == cs
    assert tree['source_list'] == str(gta / '{}.txt') and tree['target_list'] == str(cs / '{}.txt')
    for img_dir, lab_dir in ((gta / 'images', gta / 'labels'), (cs / 'leftImg8bit' / 'val', cs / 'gtFine' / 'val'),
                             (cs / 'leftImg8bit' / 'train', cs / 'gtFine' / 'train')):
        images = sorted(p for p in img_dir.rglob('*.png'))
        assert images
        for p in images:
            with Image.open(p) as im:
                assert im.mode == 'RGB' and im.size == SIZE
            rel = p.relative_to(img_dir)
            lab_file = lab_dir / str(rel).replace('leftImg8bit', 'gtFine_labelIds')
            with Image.open(lab_file) as lab:
                assert lab.mode in ('L', 'P') and lab.size == SIZE
                ids = set(np.unique(np.asarray(lab)).tolist())
            assert ids <= VALID_IDS, ids - VALID_IDS
            assert len(ids - {0}) >= 4
    # Cityscapes names: CITY/CITY_SSSSSS_FFFFFF_leftImg8bit.png
    for name in (cs / 'train.txt').read_text().split() + (cs / 'val.txt').read_text().split():
        city, file = name.split('/')
        parts = file.split('_')
        assert parts[0] == city and len(parts[1]) == 6 and len(parts[2]) == 6 and file.endswith('_leftImg8bit.png')
    # unlabelled pixels are written (id 0) somewhere: the target ego-vehicle hood
    with Image.open(next((cs / 'gtFine' / 'val').rglob('*.png'))) as lab:
        assert (np.asarray(lab)[-1] == 0).all()


def test_list_files_match_files_on_disk(tree):
    root = Path(tree['root'])
    gta, cs = root / 'GTA5', root / 'Cityscapes'
    listed = (gta / 'all.txt').read_text().split()
    assert listed == [f'{i:05d}.png' for i in range(1, 7)]
    assert sorted(listed) == sorted(p.name for p in (gta / 'images').iterdir())
    assert sorted(listed) == sorted(p.name for p in (gta / 'labels').iterdir())
    for split, n in (('train', 10), ('val', 5)):
        names = (cs / f'{split}.txt').read_text().split()
        assert len(names) == n == len(set(names))
        on_disk = sorted(str(p.relative_to(cs / 'leftImg8bit' / split)) for p in
                         (cs / 'leftImg8bit' / split).rglob('*.png'))
        assert sorted(names) == on_disk
        labels = sorted(str(p.relative_to(cs / 'gtFine' / split)) for p in (cs / 'gtFine' / split).rglob('*.png'))
        assert labels == sorted(n.replace('leftImg8bit', 'gtFine_labelIds') for n in names)
    assert tree['counts']['source'] == 6 and tree['counts']['target_train'] == 10


def test_manifest(tree):
    manifest = json.loads(Path(tree['manifest']).read_text())
    assert manifest['seed'] == 0 and manifest['size'] == list(SIZE)
    names = (Path(tree['target_root']) / 'train.txt').read_text().split()
    assert sorted(manifest['target_train']) == sorted(names)
    entries = manifest['target_train'].values()
    hard = [e for e in entries if e['hard']]
    assert len(hard) == round(0.4 * len(names))
    assert all(e['condition'] in syn.HARD_CONDITIONS for e in hard)
    assert all(e['condition'] == 'normal' for e in entries if not e['hard'])
    assert len({e['condition'] for e in hard}) == len(hard)  # 4 hard images: 4 different conditions
    assert tree['counts']['target_train_hard'] == len(hard)


def test_hard_fraction_default_over_a_large_split():
    conds = writer._conditions(0, 0, 400, 0.35)
    hard = [c for c in conds if c != 'normal']
    assert len(hard) == 140
    counts = {c: hard.count(c) for c in syn.HARD_CONDITIONS}
    assert min(counts.values()) == 28 == max(counts.values())
    assert counts.get('fog') is None


# --------------------------------------------------------------------------- content

def test_every_required_class_appears():
    for domain in syn.DOMAINS:
        seen = set()
        for _, lab in _scenes(domain, 16):
            seen |= set(np.unique(lab).tolist())
        names = {syn.CLASS_NAMES[c] for c in seen if c < 19}
        missing = set(REQUIRED) - names
        assert not missing, (domain, missing)
        assert names & {'truck', 'bus'}, domain


def test_scene_layout_is_a_street():
    for rgb, lab in _scenes('source', 6):
        h = lab.shape[0]
        top, bottom = lab[: h // 5], lab[-h // 4:]
        assert (top == labels.SKY).mean() + np.isin(top, [labels.BUILDING, labels.VEG]).mean() > 0.6
        assert (lab[: h // 3] == labels.ROAD).mean() < 0.02
        assert (bottom == labels.ROAD).mean() > 0.3
        assert (lab[h // 2:] == labels.SKY).mean() < 0.01


def _class_means(scenes, classes):
    means = {}
    for c in classes:
        pix = np.concatenate([rgb[lab == c].astype(np.float64) for rgb, lab in scenes])
        means[c] = pix.mean(0)
    return means


def _saturation(scenes):
    hsv = [cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1][lab != 255] for rgb, lab in scenes]
    return np.concatenate(hsv).mean()


def _high_freq(img):
    g = img.astype(np.float32).mean(2)
    return np.abs(g - cv2.GaussianBlur(g, (0, 0), 1.0)).mean()


def test_domain_gap():
    src, tgt = _scenes('source', 8), _scenes('target', 8)
    classes = (labels.ROAD, labels.SIDEWALK, labels.BUILDING, labels.VEG, labels.SKY, labels.CAR)
    ms, mt = _class_means(src, classes), _class_means(tgt, classes)
    gaps = {syn.CLASS_NAMES[c]: np.linalg.norm(ms[c] - mt[c]) for c in classes}
    assert np.mean(list(gaps.values())) > 40, gaps
    assert min(gaps.values()) > 15, gaps
    assert _saturation(src) > _saturation(tgt) + 30
    # the target is blurred yet noisy and textured; the source has flat colours and hard edges
    flat_src = np.mean([np.median(np.abs(np.diff(rgb.astype(int), axis=1))) for rgb, _ in src])
    flat_tgt = np.mean([np.median(np.abs(np.diff(rgb.astype(int), axis=1))) for rgb, _ in tgt])
    assert flat_src < flat_tgt


def test_hard_conditions_are_darker_flatter_or_noisier():
    def measures(img):
        g = img.astype(np.float32).mean(2)
        local = np.abs(cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), 1.5), cv2.CV_32F)).mean()
        return g.mean(), g.std(), _high_freq(img), local

    for i in range(3):
        rng = lambda: np.random.default_rng([21, i])  # noqa: E731  the same scene under every condition
        normal, lab = syn.render_scene(rng(), 'target', 'normal', SIZE)
        b0, c0, n0, l0 = measures(normal)
        for cond in syn.HARD_CONDITIONS:
            img, lab2 = syn.render_scene(rng(), 'target', cond, SIZE)
            assert np.array_equal(lab, lab2)
            b, c, n, l = measures(img)
            if cond == 'night':
                assert b < 0.5 * b0
            elif cond == 'low_contrast':
                assert c < 0.5 * c0
            elif cond == 'noise':
                assert n > 1.6 * n0
            elif cond == 'motion_blur':
                assert l < 0.9 * l0
            elif cond == 'rain':
                assert b < 0.92 * b0 and c < 0.95 * c0
    with pytest.raises(ValueError):
        syn.render_scene(np.random.default_rng(0), 'target', 'fog', SIZE)


# --------------------------------------------------------------------------- the library reads it

def test_loads_through_the_library_datasets(tree):
    from advent.dataset.cityscapes import CityscapesDataSet
    from advent.dataset.gta5 import GTA5DataSet

    cs = Path(tree['target_root'])
    val = CityscapesDataSet(str(cs), str(cs / '{}.txt'), set='val', crop_size=SIZE)
    assert len(val) == 5
    seen = set()
    for k in range(len(val)):
        image, label, shape, name = val[k]
        assert image.shape == (3, SIZE[1], SIZE[0]) and label.shape == (SIZE[1], SIZE[0])
        values = set(np.unique(label).astype(int).tolist())
        assert values <= set(range(19)) | {255}
        seen |= values
    assert len(seen - {255}) >= 8
    train = CityscapesDataSet(str(cs), tree['target_list'], set='train', crop_size=SIZE, load_labels=False)
    assert len(train) == 10 and (train[0][1] == 255).all()

    gta = GTA5DataSet(tree['source_root'], tree['source_list'], set='all', crop_size=SIZE)
    assert len(gta) == 6
    seen = set()
    for k in range(len(gta)):
        image, label, _, _ = gta[k]
        assert image.shape == (3, SIZE[1], SIZE[0])
        values = set(np.unique(label).astype(int).tolist())
        assert values <= set(range(19)) | {255}
        seen |= values
    assert len(seen - {255}) >= 8


def test_command_line(tmp_path, capsys):
    out = tmp_path / 'cli'
    sheet = tmp_path / 'sheet.png'
    assert cli.main([str(out), '--seed', '3', '--n-source', '2', '--n-target-train', '3', '--n-target-val', '2',
                     '--contact-sheet', str(sheet)]) == 0
    assert '"target_root"' in capsys.readouterr().out
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['seed'] == 3 and len(manifest['target_train']) == 3
    assert (out / 'GTA5' / 'all.txt').read_text().split() == ['00001.png', '00002.png']
    with Image.open(sheet) as im:
        assert im.mode == 'RGB' and im.size[0] > 4 * SIZE[0]
