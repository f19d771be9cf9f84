"""The demo's report: DIR/report.md of one seed (results table, the comparisons, the
pseudo-labels' accuracy per split, the ranking against the generator's flags, figures),
and the report of several seeds (aggregate.py's numbers)."""
from advent.utils.serialization import atomic_write_text

# Every row a demo run can have, in the report's order; self-training and IntraDA +
# normalisation come with --ablation.
ROWS = (('source_only', 'source only'), ('bn_only', 'BN-only control'), ('advent', 'AdvEnt (stage 1)'),
        ('advent_continued', 'AdvEnt continued'), ('self_training', 'self-training (lambda1 1.0)'),
        ('intrada', 'IntraDA (stage 3)'), ('intrada_norm', 'IntraDA + normalisation'))
TITLES = dict(ROWS)

# Comparisons the report states, (row, against): the fair ones first.
COMPARISONS = (('advent', 'source_only'), ('advent', 'bn_only'), ('bn_only', 'source_only'),
               ('intrada', 'advent_continued'), ('intrada', 'advent'), ('advent_continued', 'advent'),
               ('self_training', 'advent_continued'), ('intrada', 'self_training'), ('intrada_norm', 'intrada'))
ABLATION_NOTE = (
    'Ablation: self-training and IntraDA with the normalised ranking start from the best AdvEnt snapshot and run '
    'as many iterations as stage 3. Self-training is stage 3 without its adversarial part: stage 2 with '
    'lambda1 = 1.0 puts every target-train image in the easy split, and the run (DA_METHOD SourceOnly, SOURCE '
    'CityscapesEasy) trains with the segmentation loss on those pseudo-labels only; the target set is never '
    'drawn from, so the empty hard split plays no part. Its pseudo-labels are those of the default ranking '
    '(the same model), easy and hard together.')


def present_rows(results):
    """(key, title) of the rows a results dict holds, in the report's order."""
    return [(key, title) for key, title in ROWS if key in results]


def _fmt(value, digits=2):
    return '-' if value is None else f'{value:.{digits}f}'


