"""The commands of the README and of every docs/*.md page, taken from the pages themselves,
run from another working folder as the README's opening section says (the environment
active: `python` and the console commands are the environment's). Those that need a dataset
or a long run are checked through `--help`; the setup check runs on a tiny tree; the demo's
quick mode runs with its output piped to a file, which must stay a short log. The setup
command itself is what .ci/run runs. Every relative link of those pages names a file of the
repository."""
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tinydata import make_tree, stage1_config, write_config

ROOT = Path(__file__).resolve().parents[1]
ENV_BIN = Path(sys.executable).parent
STAGE_SCRIPTS = {'advent/scripts/train.py', 'advent/scripts/test.py', 'entropy_rank/entropy.py',
                 'intrada/train.py', 'intrada/test.py'}
# Not run here: the test suite itself, and the setup (.ci/run runs it).
NOT_RUN = {('module', 'pytest'), ('module', 'venv')}


PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]


def page_commands(text):
    """Every command line of a page's bash blocks, and every inline `python ...` or
    `intrada-...` command."""
    lines = []
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            command = line.split(' #')[0].strip()  # a comment follows a command, or is the line
            if command and not command.startswith('#'):
                lines.append(command)
    lines += re.findall(r'`((?:python|intrada-)[^`]*)`', text)
    commands = []
    for line in lines:
        commands += [part.strip() for part in line.split('&&') if part.strip()]
    return commands


def readme_commands():
    """The commands of the README and of every docs page."""
    return [command for page in PAGES for command in page_commands(page.read_text())]


def relative_links(text):
    """The targets of a page's Markdown links and images that are not web addresses or anchors."""
    targets = re.findall(r'!?\[[^\]]*\]\(([^)\s]+)\)', text)
    return [target.split('#')[0] for target in targets
            if not re.match(r'[a-z]+:', target) and not target.startswith('#')]


def entry_point(command):
    """('script', path), ('module', name) or ('console', name) that a command runs, or None."""
    words = shlex.split(command)
    if words[0] in ('python', 'python3') and len(words) > 1:
        if words[1] == '-m':
            return 'module', words[2]
        if words[1].endswith('.py'):
            return 'script', words[1]
    if words[0] == 'torchrun':
        return 'script', next(word for word in words if word.endswith('.py'))
    if words[0].startswith('intrada-'):
        return 'console', words[0]
    return None


def argv_of(entry):
    """The command line of an entry point as the active environment runs it, from any folder."""
    kind, name = entry
    if kind == 'script':
        return [sys.executable, str(ROOT / name)]
    if kind == 'module':
        return [sys.executable, '-m', name]
    console = ENV_BIN / name
    assert console.exists(), f'{name} is not installed in {ENV_BIN}: the README\'s setup (pip install -e .) creates it'
    return [str(console)]


def run_ok(argv, cwd, **kwargs):
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, **kwargs)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and 'Traceback' not in output, f'{shlex.join(argv)}:\n{output[-3000:]}'
    return proc


COMMANDS = readme_commands()
ENTRIES = sorted({entry for entry in map(entry_point, COMMANDS) if entry and entry not in NOT_RUN})


def test_the_readme_documents_every_stage_script():
    assert STAGE_SCRIPTS <= {name for kind, name in ENTRIES if kind == 'script'}


def test_the_commands_are_read_from_the_readme_and_from_the_docs_pages():
    assert page_commands('```bash\npython -m intrada.demo --quick  # a comment\n```\n'
                         'and `python entropy_rank/entropy.py --help` inline') == [
        'python -m intrada.demo --quick', 'python entropy_rank/entropy.py --help']
    docs_only = [command for page in PAGES[1:] for command in page_commands(page.read_text())]
    assert any(entry_point(command) == ('module', 'intrada.predict') for command in docs_only)


