"""The built-in demo in quick mode: runs every stage through the real scripts and
leaves the report, the figures and results.json with numbers the evaluation measured."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from advent.domain_adaptation.eval_UDA import load_results_cache, miou_percent

ROOT = Path(__file__).resolve().parents[1]
RUNS = ('source_only', 'bn_only', 'advent', 'intrada')


def test_quick_demo_writes_report_and_measured_results(tmp_path):
    out = tmp_path / 'demo'
    proc = subprocess.run([sys.executable, '-m', 'intrada.demo', '--quick', '--seed', '3', '--out', str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'IntraDA (stage 3)' in proc.stdout

    results = json.loads((out / 'results.json').read_text())
    for run in RUNS:
        assert set(results[run]) >= {'mIoU', 'per_class', 'best_iter'}
        assert 0.0 <= results[run]['mIoU'] <= 100.0
        assert len(results[run]['per_class']) == 19
        # the number in results.json is the one the evaluation cached for that snapshot
        cache = load_results_cache(out / 'snapshots' / run)
        assert results[run]['mIoU'] == miou_percent(cache[results[run]['best_iter']])
    assert set(results['split']) >= {'precision', 'recall'}
    assert {'data', 'total'} <= set(results['seconds'])

    # the splits partition the target training list, sized as lambda1 = 0.67 says
    names = (out / 'data' / 'Cityscapes' / 'train.txt').read_text().split()
    easy = (out / 'entropy_rank' / 'easy_split.txt').read_text().split()
    hard = (out / 'entropy_rank' / 'hard_split.txt').read_text().split()
    assert sorted(easy + hard) == sorted(names) and len(easy) == int(len(names) * 0.67)

    report = (out / 'report.md').read_text()
    assert 'BN-only control' in report and f'{results["advent"]["mIoU"]:.2f}' in report
    for figure in ('qualitative.png', 'easy_hard.png'):
        image = np.asarray(Image.open(out / figure))
        assert image.ndim == 3 and image.std() > 10  # a real picture, not a blank canvas
