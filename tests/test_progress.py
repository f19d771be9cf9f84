"""Progress bars: redrawn on a terminal, plain lines now and then in a log file."""
import io
import sys

from advent.utils import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def bar_output(monkeypatch, stream, items, **kwargs):
    monkeypatch.setattr(sys, 'stderr', stream)
    for _ in progress.progress_bar(range(items), desc='work', **kwargs):
        pass
    return stream.getvalue()


def test_log_file_gets_a_start_and_an_end_line_not_redraws(monkeypatch):
    text = bar_output(monkeypatch, io.StringIO(), 5000)
    assert '\r' not in text
    lines = text.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith('work:   0% 0/5000') and lines[1].startswith('work: 100% 5000/5000')


def test_log_file_gets_one_line_per_interval(monkeypatch):
    monkeypatch.setattr(progress, 'LOG_INTERVAL_S', 0.0)  # every update is due
    text = bar_output(monkeypatch, io.StringIO(), 50)
    assert '\r' not in text and text.endswith('\n')
    lines = text.splitlines()
    assert len(lines) > 10 and all(line.startswith('work:') for line in lines)


def test_short_bar_that_is_not_kept_stays_silent_in_a_log(monkeypatch):
    assert bar_output(monkeypatch, io.StringIO(), 20, leave=False) == ''


def test_terminal_keeps_the_redrawn_bar(monkeypatch):
    text = bar_output(monkeypatch, Terminal(), 20)
    assert '\r' in text and '20/20' in text


def test_close_all_ends_an_interrupted_bar_on_its_own_line(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, 'stderr', stream)
    bar = progress.progress_bar(range(10), desc='work')
    iterator = iter(bar)
    next(iterator)
    progress.close_all()
    assert stream.getvalue().endswith('\n') and bar.disable


def test_last_iteration_gives_the_training_bar_its_total():
    """The rule's values; that the loop runs exactly that many iterations and the bar ends at
    its total is test_train_faithful::test_stopping_rule_and_snapshot_names."""
    from easydict import EasyDict
    from advent.domain_adaptation.train_UDA import last_iteration

    def total(early_stop, save_every):
        return last_iteration(EasyDict(TRAIN={'EARLY_STOP': early_stop, 'SAVE_PRED_EVERY': save_every})) + 1
    # iterations 0 .. 700: the demo's 700-iteration run and its 200-iteration stage 3
    assert total(700, 100) == 701 and total(200, 100) == 201
    assert total(120000, 2000) == 120001
    assert total(5, 3) == 6      # no snapshot at 4 or 5: the loop runs to EARLY_STOP
    assert total(5, 2) == 5      # the snapshot at 4 (= EARLY_STOP - 1) ends it
