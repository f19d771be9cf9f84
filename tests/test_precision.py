"""The precision policy and the device handling.

- Training, evaluation and ranking run with strict fp32 (TF32 off for cuDNN convolutions
  and cuBLAS matrix products) unless ALLOW_TF32; the flags are read while the network
  runs, so this holds on any machine. Afterwards the previous settings are back, so that
  training's cuDNN autotuning does not leak into a later evaluation.
- GPU_ID -1 runs on the CPU; a GPU_ID the machine lacks is one line naming the key.
- Resuming a state saved without fp16 into TRAIN.AMP fp16 works; CUDA RNG states of a
  machine with more GPUs are restored for the GPUs present.
"""
import pytest
import torch

import tinydata
from advent.cli import test_main as evaluate_main, train_main
from advent.domain_adaptation import train_UDA
from advent.domain_adaptation.config import ConfigError, finalize_paths, load_config
from advent.errors import UserError
from advent.model import deeplabv2
from advent.utils import distributed
from advent.utils.precision import current_settings, numeric_settings
from entropy_rank import ranking

pytestmark = pytest.mark.usefixtures('one_torch_thread')

STRICT = {'conv_fp32_precision': 'ieee', 'matmul_fp32_precision': 'ieee'}
TF32 = {'conv_fp32_precision': 'tf32', 'matmul_fp32_precision': 'tf32'}


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    return tinydata.make_tree(tmp_path_factory.mktemp('tree'))


@pytest.fixture
def seen(monkeypatch):
    """The settings in force at every forward pass of the segmenter."""
    records = []
    forward = deeplabv2.ResNetMulti.forward

    def recording_forward(self, x):
        records.append(current_settings())
        return forward(self, x)
    monkeypatch.setattr(deeplabv2.ResNetMulti, 'forward', recording_forward)
    return records


@pytest.fixture
def outside():
    """Settings a caller had before a stage ran (neither the default nor what a stage sets)."""
    with numeric_settings(True, cudnn_benchmark=False):
        torch.backends.cuda.matmul.fp32_precision = 'none'
        before = current_settings()
        yield before


def write_cfg(tmp_path, tree, name='cfg', **sections):
    cfg = tinydata.stage1_config(tree, tmp_path / 'snap', EXP_NAME='run', GPU_ID=-1, **sections)
    return str(tinydata.write_config(tmp_path / f'{name}.yml', cfg))


def test_training_is_strict_fp32_by_default_and_restores_the_settings(tree, tmp_path, seen, outside):
    cfg = write_cfg(tmp_path, tree, TRAIN={'DA_METHOD': 'SourceOnly', 'EARLY_STOP': 1, 'CUDNN_BENCHMARK': True})
    assert train_main(['--cfg', cfg]) == 0
    assert seen and all(s == dict(STRICT, cudnn_benchmark=True) for s in seen)
    assert current_settings() == outside  # cuDNN autotuning does not leak into what runs next


def test_tf32_is_an_opt_in(tree, tmp_path, seen, outside):
    cfg = write_cfg(tmp_path, tree, ALLOW_TF32=True, TRAIN={'DA_METHOD': 'SourceOnly', 'EARLY_STOP': 1})
    assert train_main(['--cfg', cfg]) == 0
    assert seen and all(s == dict(TF32, cudnn_benchmark=False) for s in seen)
    assert current_settings() == outside


@pytest.mark.parametrize('allow_tf32', [False, True])
def test_evaluation_and_ranking_follow_the_policy(tree, tmp_path, monkeypatch, seen, outside, allow_tf32):
    cfg = write_cfg(tmp_path, tree, ALLOW_TF32=allow_tf32,
                    TRAIN={'DA_METHOD': 'SourceOnly', 'EARLY_STOP': 2, 'CUDNN_BENCHMARK': True})
    assert train_main(['--cfg', cfg]) == 0
    seen.clear()
    assert evaluate_main(['--cfg', cfg]) == 0
    expected = dict(TF32 if allow_tf32 else STRICT, cudnn_benchmark=False)
    assert seen and all(s == expected for s in seen)
    assert current_settings() == outside
    seen.clear()
    config = finalize_paths(load_config(cfg))
    ranking.run_ranking(config, 2, True, 0.5, tmp_path / 'rank')
    assert seen and all(s == expected for s in seen)
    assert current_settings() == outside


def test_rare_class_index_is_made_once_per_device(tree, tmp_path):
    model = deeplabv2.get_deeplab_v2(19, True, 'DeepLabv2-tiny').eval()
    config = finalize_paths(load_config(write_cfg(tmp_path, tree)))
    from advent.domain_adaptation.experiment import build_target_dataset
    dataset = build_target_dataset(config)
    ranking._class_index.cache_clear()
    ranking.rank_target_images(model, dataset, (tinydata.W, tinydata.H), torch.device('cpu'), tmp_path / 'out',
                               True, 0.5)
    assert len(dataset) > 1 and ranking._class_index.cache_info().misses == 1


def test_gpu_id(monkeypatch, tmp_path):
    assert distributed.device_for_rank(-1) == torch.device('cpu')
    path = tmp_path / 'bad.yml'
    path.write_text('GPU_ID: -2\n')
    with pytest.raises(ConfigError, match='GPU_ID'):
        load_config(path)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    assert distributed.device_for_rank(-1) == torch.device('cpu')  # -1 wins even with a GPU
    assert distributed.device_for_rank(0) == torch.device('cuda', 0)
    with pytest.raises(UserError, match='^GPU_ID 1: this machine has 1 GPU'):
        distributed.device_for_rank(1)


def test_a_state_saved_in_fp32_resumes_in_fp16(tree, tmp_path, capsys):
    train = {'DA_METHOD': 'SourceOnly', 'EARLY_STOP': 4}
    assert train_main(['--cfg', write_cfg(tmp_path, tree, 'fp32', TRAIN=dict(train, EARLY_STOP=2))]) == 0
    fp16 = write_cfg(tmp_path, tree, 'fp16', TRAIN=dict(train, AMP='fp16'))
    assert train_main(['--cfg', fp16, '--resume']) == 0
    captured = capsys.readouterr()
    assert 'without TRAIN.AMP fp16' in captured.out and 'Traceback' not in captured.err
    assert (tmp_path / 'snap' / 'run' / 'model_4.pth').is_file()


def test_cuda_rng_states_of_more_gpus_restore_on_fewer(monkeypatch):
    state = train_UDA.get_rng_state()
    state['cuda'] = [torch.full((4,), k, dtype=torch.uint8) for k in range(3)]  # saved on 3 GPUs
    restored = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    monkeypatch.setattr(torch.cuda, 'set_rng_state', lambda state, device: restored.append((state, device)))
    train_UDA.set_rng_state(state)
    assert len(restored) == 1 and restored[0][1] == 0 and torch.equal(restored[0][0], state['cuda'][0])
