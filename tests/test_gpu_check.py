"""benchmarks/gpu_check.sh runs to its summary on the CPU (--cpu-only: tiny sizes, the CUDA
tests skipped), and the bf16 comparison summarises its seeds as documented."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / 'benchmarks'


def test_cpu_only_check_runs_every_step_to_the_summary(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    out = tmp_path / 'check'
    proc = subprocess.run(['bash', str(BENCHMARKS / 'gpu_check.sh'), str(out), '--cpu-only'], env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = proc.stdout[proc.stdout.index('GPU check summary'):]
    assert summary == (out / 'summary.txt').read_text().lstrip()
    for step in ('deps', 'benchmark', 'bf16'):
        assert any(line.split()[:2] == [step, 'ok'] for line in summary.splitlines()), step
    assert 'cuda_tests  skipped (--cpu-only)' in summary
    assert "fp32 arithmetic of each side: {'eval': {'ours': 'ieee'" in summary
    assert all(json.loads((out / 'benchmark.json').read_text())['checks'].values())
    bf16 = json.loads((out / 'bf16' / 'bf16_accuracy.json').read_text())
    assert [(r['seed'], r['precision']) for r in bf16['runs']] == [(0, 'fp32'), (0, 'bf16')]
    assert 'fp32: best snapshot' in summary and 'bf16: best snapshot' in summary


def test_bad_arguments_are_refused(tmp_path):
    proc = subprocess.run(['bash', str(BENCHMARKS / 'gpu_check.sh'), str(tmp_path), '--gpu'], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.startswith('usage:')


def test_bf16_summary_is_mean_and_sample_sd_per_precision():
    spec = importlib.util.spec_from_file_location('bf16_accuracy', BENCHMARKS / 'bf16_accuracy.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runs = [{'seed': s, 'precision': p, 'best_mIoU': b, 'last_mIoU': b - 1}
            for s, (p, b) in enumerate([('fp32', 40.0), ('fp32', 42.0), ('fp32', 44.0), ('bf16', 41.0)])]
    summary = module.summarise({'runs': runs})['summary']
    assert summary['fp32'] == {'seeds': [0, 1, 2], 'best_mIoU': (42.0, 2.0), 'last_mIoU': (41.0, 2.0)}
    assert summary['bf16']['best_mIoU'] == (41.0, None)
    with pytest.raises(SystemExit):
        module.main(['unused', '--seeds', '0'])
