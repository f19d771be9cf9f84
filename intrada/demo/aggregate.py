"""Several seeds of the demo in one: per row the mean and the sample standard deviation of
the best-snapshot mIoU, the paired comparisons of rows over the seeds (paired.py), and the
paper's numbers for the same rows beside them."""
import numpy as np

from intrada.demo.paired import paired_comparison
from intrada.demo.report import present_rows

# The paper's GTA5 -> Cityscapes mIoU (Table 1 and the ablation), for context.
PAPER_MIOU = {'advent': 43.8, 'self_training': 45.5, 'intrada': 46.3, 'intrada_norm': 47.0}
# (row, against) compared seed by seed, where both rows ran: IntraDA against its fair control
# first, then against the ablation's and stage 1's rows; stage 1 against its baselines.
PAIRED_COMPARISONS = (('intrada', 'advent_continued'), ('intrada', 'self_training'), ('intrada', 'advent'),
                      ('intrada_norm', 'intrada'), ('advent', 'source_only'), ('advent', 'bn_only'))
PAIRED_RULE = ('each comparison is made on the per-seed differences (the row minus the other row, best snapshots): '
               'their mean, the 95 % confidence interval of that mean (Student\'s t with seeds - 1 degrees of '
               'freedom) and the number of seeds on which the row is higher')


def mean_sd(values):
    """(mean, sample sd) rounded to 2 decimals; sd None for a single value."""
    values = np.asarray(values, np.float64)
    sd = round(float(values.std(ddof=1)), 2) if len(values) > 1 else None
    return round(float(values.mean()), 2), sd


def _stats(values):
    """mean and sd of the values that were measured (a metric is None where nothing was counted)."""
    measured = [v for v in values if v is not None]
    mean, sd = mean_sd(measured) if measured else (None, None)
    return {'values': list(values), 'mean': mean, 'sd': sd}


def aggregate(per_seed):
    """per_seed: {seed: results of run_demo}, every seed with the same rows. Returns
    {'seeds', 'rows': {row: {'mIoU': [...], 'mean', 'sd', 'last_mean', 'last_sd'}},
    'comparisons': [{'row', 'against', 'differences', 'mean', 'ci95', 'wins', 'excludes_zero'}], 'rule',
    'pseudo_labels': {split: {metric: {'values', 'mean', 'sd'}}}, 'split': {...}, 'paper', 'per_seed'}."""
    seeds = sorted(per_seed)
    runs = [per_seed[s] for s in seeds]
    rows = {}
    for key, _ in present_rows(runs[0]):
        mious = [r[key]['mIoU'] for r in runs]
        mean, sd = mean_sd(mious)
        last_mean, last_sd = mean_sd([r[key]['mIoU_last_mean'] for r in runs])
        rows[key] = {'mIoU': mious, 'mean': mean, 'sd': sd, 'last_mean': last_mean, 'last_sd': last_sd}
    comparisons = [paired_comparison(row, against, rows[row]['mIoU'], rows[against]['mIoU'])
                   for row, against in PAIRED_COMPARISONS if row in rows and against in rows]
    return {
        'seeds': seeds, 'rows': rows, 'comparisons': comparisons, 'rule': PAIRED_RULE,
        'pseudo_labels': {split: {metric: _stats([r['pseudo_labels'][split][metric] for r in runs])
                                  for metric in ('pixel_accuracy', 'mIoU')} for split in ('easy', 'hard')},
        'split': {metric: _stats([r['split'][metric] for r in runs]) for metric in ('precision', 'recall', 'auroc')},
        'paper': {key: value for key, value in PAPER_MIOU.items() if key in rows},
        'per_seed': {str(s): r for s, r in zip(seeds, runs)},
    }
