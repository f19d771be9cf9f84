"""advent.domain_adaptation.config: defaults, strict merging, safe YAML, paths, validation."""
import os
from pathlib import Path

import numpy as np
import pytest

import advent.domain_adaptation.config as config_mod
from advent.domain_adaptation.config import (PROJECT_ROOT, ConfigError, cfg_from_file, default_config,
                                             load_config, validate)

IMG_MEAN = (104.00698793, 116.66876762, 122.67891434)


def write(tmp_path, text, name='c.yml'):
    p = tmp_path / name
    p.write_text(text)
    return p


# ---------------------------------------------------------------- defaults

def test_defaults_values():
    c = load_config()
    assert c.SOURCE == 'GTA' and c.TARGET == 'Cityscapes'
    assert c.NUM_CLASSES == 19 and c.NUM_WORKERS == 4 and c.GPU_ID == 0
    assert c.EXP_NAME == ''
    assert c.TRAIN.SET_SOURCE == 'all' and c.TRAIN.SET_TARGET == 'train'
    assert c.TRAIN.IGNORE_LABEL == 255
    assert c.TRAIN.MODEL == 'DeepLabv2' and c.TRAIN.MULTI_LEVEL is True
    assert c.TRAIN.LEARNING_RATE == pytest.approx(2.5e-4) and c.TRAIN.LEARNING_RATE_D == pytest.approx(1e-4)
    assert c.TRAIN.MOMENTUM == pytest.approx(0.9) and c.TRAIN.WEIGHT_DECAY == pytest.approx(5e-4)
    assert c.TRAIN.POWER == pytest.approx(0.9)
    assert c.TRAIN.ORIGINAL_SGD is True  # the original's repeated backbone updates (SPEC 4)
    assert c.TRAIN.LAMBDA_SEG_MAIN == 1.0 and c.TRAIN.LAMBDA_SEG_AUX == pytest.approx(0.1)
    assert c.TRAIN.LAMBDA_ADV_MAIN == pytest.approx(0.001) and c.TRAIN.LAMBDA_ADV_AUX == pytest.approx(0.0002)
    assert c.TRAIN.LAMBDA_ENT_MAIN == pytest.approx(0.001) and c.TRAIN.LAMBDA_ENT_AUX == pytest.approx(0.0002)
    assert c.TRAIN.DA_METHOD == 'AdvEnt'
    assert (c.TRAIN.MAX_ITERS, c.TRAIN.EARLY_STOP, c.TRAIN.SAVE_PRED_EVERY) == (250000, 120000, 2000)
    assert c.TRAIN.RANDOM_SEED == 1234 and c.TRAIN.RESTORE_FROM == '' and c.TRAIN.SNAPSHOT_DIR == ''
    assert c.TEST.MODE == 'best' and c.TEST.SET_TARGET == 'val' and c.TEST.WAIT_MODEL is True
    assert (c.TEST.SNAPSHOT_STEP, c.TEST.SNAPSHOT_MAXITER) == (2000, 120000)
    assert c.DATA_DIRECTORY_SOURCE == str(PROJECT_ROOT / 'data' / 'GTA5')
    assert c.DATA_DIRECTORY_TARGET == str(PROJECT_ROOT / 'data' / 'Cityscapes')
    assert c.DATA_LIST_SOURCE.endswith(os.path.join('gta5_list', '{}.txt'))
    assert c.DATA_LIST_TARGET.endswith(os.path.join('cityscapes_list', '{}.txt'))
    assert Path(c.DATA_LIST_TARGET.format('val')).is_file()
    assert Path(c.TRAIN.INFO_TARGET).is_file() and Path(c.TEST.INFO_TARGET).is_file()
    assert c.TRAIN.INFO_SOURCE == '' and c.DATA_DIRECTORY_PSEUDO_LABELS == ''


def test_defaults_sequences_are_lists():
    c = load_config()
    for value, expected in ((c.TRAIN.INPUT_SIZE_SOURCE, [1280, 720]), (c.TRAIN.INPUT_SIZE_TARGET, [1024, 512]),
                            (c.TEST.INPUT_SIZE_TARGET, [1024, 512]), (c.TEST.OUTPUT_SIZE_TARGET, [2048, 1024]),
                            (c.TEST.MODEL, ['DeepLabv2']), (c.TEST.MODEL_WEIGHT, [1.0]),
                            (c.TEST.MULTI_LEVEL, [True]), (c.TEST.RESTORE_FROM, ['']),
                            (c.TEST.SNAPSHOT_DIR, [''])):
        assert type(value) is list and value == expected


