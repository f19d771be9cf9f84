"""intrada.predict on a tiny folder: images of odd sizes and aspect ratios come back at their
own size; a two-checkpoint ensemble equals the weighted sum computed here; a corrupt file is
named in one line and the good images are still written; a missing checkpoint is one line
and writes nothing; a config's TEST section gives the same result as the flags; existing
outputs are kept unless --overwrite."""
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stage_utils import PROJECT_ROOT, TINY, load_bgr_image, script_env, tiny_model, write_yaml
from test_fast_paths import random_model

INPUT_SIZE = (64, 32)                     # what the network sees (width, height)
IMAGES = {'wide.png': (129, 65), 'sub/tall.png': (23, 37), 'sub/odd.jpg': (50, 81)}   # (width, height)
WEIGHTS = (0.3, 0.7)
KINDS = ('trainIds', 'color', 'entropy', 'overlay')


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp('predict')
    rng = np.random.default_rng(5)
    for name, (w, h) in IMAGES.items():
        (root / 'images' / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(root / 'images' / name)
    (root / 'images' / 'broken.png').write_bytes(b'\x89PNG but not really')
    (root / 'images' / 'notes.md').write_text('not an image: ignored')
    checkpoints = []
    for seed in (1, 2):   # models whose predictions vary over the image and between the two
        checkpoints.append(root / f'model_{seed}.pth')
        torch.save(random_model(seed).state_dict(), checkpoints[-1])
    return root, checkpoints


def flags(checkpoints, out, *extra):
    return ['--checkpoint', *map(str, checkpoints), '--model', TINY, '--input-size', *map(str, INPUT_SIZE),
            '--device', 'cpu', '--out-dir', str(out), *extra]


def main_scores(checkpoint, path, size):
    """One model's main output for an image, upsampled to `size` (width, height)."""
    model = tiny_model(0)
    model.load_state_dict(torch.load(checkpoint, map_location='cpu', weights_only=True))
    model.eval()
    with torch.no_grad():
        scores = model(load_bgr_image(path, INPUT_SIZE))[1]
        return F.interpolate(scores, size=(size[1], size[0]), mode='bilinear', align_corners=True)


def output(out, name, kind):
    stem = name.rsplit('.', 1)[0]
    return out / f'{stem}_{kind}.png'


@pytest.fixture(scope='module')
def ensemble_run(env):
    """The real command on the mixed folder: two checkpoints weighted 0.3 / 0.7, batches of 2."""
    root, checkpoints = env
    out = root / 'out'
    proc = subprocess.run([sys.executable, '-m', 'intrada.predict', str(root / 'images'),
                           *flags(checkpoints, out, '--weight', *map(str, WEIGHTS), '--batch-size', '2')],
                          cwd=str(root), capture_output=True, text=True, timeout=300, env=script_env())
    return proc, out


def test_bad_file_named_in_one_line_and_good_images_written(ensemble_run):
    proc, out = ensemble_run
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'broken.png' in errors[0], proc.stderr[-2000:]
    assert not list(out.glob('broken*')) and not list(out.glob('notes*'))
    for name in IMAGES:
        for kind in KINDS:
            assert output(out, name, kind).is_file(), (name, kind)


def test_outputs_at_each_images_own_size(ensemble_run):
    _, out = ensemble_run
    for name, size in IMAGES.items():
        train_ids = Image.open(output(out, name, 'trainIds'))
        assert train_ids.mode == 'L' and train_ids.size == size
        assert np.asarray(train_ids).max() < 19
        color = Image.open(output(out, name, 'color'))
        assert color.mode == 'P' and color.size == size
        np.testing.assert_array_equal(np.asarray(color), np.asarray(train_ids))
        for kind in ('entropy', 'overlay'):
            image = Image.open(output(out, name, kind))
            assert image.mode == 'RGB' and image.size == size


def test_ensemble_equals_the_weighted_sum(env, ensemble_run):
    root, checkpoints = env
    _, out = ensemble_run
    changed_by_weights = 0
    for name, size in IMAGES.items():
        first, second = (main_scores(c, root / 'images' / name, size) for c in checkpoints)
        expected = WEIGHTS[0] * first + WEIGHTS[1] * second
        written = np.asarray(Image.open(output(out, name, 'trainIds')))
        assert (written == expected.argmax(1)[0].numpy()).mean() > 0.999, name
        assert len(np.unique(written)) >= 3, name
        changed_by_weights += (written != (first + second).argmax(1)[0].numpy()).sum()
        # the entropy map: normalised entropy of the ensemble's softmax, drawn as a heat map
        prob = F.softmax(expected, dim=1)
        entropy = (-(prob * torch.log2(prob + 1e-30)).sum(1) / np.log2(19))[0].numpy()
        heat = np.asarray(Image.open(output(out, name, 'entropy')), np.int32)
        np.testing.assert_allclose(heat[..., 1], 255 * entropy, atol=1.01)   # green channel = 255 * entropy
    assert changed_by_weights > 0   # the weights matter for these models: a sum with equal weights differs


def test_overlay_blends_photo_and_colour(env, ensemble_run):
    root, _ = env
    _, out = ensemble_run
    name = 'wide.png'
    photo = np.asarray(Image.open(root / 'images' / name).convert('RGB'), np.float64)
    color = np.asarray(Image.open(output(out, name, 'color')).convert('RGB'), np.float64)
    overlay = np.asarray(Image.open(output(out, name, 'overlay')), np.float64)
    np.testing.assert_allclose(overlay, (photo + color) / 2, atol=0.51)


def test_missing_checkpoint_is_one_line_and_writes_nothing(env, tmp_path, capsys, one_torch_thread):
    from intrada.predict import main
    root, checkpoints = env
    missing = tmp_path / 'missing.pth'
    out = tmp_path / 'out'
    assert main([str(root / 'images'), *flags([checkpoints[0], missing], out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error:') and 'missing.pth' in err[0], err
    assert not out.exists()


def test_config_list_file_and_glob_give_the_same_result(env, tmp_path, one_torch_thread, ensemble_run):
    from intrada.predict import main
    root, checkpoints = env
    _, reference = ensemble_run
    cfg = write_yaml(tmp_path / 'cfg.yml', {'TEST': {
        'MODE': 'single', 'MODEL': [TINY, TINY], 'MULTI_LEVEL': [True, True], 'MODEL_WEIGHT': list(WEIGHTS),
        'RESTORE_FROM': [str(c) for c in checkpoints], 'INPUT_SIZE_TARGET': list(INPUT_SIZE)}, 'NUM_WORKERS': 0})
    (tmp_path / 'list.txt').write_text(f'{root / "images" / "wide.png"}\n\n{root / "images" / "sub" / "tall.png"}\n')
    out = tmp_path / 'out'
    assert main(['--cfg', str(cfg), '--device', 'cpu', '--out-dir', str(out), str(tmp_path / 'list.txt'),
                 str(root / 'images' / 'sub' / '*.jpg')]) == 0
    for name in IMAGES:   # the common folder of the inputs is images/: the same layout as the folder run
        ours = np.asarray(Image.open(output(out, name, 'trainIds')))
        assert (ours == np.asarray(Image.open(output(reference, name, 'trainIds')))).mean() > 0.999, name


def test_existing_outputs_are_kept_unless_overwrite(env, tmp_path, capsys, one_torch_thread):
    from intrada.predict import main
    root, checkpoints = env
    image, out = root / 'images' / 'wide.png', tmp_path / 'out'
    run = [str(image), *flags(checkpoints[:1], out)]
    assert main(run) == 0
    paths = [output(out, 'wide.png', kind) for kind in KINDS]
    for path in paths:
        path.write_bytes(b'kept')        # a mark that a rewrite would remove
    paths[1].unlink()
    capsys.readouterr()
    assert main(run) == 0                # writes the missing colour mask only
    assert [p.read_bytes() == b'kept' for p in paths] == [True, False, True, True]
    assert Image.open(paths[1]).size == IMAGES['wide.png']
    assert main(run) == 0
    assert 'skipped' in capsys.readouterr().out
    assert main(run + ['--overwrite']) == 0
    assert not any(p.read_bytes() == b'kept' for p in paths)


def test_console_script_is_declared():
    assert 'intrada-predict=intrada.predict:main' in (PROJECT_ROOT / 'setup.py').read_text()


@pytest.mark.parametrize('extra,flag', [(['--batch-size', '0'], '--batch-size'),
                                        (['--weight', '1', '2', '3'], '--weight'),
                                        (['--device', 'tpu:x'], '--device')])
def test_bad_flags_are_one_line_naming_the_flag(env, tmp_path, capsys, extra, flag):
    from intrada.predict import main
    root, checkpoints = env
    out = tmp_path / 'out'
    assert main([str(root / 'images' / 'wide.png'), *flags(checkpoints, out), *extra]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error:') and flag in err[0], err
    assert not out.exists()


# ------------------------------------------------- settings from the run's train_cfg.yml

def snapshot_folder(root, checkpoint, **changes):
    """A demo-style snapshot folder: the checkpoint and the train_cfg.yml training writes beside it
    (the merged config of a DeepLabv2-tiny run at INPUT_SIZE, dumped as experiment.py does)."""
    from advent.domain_adaptation.config import dump_yaml, load_config
    folder = root / 'snapshots' / 'advent'
    folder.mkdir(parents=True)
    (folder / 'model_4.pth').write_bytes(checkpoint.read_bytes())
    cfg = load_config()
    cfg.TRAIN.MODEL, cfg.TEST.MODEL = TINY, [TINY]
    cfg.TRAIN.INPUT_SIZE_TARGET = cfg.TEST.INPUT_SIZE_TARGET = list(INPUT_SIZE)
    cfg.GPU_ID = -1
    for key, value in changes.items():
        cfg.TEST[key] = value
    (folder / 'train_cfg.yml').write_text(dump_yaml(cfg))
    return folder


def test_a_checkpoint_alone_takes_its_runs_settings(env, ensemble_run, tmp_path, capsys, one_torch_thread):
    from intrada.predict import main
    root, checkpoints = env
    folder = snapshot_folder(tmp_path, checkpoints[0])
    out = tmp_path / 'out'
    assert main(['--checkpoint', str(folder / 'model_4.pth'), str(root / 'images' / 'wide.png'),
                 '--out-dir', str(out)]) == 0
    printed = capsys.readouterr().out
    config = folder / 'train_cfg.yml'
    assert f'model: {TINY} (from {config})' in printed
    assert f'input size: {INPUT_SIZE[0]}x{INPUT_SIZE[1]} (from {config})' in printed
    assert f'classes: 19 (from {config}), palette of ' in printed and 'mean (BGR): 104.01 116.67 122.68' in printed
    size = IMAGES['wide.png']
    expected = main_scores(checkpoints[0], root / 'images' / 'wide.png', size).argmax(1)[0].numpy()
    written = np.asarray(Image.open(output(out, 'wide.png', 'trainIds')))
    assert (written == expected).mean() > 0.999 and len(np.unique(written)) >= 3


def test_flags_and_cfg_override_the_runs_settings_and_say_so(env, tmp_path, capsys, one_torch_thread):
    from intrada.predict import main
    root, checkpoints = env
    folder = snapshot_folder(tmp_path, checkpoints[0], IMG_MEAN=[0.0, 0.0, 0.0])
    cfg = write_yaml(tmp_path / 'cfg.yml', {'TEST': {'INPUT_SIZE_TARGET': [32, 16]}})
    image = str(root / 'images' / 'wide.png')
    assert main(['--checkpoint', str(folder / 'model_4.pth'), image, '--cfg', str(cfg),
                 '--out-dir', str(tmp_path / 'a')]) == 0
    printed = capsys.readouterr().out
    assert f'input size: 32x16 (from --cfg {cfg})' in printed
    assert f'mean (BGR): 0.00 0.00 0.00 (from {folder / "train_cfg.yml"})' in printed
    assert main(['--checkpoint', str(folder / 'model_4.pth'), image, '--input-size', '48', '24',
                 '--out-dir', str(tmp_path / 'b')]) == 0
    assert 'input size: 48x24 (from --input-size)' in capsys.readouterr().out


def test_a_checkpoint_without_a_run_config_keeps_the_defaults_and_says_so(env, tmp_path, capsys):
    from intrada.predict import main
    root, checkpoints = env
    out = tmp_path / 'out'
    # today's defaults: the full DeepLabv2, whose weights these are not: a one-line error naming --model
    assert main(['--checkpoint', str(checkpoints[0]), str(root / 'images' / 'wide.png'), '--out-dir', str(out),
                 '--device', 'cpu']) == 2
    captured = capsys.readouterr()
    assert f'note: no train_cfg.yml beside {checkpoints[0]}' in captured.out
    assert 'model: DeepLabv2 (from default)' in captured.out and 'input size: 1024x512 (from default)' in captured.out
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error: checkpoint') and 'has shape' in err[0], err
    assert '--model' in err[0] and 'DeepLabv2-tiny' in err[0] and 'DeepLabv2-R50' in err[0]
    assert not out.exists()


def folder_run(tmp_path, info):
    """A 5-class Folder run's snapshot folder whose train_cfg.yml names the class file `info`."""
    import yaml
    tmp_path.mkdir()
    checkpoint = tmp_path / 'five.pth'
    torch.save(random_model(4, num_classes=5).state_dict(), checkpoint)
    folder = snapshot_folder(tmp_path, checkpoint, INFO_TARGET=str(info))
    run = yaml.safe_load((folder / 'train_cfg.yml').read_text())
    run.update(SOURCE='Folder', TARGET='Folder', NUM_CLASSES=5)
    run['TRAIN']['INFO_TARGET'] = str(info)
    write_yaml(folder / 'train_cfg.yml', run)
    return folder / 'model_4.pth'


def test_a_folder_runs_class_file_gives_the_palette(env, tmp_path, capsys, one_torch_thread):
    """The colour masks of a Folder run in its class file's palette (not Cityscapes'); a class
    file that is missing or bad is the class-file loader's one-line error, nothing written."""
    import folderdata as fd
    from intrada.predict import main
    root, _ = env
    palette = [[1, 2, 3], [250, 0, 250], [0, 250, 250], [17, 34, 51], [200, 100, 0]]
    info = fd.class_file(tmp_path / 'classes' / 'info.json', palette=palette)
    checkpoint = folder_run(tmp_path / 'good', info)
    out = tmp_path / 'out'
    assert main(['--checkpoint', str(checkpoint), str(root / 'images' / 'wide.png'), '--out-dir', str(out)]) == 0
    assert f'palette of {info} (from {checkpoint.parent / "train_cfg.yml"})' in capsys.readouterr().out
    train_ids = np.asarray(Image.open(output(out, 'wide.png', 'trainIds')))
    colour = np.asarray(Image.open(output(out, 'wide.png', 'color')).convert('RGB'))
    assert len(np.unique(train_ids)) >= 2
    np.testing.assert_array_equal(colour, np.array(palette, np.uint8)[train_ids])

    bad = fd.class_file(tmp_path / 'classes' / 'bad.json', palette=palette[:4])
    for path, words in ((tmp_path / 'classes' / 'missing.json', 'does not exist'),
                        (bad, '"palette" has 4 colours for 5 classes')):
        checkpoint = folder_run(tmp_path / path.stem, path)
        out = tmp_path / f'out_{path.stem}'
        assert main(['--checkpoint', str(checkpoint), str(root / 'images' / 'wide.png'), '--out-dir', str(out)]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith(f'error: class file {path}'), err
        assert words in err[0] and not out.exists(), err
