"""The built-in demo: all three stages of IntraDA on generated street scenes, on the CPU.

    python -m intrada.demo [--quick] [--ablation] [--seed N] [--seeds N] [--jobs N] [--out DIR]   (also `intrada-demo`)

1. generates a synthetic GTA5-format source domain and a Cityscapes-format target domain
   (the subpackage `synthetic`; a fraction of the target images under hard conditions
   such as night or rain, recorded in a manifest the method never reads);
2. runs the real scripts with generated configs and a reduced DeepLabv2 for the CPU
   (stages.py), independent runs side by side with one thread each (jobs.py): a source-only
   warm-up, then from it a source-only baseline, a BatchNorm-only control, stage 1 (AdvEnt),
   stage 2 (entropy ranking), stage 3 (IntraDA), its control AdvEnt continued, with
   --ablation self-training and IntraDA with normalisation, and every evaluation;
3. prints a results table (cli.py) and writes DIR/report.md (report.py), DIR/results.json
   and figures (figures.py); with --seeds, the mean and spread over seeds (aggregate.py).
"""
