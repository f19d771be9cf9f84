"""advent.utils.serialization: checkpoints (plain state dicts, the ImageNet-init release,
mismatches, unsafe pickles) and the atomic writers."""
import os
from collections import OrderedDict

import pytest
import torch

from advent.model.deeplabv2 import get_deeplab_v2
from advent.utils.serialization import (CheckpointError, json_dump, json_load, load_checkpoint, load_model_weights,
                                        save_checkpoint)


def tiny(num_classes=5, multi_level=True, seed=0):
    torch.manual_seed(seed)
    return get_deeplab_v2(num_classes=num_classes, multi_level=multi_level, variant='DeepLabv2-tiny')


def assert_state_equal(a, b):
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_save_load_round_trip(tmp_path):
    m = tiny(seed=1)
    m.train()
    with torch.no_grad():
        m(torch.randn(2, 3, 20, 20))  # non-trivial running stats and num_batches_tracked
    path = tmp_path / 'snap' / 'model_2000.pth'
    save_checkpoint(m.state_dict(), path)
    assert sorted(os.listdir(path.parent)) == ['model_2000.pth']  # no temporary file left behind
    sd = load_checkpoint(path)
    assert_state_equal(sd, m.state_dict())
    other = tiny(seed=2)
    assert not torch.equal(other.conv1.weight, m.conv1.weight)
    load_model_weights(other, path)
    assert_state_equal(other.state_dict(), m.state_dict())
    # a plain state dict, loadable by a bare torch.load (the original code)
    plain = torch.load(path, map_location='cpu')
    assert isinstance(plain, dict) and set(plain) == set(m.state_dict())


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / 'm.pth'
    save_checkpoint({'a': torch.zeros(2)}, path)
    save_checkpoint({'a': torch.ones(2)}, path)
    assert torch.equal(load_checkpoint(path)['a'], torch.ones(2))
    assert os.listdir(tmp_path) == ['m.pth']


def test_imagenet_init_release(tmp_path):
    src = tiny(num_classes=5, seed=3)
    target = tiny(num_classes=5, seed=4)
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    release = OrderedDict()
    for k, v in src.state_dict().items():
        if k.startswith('layer6.') or k.endswith('num_batches_tracked'):
            continue  # the release has no main head and predates BN counters
        release['Scale.' + k] = v.clone() + (1.0 if k.startswith('layer5.') else 0.0)
    assert any(k.startswith('Scale.layer5.') for k in release)
    path = tmp_path / 'DeepLab_resnet_pretrained_imagenet.pth'
    torch.save(release, path)
    load_model_weights(target, path)
    got = target.state_dict()
    n_loaded = 0
    for k, v in got.items():
        if k.startswith(('layer5.', 'layer6.')) or k.endswith('num_batches_tracked'):
            assert torch.equal(v, fresh[k]), f'{k} must keep its fresh value'
        else:
            assert torch.equal(v, release['Scale.' + k]), f'{k} must come from the file'
            n_loaded += 1
    assert n_loaded == sum(1 for k in release if not k.startswith('Scale.layer5.'))


def test_imagenet_init_tag_in_longer_name(tmp_path):
    src, target = tiny(seed=5), tiny(seed=6)
    release = {'Scale.' + k: v for k, v in src.state_dict().items() if not k.startswith('layer6.')}
    path = tmp_path / 'my_DeepLab_resnet_pretrained_imagenet_copy.pth'
    torch.save(release, path)
    load_model_weights(target, path)
    assert torch.equal(target.layer4[0].conv2.weight, src.layer4[0].conv2.weight)
    assert not torch.equal(target.layer5.conv2d_list[0].weight, src.layer5.conv2d_list[0].weight)
    # without the tag in the name, the same file is a plain state dict with unknown keys
    plain = tmp_path / 'other.pth'
    torch.save(release, plain)
    with pytest.raises(CheckpointError):
        load_model_weights(tiny(), plain)


def test_other_class_count_names_first_mismatching_key(tmp_path):
    path = tmp_path / 'gta2cityscapes_16.pth'
    save_checkpoint(tiny(num_classes=16).state_dict(), path)
    m = tiny(num_classes=19)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(CheckpointError) as e:
        load_model_weights(m, path)
    msg = str(e.value)
    assert 'layer5.conv2d_list.0.weight' in msg  # the first key (state-dict order) whose shape differs
    assert str(path) in msg
    assert_state_equal(m.state_dict(), before)  # nothing was half-loaded


def test_missing_and_unexpected_keys_are_named(tmp_path):
    sd = tiny().state_dict()
    missing = OrderedDict((k, v) for k, v in sd.items() if k != 'layer2.0.conv2.weight')
    p1 = tmp_path / 'missing.pth'
    torch.save(missing, p1)
    with pytest.raises(CheckpointError, match=r'layer2\.0\.conv2\.weight'):
        load_model_weights(tiny(), p1)
    extra = OrderedDict(sd)
    extra['layer7.weight'] = torch.zeros(1)
    p2 = tmp_path / 'extra.pth'
    torch.save(extra, p2)
    with pytest.raises(CheckpointError, match=r'layer7\.weight'):
        load_model_weights(tiny(), p2)
    # a single-level model refuses a multi-level checkpoint (layer5 is unexpected)
    p3 = tmp_path / 'multi.pth'
    torch.save(sd, p3)
    with pytest.raises(CheckpointError, match='layer5'):
        load_model_weights(tiny(multi_level=False), p3)


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / 'nope.pth')
    assert str(tmp_path / 'nope.pth') in str(e.value)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_unsafe_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'conv1.weight': torch.zeros(1), 'payload': _Evil(marker)}, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_model_weights(tiny(), path)
    assert not marker.exists()
    # the bait is real: an unrestricted unpickle runs the payload
    torch.load(path, map_location='cpu', weights_only=False)
    assert marker.exists()


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / 'broken.pth'
    path.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)


def test_non_state_dict_refused(tmp_path):
    path = tmp_path / 'list.pth'
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match='state dict'):
        load_model_weights(tiny(), path)


def test_json_round_trip(tmp_path):
    obj = {'a': [1, 2.5, None], 'b': {'c': 'x'}}
    path = tmp_path / 'd' / 'x.json'
    json_dump(obj, path)
    assert json_load(path) == obj
    assert os.listdir(path.parent) == ['x.json']
