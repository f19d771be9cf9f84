"""Replay a curated list of realistic one-line bugs and report which test catches each.

    python tests/mutation/run_mutants.py              # every mutant, then a baseline run
    python tests/mutation/run_mutants.py --list       # the mutants and their tests
    python tests/mutation/run_mutants.py --only tie_in_evaluation resume_without_rng

For each mutant the repository is copied to a temporary folder, one snippet of one file is
replaced there (the working tree is never touched), and the mutant's targeted tests run
in the copy (pytest -x). The table says, per mutant, the first test that failed, or
SURVIVED when they all passed. A snippet that is not found exactly once stops the script
before anything runs: the library changed and the list must follow. Exit status 0 when
every mutant was caught and the unmutated copy passes the same tests, 1 otherwise.
Not part of the default test run (pytest collects test_*.py only); see docs/testing.md.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 900


class Mutant:
    def __init__(self, name, path, original, replacement, tests):
        self.name, self.path, self.original, self.replacement, self.tests = name, path, original, replacement, tests

    def check(self, root):
        """None when the snippet occurs exactly once in `root`, else why not."""
        file = root / self.path
        if not file.is_file():
            return f'{self.name}: {self.path} does not exist'
        count = file.read_text().count(self.original)
        if count != 1:
            return f'{self.name}: the snippet {self.original!r} occurs {count} times in {self.path} (expected once)'
        return None

    def apply(self, root):
        file = root / self.path
        file.write_text(file.read_text().replace(self.original, self.replacement))


# (name, file, exact original snippet, replacement, pytest arguments: the tests that must catch it)
MUTANTS = [
    # the four a mutation pass found unguarded (issue 25)
    Mutant('tie_in_evaluation', 'advent/domain_adaptation/eval_UDA.py',
           'if cur_best_miou < computed_miou:', 'if cur_best_miou <= computed_miou:',
           ['tests/test_promises.py', '-k', 'equal_miou']),
    # the snapshot each TEST.SELECTION criterion picks (the final line, stage 2's default input)
    Mutant('tie_in_selection', 'advent/domain_adaptation/selection.py',
           'else value > best[1]', 'else value >= best[1]',
           ['tests/test_promises.py', '-k', 'equal_miou']),
    Mutant('tie_in_entropy_selection', 'advent/domain_adaptation/selection.py',
           'value < best[1] if lower_is_better', 'value <= best[1] if lower_is_better',
           ['tests/test_selection.py']),
    Mutant('cache_signature_size_only', 'advent/domain_adaptation/eval_UDA.py',
           'return [stat.st_size, stat.st_mtime_ns]', 'return [stat.st_size]',
           ['tests/test_promises.py', '-k', 'retrained']),
    Mutant('ddp_buffers_summed', 'advent/utils/distributed.py',
           '    flat /= dist.get_world_size()\n', '',
           ['tests/test_ddp.py', '-k', 'two_gloo']),
    Mutant('resume_without_rng', 'advent/domain_adaptation/train_UDA.py',
           "set_rng_state(resume_state['rng'])", 'pass',
           ['tests/test_resume.py', '-k', 'interrupted']),
    # untested promises of the README (issue 25)
    Mutant('ddp_losses_summed', 'advent/utils/distributed.py',
           'return tensor / dist.get_world_size()', 'return tensor',
           ['tests/test_ddp.py', '-k', 'two_gloo']),
    Mutant('wait_model_ignored', 'advent/domain_adaptation/eval_UDA.py',
           'if not cfg.TEST.WAIT_MODEL:', 'if True:',
           ['tests/test_promises.py', '-k', 'wait_model']),
    Mutant('bn_only_target_skipped', 'advent/domain_adaptation/train_UDA.py',
           '                forward(seg, images_target)\n', '                pass\n',
           ['tests/test_promises.py', '-k', 'bn_only']),
    Mutant('random_train_ignored', 'advent/domain_adaptation/experiment.py',
           'if world_size > 1 else None', 'if world_size > 1 else seed',
           ['tests/test_promises.py', '-k', 'random_train']),
    Mutant('stage3_target_reads_easy_split', 'advent/domain_adaptation/experiment.py',
           'CityscapesDataSet(cfg.DATA_DIRECTORY_TARGET, cfg.DATA_LIST_TARGET, set=cfg.TRAIN.SET_TARGET,',
           'CityscapesDataSet(cfg.DATA_DIRECTORY_TARGET, cfg.DATA_LIST_SOURCE, set=cfg.TRAIN.SET_TARGET,',
           ['tests/test_promises.py', '-k', 'stage3']),
    Mutant('check_creates_output_folders', 'intrada/check.py',
           "            check_writable_dir(folder, 'output folder')",
           "            Path(folder).mkdir(parents=True, exist_ok=True); check_writable_dir(folder, 'output folder')",
           ['tests/test_promises.py', '-k', 'check_writes_nothing']),
    Mutant('adversarial_branch_cut', 'advent/domain_adaptation/train_UDA.py',
           '                backward(cfg.TRAIN.LAMBDA_ADV_MAIN * loss_adv_trg_main'
           ' + cfg.TRAIN.LAMBDA_ADV_AUX * loss_adv_trg_aux)\n', '',
           ['tests/test_train_faithful.py', '-k', 'default_hyperparameters']),
    # bugs the suite already caught before issue 25
    Mutant('detach_removed', 'advent/domain_adaptation/train_UDA.py',
           'entropy_map(pred_src.detach())', 'entropy_map(pred_src)',
           ['tests/test_train_faithful.py', '-k', 'three_iterations']),
    Mutant('snapshot_rule_off_by_one', 'advent/domain_adaptation/train_UDA.py',
           'and i_iter >= cfg.TRAIN.EARLY_STOP - 1', 'and i_iter >= cfg.TRAIN.EARLY_STOP',
           ['tests/test_train_faithful.py', '-k', 'stopping_rule']),
    Mutant('aux_head_ranks', 'entropy_rank/ranking.py',
           'pred_main = interp(model(image.to(device, non_blocking=True))[1])',
           'pred_main = interp(model(image.to(device, non_blocking=True))[0])',
           ['tests/test_fast_paths.py', '-k', 'ranking_equals_original']),
    Mutant('decay_not_accumulated', 'advent/domain_adaptation/optim.py',
           'd_p.add_(param, alpha=weight_decay)', 'd_p = param.grad.add(param, alpha=weight_decay)',
           ['tests/test_optimizer.py']),
]

IGNORED = shutil.ignore_patterns('.git', '.venv', '__pycache__', '*.egg-info', '.pytest_cache')


def copy_repository(destination):
    shutil.copytree(ROOT, destination, ignore=IGNORED, symlinks=True)
    return destination


def test_env(copy):
    """The copy's packages before any installed (editable) ones; one thread a test run."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONDONTWRITEBYTECODE='1')
    env['PYTHONPATH'] = os.pathsep.join([str(copy), env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    return env


def assert_imports_from(copy):
    """Fail loudly when `advent` would come from somewhere else than the copy."""
    probe = subprocess.run([sys.executable, '-c', 'import advent, entropy_rank, intrada; '
                            'print(advent.__file__, entropy_rank.__file__, intrada.__file__)'],
                           cwd=copy, env=test_env(copy), capture_output=True, text=True)
    files = probe.stdout.split()
    if probe.returncode != 0 or not files or not all(Path(f).resolve().is_relative_to(copy.resolve()) for f in files):
        sys.exit(f'error: the packages in {copy} are not the ones imported ({probe.stdout.strip()}'
                 f'{probe.stderr.strip()[-500:]})')


def run_tests(copy, tests):
    """(outcome, first failing test ids, seconds) of pytest -x on `tests` in `copy`."""
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-x', '-rfE', '-p', 'no:cacheprovider', *tests],
                              cwd=copy, env=test_env(copy), capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 'TIMEOUT', '', time.monotonic() - start
    seconds = time.monotonic() - start
    failed = re.findall(r'^(?:FAILED|ERROR) (\S+)', proc.stdout, flags=re.M)
    if proc.returncode == 0:
        return 'passed', '', seconds
    if proc.returncode == 1 and failed:
        return 'failed', ', '.join(failed), seconds
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ['']
    return f'pytest exit {proc.returncode}', tail[0][:120], seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description='Replay curated one-line bugs; report the test catching each.')
    parser.add_argument('--only', nargs='+', metavar='NAME', help='run these mutants only')
    parser.add_argument('--list', action='store_true', help='list the mutants and their tests, run nothing')
    parser.add_argument('--no-baseline', action='store_true',
                        help='skip the run of the unmutated copy (it shows that the tests pass without the bug)')
    args = parser.parse_args(argv)
    mutants = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in MUTANTS})
        if unknown:
            sys.exit(f'error: unknown mutant(s) {", ".join(unknown)}; --list shows them')
        mutants = [m for m in MUTANTS if m.name in args.only]
    problems = [p for p in (m.check(ROOT) for m in mutants) if p]
    if problems:
        sys.exit('error: the mutant list no longer matches the library:\n  ' + '\n  '.join(problems))
    if args.list:
        for m in mutants:
            print(f'{m.name:<32} {m.path:<42} {" ".join(m.tests)}')
        return 0

    rows, all_ok = [], True
    with tempfile.TemporaryDirectory(prefix='mutants.') as tmp:
        pristine = copy_repository(Path(tmp) / 'pristine')
        assert_imports_from(pristine)
        for m in mutants:
            copy = Path(tmp) / m.name
            shutil.copytree(pristine, copy, symlinks=True)
            m.apply(copy)
            outcome, detail, seconds = run_tests(copy, m.tests)
            caught = outcome == 'failed'
            all_ok &= caught
            rows.append((m.name, m.path, f'caught by {detail}' if caught else
                         ('SURVIVED' if outcome == 'passed' else f'{outcome}: {detail}'), seconds))
            print(f'{m.name}: {rows[-1][2]} ({seconds:.0f} s)', flush=True)
            shutil.rmtree(copy)
        if not args.no_baseline:
            selections = {tuple(m.tests) for m in mutants}
            for tests in sorted(selections):
                outcome, detail, seconds = run_tests(pristine, list(tests))
                all_ok &= outcome == 'passed'
                rows.append(('(none: baseline)', ' '.join(tests), outcome if outcome == 'passed'
                             else f'{outcome}: {detail}', seconds))
                print(f'baseline {" ".join(tests)}: {rows[-1][2]} ({seconds:.0f} s)', flush=True)

    print('\n| mutant | file | result | seconds |\n|---|---|---|---|')
    for name, path, result, seconds in rows:
        print(f'| {name} | {path} | {result} | {seconds:.0f} |')
    return 0 if all_ok else 1


if __name__ == '__main__':
    sys.exit(main())