def test_defaults_img_mean_float32_array():
    c = load_config()
    for mean in (c.TRAIN.IMG_MEAN, c.TEST.IMG_MEAN):
        assert isinstance(mean, np.ndarray) and mean.dtype == np.float32 and mean.shape == (3,)
        np.testing.assert_array_equal(mean, np.array(IMG_MEAN, np.float32))


def test_load_config_gives_fresh_copies():
    a, b = load_config(), load_config()
    a.TEST.MODEL.append('x')
    a.TRAIN.IMG_MEAN[0] = 0
    a.TRAIN.INPUT_SIZE_SOURCE[0] = 1
    assert b.TEST.MODEL == ['DeepLabv2'] and b.TRAIN.IMG_MEAN[0] == np.float32(IMG_MEAN[0])
    assert b.TRAIN.INPUT_SIZE_SOURCE == [1280, 720]
    assert default_config().TEST.MODEL == ['DeepLabv2']


def test_empty_yaml_gives_defaults(tmp_path):
    from advent.domain_adaptation.config import to_plain
    c = load_config(write(tmp_path, ''))
    assert to_plain(c) == to_plain(default_config())
    assert c.NUM_CLASSES == 19 and c.TRAIN.MAX_ITERS == 250000


# ---------------------------------------------------------------- strict merge

def test_merge_values(tmp_path):
    c = load_config(write(tmp_path, 'NUM_CLASSES: 16\nSOURCE: SYNTHIA\nTRAIN:\n  MAX_ITERS: 10\n'
                                    '  INPUT_SIZE_SOURCE: [64, 32]\n  MULTI_LEVEL: false\n'
                                    'TEST:\n  MODEL: [DeepLabv2, DeepLabv2]\n'))
    assert c.NUM_CLASSES == 16 and c.SOURCE == 'SYNTHIA' and c.TRAIN.MAX_ITERS == 10
    assert c.TRAIN.INPUT_SIZE_SOURCE == [64, 32] and c.TRAIN.MULTI_LEVEL is False
    assert c.TEST.MODEL == ['DeepLabv2', 'DeepLabv2']
    assert c.TRAIN.EARLY_STOP == 120000  # untouched keys keep their defaults


@pytest.mark.parametrize('text,key', [
    ('FOO: 1\n', 'FOO'),
    ('TRAIN:\n  NOT_A_KEY: 1\n', 'TRAIN.NOT_A_KEY'),
    ('TEST:\n  MODEL_WEIGHTS: [1.0]\n', 'TEST.MODEL_WEIGHTS'),
])
def test_unknown_key_is_named(tmp_path, text, key):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert key in str(e.value)
    assert str(p) in str(e.value)


@pytest.mark.parametrize('text,suggestion', [
    ('TRAIN:\n  LEARNING_RAT: 1\n', 'TRAIN.LEARNING_RATE'),      # a typo
    ('NUM_WORKER: 2\n', 'NUM_WORKERS'),
    ('LEARNING_RATE: 0.1\n', 'TRAIN.LEARNING_RATE'),            # the right name in the wrong section
    ('TEST:\n  input_size_target: [8, 8]\n', 'TEST.INPUT_SIZE_TARGET'),   # lower case
])
def test_unknown_key_suggests_the_nearest_known_key(tmp_path, text, suggestion):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'c.yml'}: unknown config key")
    assert f'(did you mean {suggestion}' in message and message.endswith('?)'), message


def test_unknown_key_unlike_every_key_suggests_nothing(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, 'TRAIN:\n  FOO: 1\n'))
    assert str(e.value).endswith("unknown config key 'TRAIN.FOO'")


def test_missing_config_named_like_a_packaged_one_suggests_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    with pytest.raises(ConfigError) as e:   # the original's `cd intrada; python test.py --cfg intrada_trained.yml`
        load_config('intrada_trained.yml')
    assert str(e.value) == ('config file intrada_trained.yml does not exist '
                            '(did you mean configs/intrada_trained.yml?)')
    (tmp_path / 'scripts').mkdir()
    monkeypatch.chdir(tmp_path / 'scripts')   # elsewhere: the packaged config's full path
    with pytest.raises(ConfigError) as e:
        load_config('./configs/advent.yml')
    assert str(e.value).endswith(f'(did you mean {PROJECT_ROOT / "configs" / "advent.yml"}?)')
    with pytest.raises(ConfigError) as e:
        load_config('no_such_config.yml')
    assert str(e.value) == 'config file no_such_config.yml does not exist'


