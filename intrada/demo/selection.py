"""What choosing the snapshot without target labels costs (SPEC 11, TEST.SELECTION): for every
run, the snapshot each criterion picks among the run's evaluated snapshots, its val mIoU, and
the regret, the oracle's mIoU (the best snapshot, which needs the val labels) minus the
picked one's. Over several seeds, the mean regret of each criterion."""
from advent.domain_adaptation.selection import CRITERIA, pick
from intrada.demo.aggregate import mean_sd
from intrada.demo.report import TITLES


def criterion_picks(mious, label_free):
    """{criterion: {'iter', 'mIoU', 'regret'}} over a run's evaluated snapshots (mious:
    {iteration: mIoU in percent}; label_free: their scores, as in all_res.json)."""
    picks = {}
    for criterion in CRITERIA:
        i_iter = pick(criterion, mious, mious, label_free)
        picks[criterion] = {'iter': i_iter, 'mIoU': mious[i_iter]}
    for entry in picks.values():
        entry['regret'] = round(picks['miou']['mIoU'] - entry['mIoU'], 2)
    return picks


def mean_regrets(selection):
    """{criterion: mean regret over the runs} of one seed's results['selection']."""
    return {criterion: mean_sd([picks[criterion]['regret'] for picks in selection.values()])[0]
            for criterion in CRITERIA}


def regret_line(selection):
    regrets = mean_regrets(selection)
    return 'snapshot selection, mean regret over the runs (mIoU points): ' + \
        ', '.join(f'{criterion} {regrets[criterion]:.2f}' for criterion in CRITERIA)


def report_section(selection, used):
    """Markdown: per run, each criterion's pick, its mIoU and its regret."""
    lines = ['| run | ' + ' | '.join(('miou (oracle)',) + CRITERIA[1:]) + ' |', '|---|' + '---|' * len(CRITERIA)]
    for row, picks in selection.items():
        cells = [f'{p["mIoU"]:.2f} (iter {p["iter"]}, regret {p["regret"]:.2f})'
                 for p in (picks[criterion] for criterion in CRITERIA)]
        lines.append(f'| {TITLES[row]} | ' + ' | '.join(cells) + ' |')
    regrets = mean_regrets(selection)
    return f"""
## Choosing the snapshot without target labels

Every run's snapshots as each TEST.SELECTION criterion picks them (this demo ran with `{used}`
choosing every snapshot, stage 2's input included): the picked snapshot's mIoU, its iteration
and its regret, the mIoU of the best snapshot (the oracle, which needs the val labels) minus
the picked one's. See docs/selection.md.

{chr(10).join(lines)}

Mean regret over the runs: {', '.join(f'{c} {regrets[c]:.2f}' for c in CRITERIA)}.
"""


def aggregate_selection(per_seed):
    """{'rows': {row: {criterion: {'regret': [per seed], 'mean', 'sd'}}}, 'mean_regret':
    {criterion: mean over every run and seed}} from run_demo's results of several seeds."""
    runs = [per_seed[seed] for seed in sorted(per_seed)]
    rows = {}
    for row in runs[0]['selection']:
        rows[row] = {}
        for criterion in CRITERIA:
            regrets = [r['selection'][row][criterion]['regret'] for r in runs]
            mean, sd = mean_sd(regrets)
            rows[row][criterion] = {'regret': regrets, 'mean': mean, 'sd': sd}
    every = {criterion: [r['selection'][row][criterion]['regret'] for r in runs for row in rows]
             for criterion in CRITERIA}
    return {'rows': rows, 'mean_regret': {c: mean_sd(values)[0] for c, values in every.items()}}


def aggregate_section(summary):
    """Markdown: per run and criterion, the regret's mean ± sd over the seeds."""
    def cell(stats):
        return f'{stats["mean"]:.2f}' + ('' if stats['sd'] is None else f' ± {stats["sd"]:.2f}')
    lines = ['| run | ' + ' | '.join(CRITERIA) + ' |', '|---|' + '---|' * len(CRITERIA)]
    for row, stats in summary['rows'].items():
        lines.append(f'| {TITLES[row]} | ' + ' | '.join(cell(stats[c]) for c in CRITERIA) + ' |')
    mean = summary['mean_regret']
    return f"""
## Choosing the snapshot without target labels

Regret of each TEST.SELECTION criterion (the best snapshot's mIoU minus the picked one's, in
mIoU points), mean ± sd over the seeds; see docs/selection.md.

{chr(10).join(lines)}

Mean regret over every run and seed: {', '.join(f'{c} {mean[c]:.2f}' for c in CRITERIA)}.
"""
