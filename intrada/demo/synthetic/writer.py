"""The on-disk writer: the synthetic GTA5 and Cityscapes trees, their list files and the
manifest, written so that an interrupted or changed tree is detected and redone."""
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from intrada.demo.synthetic.conditions import HARD_CONDITIONS
from intrada.demo.synthetic.labels import CLASS_NAMES, train_ids_to_label_ids
from intrada.demo.synthetic.scene import render_scene

GENERATOR_VERSION = 1


TRAIN_CITIES = ('aachen', 'bochum', 'bremen', 'cologne', 'darmstadt', 'dusseldorf', 'erfurt', 'hamburg',
                'hanover', 'jena', 'krefeld', 'monchengladbach', 'strasbourg', 'stuttgart', 'tubingen',
                'ulm', 'weimar', 'zurich')
VAL_CITIES = ('frankfurt', 'lindau', 'munster')


def _params(seed, n_source, n_target_train, n_target_val, size, hard_fraction):
    return {'version': GENERATOR_VERSION, 'seed': int(seed), 'size': [int(size[0]), int(size[1])],
            'n_source': int(n_source), 'n_target_train': int(n_target_train), 'n_target_val': int(n_target_val),
            'hard_fraction': float(hard_fraction)}


def _cityscapes_names(cities, n):
    names = []
    per_city = max(1, math.ceil(n / len(cities)))
    for i in range(n):
        city = cities[min(i // per_city, len(cities) - 1)]
        seq = i - (i // per_city) * per_city
        names.append(f'{city}/{city}_{seq:06d}_{19:06d}_leftImg8bit.png')
    return names


def _conditions(seed, split_index, n, hard_fraction):
    rng = np.random.default_rng([seed, 100 + split_index])
    n_hard = int(round(hard_fraction * n))
    conds = ['normal'] * n
    order = rng.permutation(n)[:n_hard]
    hard = [HARD_CONDITIONS[j % len(HARD_CONDITIONS)] for j in range(n_hard)]
    rng.shuffle(hard)
    for i, c in zip(order, hard):
        conds[int(i)] = c
    return conds


def _plan(out, params):
    """Every file of the tree: (domain index, image index, domain, condition, image path, label path)."""
    seed = params['seed']
    jobs = []
    gta = out / 'GTA5'
    src_names = [f'{i + 1:05d}.png' for i in range(params['n_source'])]
    for i, name in enumerate(src_names):
        jobs.append((0, i, 'source', 'normal', gta / 'images' / name, gta / 'labels' / name))
    cs = out / 'Cityscapes'
    splits = {}
    for split_index, (split, cities, n) in enumerate((('train', TRAIN_CITIES, params['n_target_train']),
                                                      ('val', VAL_CITIES, params['n_target_val']))):
        names = _cityscapes_names(cities, n)
        conds = _conditions(seed, split_index, n, params['hard_fraction'])
        splits[split] = (names, conds)
        for i, (name, cond) in enumerate(zip(names, conds)):
            # train labels too: the method never reads them; the demo measures pseudo-labels against them
            label = cs / 'gtFine' / split / name.replace('leftImg8bit', 'gtFine_labelIds')
            jobs.append((1 + split_index, i, 'target', cond, cs / 'leftImg8bit' / split / name, label))
    return jobs, src_names, splits


def _render_job(job, seed, size):
    dom_index, i, domain, cond, img_path, label_path = job
    rng = np.random.default_rng([seed, dom_index, i])
    rgb, train_ids = render_scene(rng, domain, cond, size)
    img_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, 'RGB').save(img_path, compress_level=1)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(train_ids_to_label_ids(train_ids), 'L').save(label_path, compress_level=1)
    return cond


def _render_chunk(args):
    jobs, seed, size = args
    for job in jobs:
        _render_job(job, seed, size)
    return len(jobs)


_IN_PROGRESS = '.synthetic_in_progress'


def _write_text_atomic(path, text):
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    tmp.write_text(text)
    os.replace(tmp, path)


def _result(out, params, skipped, seconds, manifest):
    gta, cs = out / 'GTA5', out / 'Cityscapes'
    return {
        'root': str(out),
        'source_root': str(gta), 'source_list': str(gta / '{}.txt'), 'source_list_all': str(gta / 'all.txt'),
        'target_root': str(cs), 'target_list': str(cs / '{}.txt'),
        'target_train_list': str(cs / 'train.txt'), 'target_val_list': str(cs / 'val.txt'),
        'manifest': str(out / 'manifest.json'),
        'counts': {'source': params['n_source'], 'target_train': params['n_target_train'],
                   'target_val': params['n_target_val'],
                   'target_train_hard': sum(v['hard'] for v in manifest['target_train'].values()),
                   'target_val_hard': sum(v['hard'] for v in manifest['target_val'].values())},
        'params': params, 'skipped': skipped, 'seconds': seconds,
    }


def _complete(out, params):
    """The manifest of a finished tree with these parameters, or None."""
    try:
        manifest = json.loads((out / 'manifest.json').read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get('params') != params:
        return None
    jobs, src_names, splits = _plan(out, params)
    lists = {out / 'GTA5' / 'all.txt': src_names,
             out / 'Cityscapes' / 'train.txt': splits['train'][0],
             out / 'Cityscapes' / 'val.txt': splits['val'][0]}
    for path, names in lists.items():
        try:
            if path.read_text().split() != names:
                return None
        except OSError:
            return None
    for job in jobs:
        if not job[4].is_file() or not job[5].is_file():
            return None
    return manifest


def generate_benchmark(out_dir, seed=0, n_source=600, n_target_train=400, n_target_val=300, size=(128, 64),
                       hard_fraction=0.35, workers=1, verbose=False):
    """Writes (or finds) the synthetic GTA5 / Cityscapes trees under out_dir; returns a dict
    with the roots ('source_root', 'target_root'), the list files ('source_list' and
    'target_list' as '{}' patterns for the configs, 'source_list_all', 'target_train_list',
    'target_val_list'), 'manifest', 'counts', 'params', 'skipped' (True when a complete tree
    with the same parameters was already there) and 'seconds'.
    workers > 1 renders with that many processes (the bytes do not depend on it)."""
    t0 = time.time()
    if not 0.0 <= hard_fraction <= 1.0:
        raise ValueError(f'hard_fraction must lie in [0, 1], got {hard_fraction}')
    if min(n_source, n_target_train, n_target_val) < 1:
        raise ValueError('every split needs at least one image')
    out = Path(out_dir).resolve()
    params = _params(seed, n_source, n_target_train, n_target_val, size, hard_fraction)
    manifest = _complete(out, params)
    if manifest is not None:
        return _result(out, params, True, time.time() - t0, manifest)

    out.mkdir(parents=True, exist_ok=True)
    old_manifest = out / 'manifest.json'
    marker = out / _IN_PROGRESS
    if not old_manifest.exists() and not marker.exists():
        foreign = [d for d in (out / 'GTA5', out / 'Cityscapes') if d.is_dir() and any(d.iterdir())]
        if foreign:
            raise ValueError(f'{foreign[0]} exists and is not a synthetic tree (no manifest.json): '
                             f'refusing to write into it; choose an empty folder')
    marker.write_text('generation in progress; the tree is complete when manifest.json exists\n')
    old_lists = [out / 'GTA5' / 'all.txt', out / 'Cityscapes' / 'train.txt', out / 'Cityscapes' / 'val.txt']
    stale = set()
    if old_manifest.exists():  # a tree of ours with other parameters: forget it first
        for lst, base in zip(old_lists, (('GTA5/images', 'GTA5/labels'),
                                         ('Cityscapes/leftImg8bit/train', 'Cityscapes/gtFine/train'),
                                         ('Cityscapes/leftImg8bit/val', 'Cityscapes/gtFine/val'))):
            try:
                names = lst.read_text().split()
            except OSError:
                continue
            for b in base:
                for name in names:
                    if '/gtFine/' in b:
                        name = name.replace('leftImg8bit', 'gtFine_labelIds')
                    stale.add(out / b / name)
        old_manifest.unlink()
    jobs, src_names, splits = _plan(out, params)
    keep = {j[4] for j in jobs} | {j[5] for j in jobs}
    for path in stale - keep:
        try:
            path.unlink()
        except OSError:
            pass

    size = tuple(params['size'])
    if workers and workers > 1:
        import multiprocessing as mp
        chunks = [(jobs[i::workers * 4], seed, size) for i in range(workers * 4)]
        with mp.get_context('fork' if sys.platform.startswith('linux') else 'spawn').Pool(workers) as pool:
            done = sum(pool.map(_render_chunk, chunks))
        assert done == len(jobs)
    else:
        for n, job in enumerate(jobs):
            _render_job(job, seed, size)
            if verbose and (n + 1) % 200 == 0:
                print(f'  {n + 1}/{len(jobs)} images', flush=True)

    (out / 'GTA5').mkdir(parents=True, exist_ok=True)
    _write_text_atomic(out / 'GTA5' / 'all.txt', ''.join(n + '\n' for n in src_names))
    for split in ('train', 'val'):
        _write_text_atomic(out / 'Cityscapes' / f'{split}.txt', ''.join(n + '\n' for n in splits[split][0]))
    manifest = dict(params)
    manifest.update({
        'generator': 'intrada.synthetic',  # the module's name when the format was fixed: trees stay byte-equal
        'params': params,
        'classes': list(CLASS_NAMES),
        'hard_conditions': list(HARD_CONDITIONS),
        'source_domain': 'source (game-like: saturated randomised colours, flat shading, aliased edges)',
        'target_domain': 'target (real-like: textures, lighting, colour cast, blur, sensor noise)',
        'counts': {'source': params['n_source'], 'target_train': params['n_target_train'],
                   'target_val': params['n_target_val']},
    })
    for split in ('train', 'val'):
        names, conds = splits[split]
        manifest[f'target_{split}'] = {n: {'hard': c != 'normal', 'condition': c} for n, c in zip(names, conds)}
    _write_text_atomic(out / 'manifest.json', json.dumps(manifest, indent=1, sort_keys=True) + '\n')
    marker.unlink()
    return _result(out, params, False, time.time() - t0, manifest)