@pytest.mark.parametrize('text,key', [
    ('TRAIN:\n  MAX_ITERS: abc\n', 'TRAIN.MAX_ITERS'),           # string for int
    ('TRAIN:\n  MAX_ITERS: 2.5\n', 'TRAIN.MAX_ITERS'),           # float for int
    ('NUM_CLASSES: true\n', 'NUM_CLASSES'),                      # bool for int
    ('TRAIN:\n  LEARNING_RATE: true\n', 'TRAIN.LEARNING_RATE'),  # bool for float
    ('TRAIN:\n  LEARNING_RATE: fast\n', 'TRAIN.LEARNING_RATE'),  # non-numeric string for float
    ('TRAIN:\n  MULTI_LEVEL: 1\n', 'TRAIN.MULTI_LEVEL'),         # int for bool
    ('TRAIN:\n  ORIGINAL_SGD: textbook\n', 'TRAIN.ORIGINAL_SGD'),  # string for bool
    ('SOURCE: 3\n', 'SOURCE'),                                   # int for str
    ('TRAIN:\n  INPUT_SIZE_SOURCE: 640\n', 'TRAIN.INPUT_SIZE_SOURCE'),  # scalar for list
    ('TRAIN:\n  IMG_MEAN: [1, 2]\n', 'TRAIN.IMG_MEAN'),          # wrong length for array
    ('TRAIN: 5\n', 'TRAIN'),                                     # scalar for a section
])
def test_wrong_type_is_named(tmp_path, text, key):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    assert key in str(e.value)


def test_list_accepted_for_array_default(tmp_path):
    c = load_config(write(tmp_path, 'TRAIN:\n  IMG_MEAN: [1, 2.5, 3]\nTEST:\n  IMG_MEAN: [0, 0, 0]\n'))
    assert isinstance(c.TRAIN.IMG_MEAN, np.ndarray) and c.TRAIN.IMG_MEAN.dtype == np.float32
    np.testing.assert_array_equal(c.TRAIN.IMG_MEAN, np.array([1, 2.5, 3], np.float32))
    assert isinstance(c.TEST.IMG_MEAN, np.ndarray) and c.TEST.IMG_MEAN.dtype == np.float32


def test_int_accepted_for_float(tmp_path):
    c = load_config(write(tmp_path, 'TRAIN:\n  LEARNING_RATE: 1\n  LAMBDA_SEG_MAIN: 2\n'))
    assert type(c.TRAIN.LEARNING_RATE) is float and c.TRAIN.LEARNING_RATE == 1.0
    assert type(c.TRAIN.LAMBDA_SEG_MAIN) is float and c.TRAIN.LAMBDA_SEG_MAIN == 2.0


def test_exponent_string_accepted_for_float(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-4 without a dot as the string '1e-4'
    c = load_config(write(tmp_path, "TRAIN:\n  LEARNING_RATE_D: 1e-4\n  LEARNING_RATE: '2.5e-4'\n"))
    assert type(c.TRAIN.LEARNING_RATE_D) is float and c.TRAIN.LEARNING_RATE_D == pytest.approx(1e-4)
    assert type(c.TRAIN.LEARNING_RATE) is float and c.TRAIN.LEARNING_RATE == pytest.approx(2.5e-4)


def test_safe_yaml_refuses_python_tags(tmp_path):
    marker = tmp_path / 'pwned'
    p = write(tmp_path, f'NUM_CLASSES: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value)
    assert not marker.exists()


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match='does not exist'):
        load_config(tmp_path / 'missing.yml')
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, 'TRAIN: [unclosed\n'))
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, '- a\n- b\n', 'list.yml'))  # not a mapping


# ---------------------------------------------------------------- paths

def test_relative_paths_resolve_against_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    c = load_config(write(tmp_path, 'DATA_DIRECTORY_SOURCE: data/GTA5_small\nEXP_ROOT: exp\n'
                                    'TRAIN:\n  RESTORE_FROM: pretrained_models/x.pth\n'
                                    'TEST:\n  RESTORE_FROM: [a/m1.pth, b/m2.pth]\n  MODEL: [DeepLabv2, DeepLabv2]\n'
                                    '  MODEL_WEIGHT: [0.5, 0.5]\n  MULTI_LEVEL: [true, true]\n'))
    assert c.DATA_DIRECTORY_SOURCE == str(PROJECT_ROOT / 'data' / 'GTA5_small')
    assert c.EXP_ROOT == str(PROJECT_ROOT / 'exp')
    assert c.TRAIN.RESTORE_FROM == str(PROJECT_ROOT / 'pretrained_models' / 'x.pth')
    assert c.TEST.RESTORE_FROM == [str(PROJECT_ROOT / 'a' / 'm1.pth'), str(PROJECT_ROOT / 'b' / 'm2.pth')]
    assert PROJECT_ROOT == Path(config_mod.__file__).resolve().parents[2]