@pytest.mark.parametrize('page', PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_names_a_file_of_the_repository(page):
    links = relative_links(page.read_text())
    missing = [link for link in links if not (page.parent / link).resolve().is_file()]
    assert not missing, f'{page.relative_to(ROOT)} links to missing files: {missing}'


def test_the_link_reader_finds_links_and_images_but_not_web_addresses():
    text = '[a](docs/a.md#part) ![b](b.png) [c](https://example.org) [d](#anchor) `[e](x)`'
    assert relative_links(text) == ['docs/a.md', 'b.png', 'x']


@pytest.mark.parametrize('entry', ENTRIES, ids=lambda entry: entry[1])
def test_every_readme_entry_point_answers_help(entry, tmp_path):
    proc = run_ok(argv_of(entry) + ['--help'], tmp_path)
    assert proc.stdout.startswith('usage:')


def test_the_readme_check_command_passes_on_a_tiny_tree(tmp_path):
    commands = [c for c in COMMANDS if '--cfg' in c.split()
                and entry_point(c) in (('module', 'intrada.check'), ('console', 'intrada-check'))]
    assert commands, 'the README shows no check command'
    tree = make_tree(tmp_path / 'tree')
    cfg = write_config(tmp_path / 'tiny.yml', stage1_config(tree, tmp_path / 'experiments'))
    for command in dict.fromkeys(commands):
        words = shlex.split(command)
        words[words.index('--cfg') + 1] = str(cfg)  # the README's config names the real datasets
        proc = run_ok(argv_of(entry_point(command)) + words[words.index('--cfg'):], tmp_path)
        assert 'checks passed' in proc.stdout


def test_the_readme_quick_demo_runs_and_its_piped_log_is_short(tmp_path):
    commands = [c for c in COMMANDS if entry_point(c) == ('module', 'intrada.demo') and '--quick' in c.split()]
    assert commands, 'the README shows no quick demo command'
    log = tmp_path / 'demo.log'
    with open(log, 'w') as out:  # as `python -m intrada.demo --quick > demo.log 2>&1`
        proc = subprocess.run(argv_of(('module', 'intrada.demo')) + shlex.split(commands[0])[3:]
                              + ['--out', str(tmp_path / 'demo')], cwd=tmp_path, stdout=out,
                              stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert proc.returncode == 0 and 'Traceback' not in text, text[-3000:]
    assert '\r' not in text  # no progress-bar redraws
    assert 'IntraDA (stage 3)' in text and len(text.splitlines()) < 200


# docs/your_own_data.md: every command, in order, from a scratch folder. The generator writes
# a few scenes; the configs the page names are copied with their data and experiment paths
# moved into that folder and a two-iteration schedule (the mechanism of the check test above:
# the page's commands, tiny configs). The entry points run in this process (the --help test
# above starts each one as a program), which saves a Python start and a torch import each.
OWN_DATA_PAGE = ROOT / 'docs' / 'your_own_data.md'
TINY_GENERATOR = ['--n-source', '3', '--n-target-train', '4', '--n-target-val', '2', '--size', '64', '32']
TINY_SIZE = [64, 32]


def tiny_copy(value, folder):
    """A config with its project-relative data/ and experiments/ paths under `folder`."""
    if isinstance(value, dict):
        return {key: tiny_copy(item, folder) for key, item in value.items()}
    if isinstance(value, list):
        return [tiny_copy(item, folder) for item in value]
    if isinstance(value, str) and value.startswith(('data/', 'experiments/')):
        return str(folder / re.sub(r'model_\d+\.pth$', 'model_2.pth', value))
    return value


def in_process(entry):
    """The function behind an entry point: argv -> exit status."""
    from advent.cli import run_guarded, test_main, train_main
    from entropy_rank import entropy
    from intrada import check, pipeline
    from intrada.demo.synthetic import cli as synthetic
    return {('module', 'intrada.demo.synthetic'): synthetic.main, ('module', 'intrada.check'): check.console_main,
            ('module', 'intrada.pipeline'): pipeline.main,
            ('script', 'advent/scripts/train.py'): train_main, ('script', 'intrada/train.py'): train_main,
            ('script', 'advent/scripts/test.py'): test_main, ('script', 'intrada/test.py'): test_main,
            ('script', 'entropy_rank/entropy.py'): lambda argv: run_guarded(entropy.main, entropy.get_arguments(argv)),
            }[entry]


def test_the_own_data_page_runs_as_written(tmp_path, monkeypatch, capsys, one_torch_thread):
    import yaml
    commands = page_commands(OWN_DATA_PAGE.read_text())
    configs = {}
    for name in dict.fromkeys(w for c in commands for w in shlex.split(c) if w.startswith('configs/')):
        cfg = tiny_copy(yaml.safe_load((ROOT / name).read_text()), tmp_path)
        cfg.update(GPU_ID=-1, NUM_WORKERS=0, EXP_ROOT=str(tmp_path / 'experiments'),
                   EXP_ROOT_SNAPSHOT=str(tmp_path / 'experiments' / 'snapshots'),
                   EXP_ROOT_LOGS=str(tmp_path / 'experiments' / 'logs'))
        cfg['TRAIN'].update(MAX_ITERS=4, EARLY_STOP=2, SAVE_PRED_EVERY=2, INPUT_SIZE_SOURCE=TINY_SIZE,
                            INPUT_SIZE_TARGET=TINY_SIZE)
        cfg['TEST'].update(SNAPSHOT_STEP=2, SNAPSHOT_MAXITER=2, INPUT_SIZE_TARGET=TINY_SIZE,
                           OUTPUT_SIZE_TARGET=TINY_SIZE)
        configs[name] = str(write_config(tmp_path / name, cfg))
    monkeypatch.chdir(tmp_path)  # the page's relative paths (the generator's folder, --out-dir) land here
    ran = []
    for command in commands:
        entry = entry_point(command)
        words = [configs.get(word, word) for word in shlex.split(command)]
        extra = TINY_GENERATOR if entry == ('module', 'intrada.demo.synthetic') else []
        status = in_process(entry)(words[3 if entry[0] == 'module' else 2:] + extra)
        output = capsys.readouterr()
        assert status == 0, f'{command}:\n{output.out[-2000:]}\n{output.err[-2000:]}'
        ran.append(entry[1])
        if entry == ('module', 'intrada.check'):
            assert 'checks passed' in output.out
    assert ran[:2] == ['intrada.demo.synthetic', 'intrada.check'] and 'intrada.pipeline' in ran
    assert {'advent/scripts/train.py', 'entropy_rank/entropy.py', 'intrada/test.py'} <= set(ran)
    rank = tmp_path / 'experiments' / 'folder_demo_rank'
    assert len((rank / 'easy_split.txt').read_text().split()) == 2
    assert (tmp_path / 'experiments' / 'snapshots' / 'folder_demo_intrada' / 'all_res.json').is_file()
    # the run without one target label: snapshots picked by TEST.SELECTION, no mIoU anywhere
    for stage in ('advent', 'intrada'):
        cache = json.loads((tmp_path / 'experiments' / 'snapshots' / f'folder_demo_{stage}_unlabelled' /
                            'all_res.json').read_text())
        assert cache['results'] == {} and set(cache['label_free']) == {'2'}
    assert len((tmp_path / 'experiments' / 'folder_demo_unlabelled_rank' / 'easy_split.txt').read_text().split()) == 2