def results_table(results, rows, class_names):
    lines = ['| run | mIoU (best snapshot) | mean of last snapshots | ' + ' | '.join(class_names) + ' |',
             '|---|---|---|' + '---|' * len(class_names)]
    for key, title in rows:
        r = results[key]
        cells = [_fmt(r['per_class'][n], 1) for n in class_names]
        lines.append(f'| {title} | {r["mIoU"]:.2f} (iter {r["best_iter"]}) | {r["mIoU_last_mean"]:.2f} | '
                     + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def comparison_lines(means):
    """'row against other: +d' for each comparison whose rows are present; means: {row: mIoU}."""
    return [f'- {TITLES[a]} against {TITLES[b]}: {means[a] - means[b]:+.2f}'
            for a, b in COMPARISONS if a in means and b in means]


def pseudo_label_table(rankings):
    """rankings: [(ranking title, pseudo_label_quality's result)]."""
    lines = ['| ranking | split | images | pixel accuracy | mIoU |', '|---|---|---|---|---|']
    for title, quality in rankings:
        for split in ('easy', 'hard'):
            q = quality[split]
            lines.append(f'| {title} | {split} | {q["images"]} | {_fmt(q["pixel_accuracy"])} | {_fmt(q["mIoU"])} |')
    return '\n'.join(lines)


def split_text(split):
    conditions = ', '.join(f'{c} {v["in_hard_split"]}/{v["images"]} ({v["fraction_in_hard_split"]:.0%})'
                           for c, v in sorted(split['by_condition'].items()))
    return (f'Hard split: {split["hard_split_size"]} images, {split["truly_hard"]} truly hard. Precision '
            f'{split["precision"]}, recall {split["recall"]}, AUROC of the entropy score {split["auroc"]}.\n'
            f'Images of each condition that went to the hard split: {conditions}.')


def write_report(out, results, settings, command, lambda1, sections=''):
    """OUT/report.md of one seed, with `sections` (markdown, e.g. the snapshot selection's) at its end."""
    rows = present_rows(results)
    class_names = list(results['advent']['per_class'])
    source = results['source_only']
    rankings = [('entropy (default)', results['pseudo_labels'])]
    if 'pseudo_labels_norm' in results:
        rankings.append(('entropy x normalisation', results['pseudo_labels_norm']))
    ablation_note = f'\n{ABLATION_NOTE}\n' if 'self_training' in results else ''
    last = 'is its last (it may still be improving)' if source['best_is_last'] else 'is not its last'
    text = f"""# IntraDA demo report

![mIoU of every run](summary.png)

Command: `{command}`

Synthetic benchmark: {settings['n_source']} source (GTA5 format), {settings['n_target_train']} target-train and
{settings['n_target_val']} target-val images (Cityscapes format) of {settings['size'][0]}x{settings['size'][1]} pixels;
model {settings['model']}, batch {settings['batch']} + {settings['batch']}, from random weights. A source-only
warm-up of {settings['warmup']} iterations; source only, the BN-only control and AdvEnt continue its last snapshot
for {settings['adapt']} iterations each; IntraDA starts from the best AdvEnt snapshot and runs
{settings['intra']} iterations on easy -> hard (lambda1 = {lambda1}); AdvEnt continued, its control, starts from the
same snapshot with a fresh discriminator and runs as many iterations of AdvEnt (source -> all target-train).
Snapshots every {settings['every']} iterations; mIoU in percent on the target val set, best snapshot (as the
paper selects) and the mean of the last {settings['last_k']}.

{results_table(results, rows, class_names)}

Source only: best snapshot at iteration {source['best_iter']} of {settings['adapt']} after the warm-up; it {last}.

Differences in mIoU (best snapshots; a single seed, so a point or so is within the run-to-run spread):
{chr(10).join(comparison_lines({key: results[key]['mIoU'] for key, _ in rows}))}
{ablation_note}
## The paper's premise: pseudo-labels of the easy split against the hard split

The pseudo-labels (stage 2's argmax of the best AdvEnt snapshot) measured against the generated
target-train labels after the fact; the method never reads these labels. Pixel accuracy and
mIoU in percent.

{pseudo_label_table(rankings)}

## Entropy ranking against the generator's hard-condition flag

{split_text(results['split'])}

![easy and hard samples](easy_hard.png)

## Predictions on val

![qualitative](qualitative.png)

## Time per stage (seconds)

{chr(10).join(f'- {k}: {v}' for k, v in results['seconds'].items())}
"""
    atomic_write_text(out / 'report.md', text + sections)


def comparison_title(comparison):
    return f'{TITLES[comparison["row"]]} against {TITLES[comparison["against"]]}'


def interval_text(comparison):
    """'+0.67 [-0.06, +1.39]': the mean paired difference and its 95 % interval."""
    low, high = comparison['ci95']
    return f'{comparison["mean"]:+.2f} [{low:+.2f}, {high:+.2f}]'


def paired_section(aggregate):
    """The paired comparisons of a multi-seed report: a table and which intervals exclude 0."""
    comparisons = aggregate['comparisons']
    lines = [f'| comparison | differences, seeds {" / ".join(map(str, aggregate["seeds"]))} | mean [95 % interval] '
             f'| seeds higher |', '|---|---|---|---|']
    for c in comparisons:
        lines.append(f'| {comparison_title(c)} | {" / ".join(f"{d:+.2f}" for d in c["differences"])} | '
                     f'{interval_text(c)} | {c["wins"]}/{len(c["differences"])} |')

    def listing(excludes):
        return '; '.join(comparison_title(c) for c in comparisons if c['excludes_zero'] == excludes) or 'none'

    return (f"""## Paired comparisons over the seeds

The rows of a seed share its data, its stage-1 snapshot and its seed, so {aggregate['rule']}.
An interval that excludes 0 is a difference these seeds resolve; one that includes 0 is not
(with few seeds the interval is wide: the answer is more seeds).

""" + '\n'.join(lines) + f"""

- Intervals that exclude 0: {listing(True)}.
- Intervals that include 0: {listing(False)}.
""")


def write_aggregate_report(out, aggregate, command, sections=''):
    """OUT/report.md of several seeds: mean +- sd per row beside the paper's figures, the
    paired comparisons, and `sections` (markdown) at its end."""
    seeds = aggregate['seeds']
    lines = [f'| run | best snapshot, seeds {" / ".join(map(str, seeds))} | mean ± sd | mean of the last snapshots '
             f'| paper, GTA5 -> Cityscapes |', '|---|---|---|---|---|']
    for key, row in aggregate['rows'].items():
        lines.append(f'| {TITLES[key]} | {" / ".join(f"{v:.2f}" for v in row["mIoU"])} | '
                     f'{row["mean"]:.2f} ± {_fmt(row["sd"])} | {row["last_mean"]:.2f} ± {_fmt(row["last_sd"])} | '
                     f'{_fmt(aggregate["paper"].get(key), 1)} |')
    pseudo = aggregate['pseudo_labels']

    def spread(stats):
        return f'{_fmt(stats["mean"])} ± {_fmt(stats["sd"])}'

    text = f"""# IntraDA demo report, {len(seeds)} seeds

![mIoU of every run, mean and sd over the seeds](summary.png)

Command: `{command}`

mIoU in percent on the target val set (best snapshot), per seed, mean ± sample standard deviation; the
paper's numbers (ResNet-101 from ImageNet, GTA5 -> Cityscapes) for the same rows, for context only: a
1 M-parameter model trained from scratch on a small synthetic benchmark is not expected to reach them.

{chr(10).join(lines)}

{paired_section(aggregate)}
Pseudo-labels of the default ranking against the generated target-train labels (never read by
the method): easy split pixel accuracy {spread(pseudo['easy']['pixel_accuracy'])},
mIoU {spread(pseudo['easy']['mIoU'])}; hard split pixel accuracy {spread(pseudo['hard']['pixel_accuracy'])},
mIoU {spread(pseudo['hard']['mIoU'])}.

Each seed's report: {', '.join(f'[seed {s}](seed_{s}/report.md)' for s in seeds)}.
"""
    atomic_write_text(out / 'report.md', text + sections)