def test_absolute_and_empty_paths_stay(tmp_path):
    abs_dir = tmp_path / 'somewhere' / 'GTA5'
    c = load_config(write(tmp_path, f'DATA_DIRECTORY_SOURCE: {abs_dir}\nTRAIN:\n  RESTORE_FROM: ""\n'))
    assert c.DATA_DIRECTORY_SOURCE == str(abs_dir)
    assert c.TRAIN.RESTORE_FROM == ''


def test_list_path_keeps_set_placeholder(tmp_path):
    c = load_config(write(tmp_path, "DATA_LIST_TARGET: 'lists/{}.txt'\n"))
    assert c.DATA_LIST_TARGET == str(PROJECT_ROOT / 'lists' / '{}.txt')
    assert c.DATA_LIST_TARGET.format('train').endswith(os.path.join('lists', 'train.txt'))


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize('text,key', [
    ('TRAIN:\n  INPUT_SIZE_SOURCE: [0, 720]\n', 'TRAIN.INPUT_SIZE_SOURCE'),
    ('TRAIN:\n  INPUT_SIZE_TARGET: [1024, -2]\n', 'TRAIN.INPUT_SIZE_TARGET'),
    ('TEST:\n  OUTPUT_SIZE_TARGET: [2048]\n', 'TEST.OUTPUT_SIZE_TARGET'),
    ('TEST:\n  INPUT_SIZE_TARGET: [10.5, 20]\n', 'TEST.INPUT_SIZE_TARGET'),
    ('NUM_CLASSES: 0\n', 'NUM_CLASSES'),
    ('TRAIN:\n  MAX_ITERS: -1\n', 'TRAIN.MAX_ITERS'),
    ('TRAIN:\n  DA_METHOD: AdvEntX\n', 'TRAIN.DA_METHOD'),
    ('TEST:\n  MODE: worst\n', 'TEST.MODE'),
])
def test_validate_rejects(tmp_path, text, key):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    assert key in str(e.value)


def test_validate_accepts_methods(tmp_path):
    for method in ('AdvEnt', 'MinEnt', 'SourceOnly'):
        c = load_config(write(tmp_path, f'TRAIN:\n  DA_METHOD: {method}\n'))
        assert c.TRAIN.DA_METHOD == method


def test_validate_direct_call():
    c = default_config()
    validate(c)  # the defaults are valid
    c.TRAIN.INPUT_SIZE_TARGET = [0, 0]
    with pytest.raises(ConfigError, match='TRAIN.INPUT_SIZE_TARGET'):
        validate(c)
    c = default_config()
    c.TRAIN.DA_METHOD = 'Nope'
    with pytest.raises(ConfigError, match='TRAIN.DA_METHOD'):
        validate(c)


# ---------------------------------------------------------------- the global cfg

def test_cfg_from_file_merges_into_global(tmp_path, monkeypatch):
    fresh = default_config()
    monkeypatch.setattr(config_mod, 'cfg', fresh)  # restored after the test
    cfg_from_file(write(tmp_path, 'NUM_CLASSES: 16\nTRAIN:\n  LEARNING_RATE_D: 1e-3\n'))
    assert fresh.NUM_CLASSES == 16 and fresh.TRAIN.LEARNING_RATE_D == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match='BOGUS'):
        cfg_from_file(write(tmp_path, 'BOGUS: 1\n', 'bad.yml'))


def test_list_entries_are_type_checked_and_named(tmp_path):
    import pytest
    from advent.domain_adaptation.config import ConfigError, load_config
    for body, key in (('TEST:\n  RESTORE_FROM: [1]\n', 'TEST.RESTORE_FROM[0]'),
                      ('TEST:\n  MULTI_LEVEL: [true, 3]\n', 'TEST.MULTI_LEVEL[1]'),
                      ('TEST:\n  MODEL_WEIGHT: [0.5, a]\n', 'TEST.MODEL_WEIGHT[1]')):
        path = tmp_path / 'bad.yml'
        path.write_text(body)
        with pytest.raises(ConfigError, match=key.replace('[', r'\[').replace(']', r'\]')):
            load_config(str(path))
    path.write_text('TEST:\n  MODEL_WEIGHT: [1, 0.5]\n')  # ints are fine where floats are expected
    assert load_config(str(path)).TEST.MODEL_WEIGHT == [1.0, 0.5]
