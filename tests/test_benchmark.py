"""benchmarks/run.py runs end to end (at a tiny size) and writes the JSON it documents."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

RUN_PY = Path(__file__).resolve().parents[1] / 'benchmarks' / 'run.py'


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location('bench_run', RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_writes_every_measurement(tmp_path, bench):
    out = tmp_path / 'bench.json'
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only spin on a busy machine
    try:
        report = bench.main(['--quick', '--device', 'cpu', '--model', 'DeepLabv2-tiny', '--scale', '0.0625',
                             '--eval-images', '1', '--rank-images', '1', '--train-iters', '1', '--rounds', '1',
                             '--json', str(out)])
    finally:
        torch.set_num_threads(threads)
    written = json.loads(out.read_text())
    assert written['device'] == 'cpu' and written['versions']['torch'] == torch.__version__
    for key, unit in (('eval', 'images/s'), ('rank', 'images/s'), ('train', 'iterations/s')):
        assert set(written[key]) == {'ours', 'baseline', 'ratio', 'unit'}
        assert written[key]['unit'] == unit
        assert written[key]['ours'] > 0 and written[key]['baseline'] > 0
        assert written[key]['ratio'] == pytest.approx(written[key]['ours'] / written[key]['baseline'], rel=1e-2)
        assert written[f'{key}_memory']['unit'].startswith('MiB')
    # ours and the baseline compute the same thing
    assert written['checks'] == {'eval_same_confusion_matrix': True, 'rank_same_split': True,
                                 'eval_postprocess_same_confusion_matrix': True, 'rank_postprocess_same_scores': True}
    for key in ('eval_postprocess', 'rank_postprocess', 'rank_overview'):
        assert set(written[key]) == {'ours', 'baseline', 'ratio', 'unit'} and written[key]['ours'] > 0
    assert written['settings']['sizes_wh']['eval_output'] == [128, 64]
    assert report['train'] == written['train']
    # the TF32 setting of every side: strict fp32 throughout on the CPU defaults
    assert written['precision'] == {part: {'ours': 'ieee', 'baseline': 'ieee'} for part in ('eval', 'rank', 'train')}
    assert written['settings']['train_ours']['allow_tf32'] is False


def test_training_runs_on_the_chosen_device(bench, tmp_path):
    sizes = {'train_source': [64, 64], 'train_target': [64, 64]}
    assert bench.train_cfg(sizes, 2, tmp_path, torch.device('cpu')).GPU_ID == -1
    assert bench.train_cfg(sizes, 2, tmp_path, torch.device('cuda', 1)).GPU_ID == 1
    assert bench.train_cfg(sizes, 2, tmp_path, torch.device('cuda'), allow_tf32=True).ALLOW_TF32 is True


def test_quick_defaults(bench):
    args, device = bench.parse_args(['--quick', '--device', 'cpu'])
    assert (args.scale, args.train_scale, args.eval_images, args.rank_images, args.train_iters) == (0.25, 0.25, 2, 2, 2)
    args, device = bench.parse_args(['--device', 'cpu'])
    assert (args.scale, args.eval_images, args.rank_images, args.train_iters, args.warmup) == (1.0, 20, 20, 10, 2)
    with pytest.raises(SystemExit):
        bench.parse_args(['--only', 'eval,speed'])
