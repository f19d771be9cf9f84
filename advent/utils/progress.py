"""Progress bars that suit a terminal and a log file alike.

On a terminal this is tqdm's bar, redrawn in place. When stderr goes to a file or a pipe
(a cluster job, `... > log 2>&1`), every redraw would stay in the log as a line of its
own; there the bar prints a plain line at most every LOG_INTERVAL_S seconds instead, and
a kept bar (leave=True) a last line when it ends. A bar that ends within the interval
and is not kept prints nothing.
"""
import re
import sys

from tqdm import tqdm

LOG_INTERVAL_S = 60.0
# In a log the bar graphic is noise: counts, times, rate and the postfix (the losses) stay.
LOG_FORMAT = '{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]'
_CURSOR_CODES = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')


class _LogLines:
    """A file for tqdm that turns its redraws ('\\r' + bar) into whole lines."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        for line in _CURSOR_CODES.sub('', text).replace('\r', '\n').split('\n'):
            if line.strip():
                self.stream.write(line.rstrip() + '\n')

    def flush(self):
        self.stream.flush()


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable, desc='', total=None, initial=0, leave=True, disable=False):
    """`iterable` with a progress bar on stderr (see the module docstring for log files)."""
    stream = sys.stderr
    if _is_terminal(stream):
        return tqdm(iterable, desc=desc, total=total, initial=initial, leave=leave, disable=disable, file=stream)
    # delay: a short bar that is not kept stays silent; a kept one says when it starts
    return tqdm(iterable, desc=desc, total=total, initial=initial, leave=leave, disable=disable,
                file=_LogLines(stream), mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S,
                delay=0 if leave else LOG_INTERVAL_S, bar_format=LOG_FORMAT, dynamic_ncols=False)


def print_line(message):
    """Print a line to stdout without breaking a bar being drawn on the terminal."""
    tqdm.write(message)


def close_all():
    """End every open bar (e.g. one an error interrupted), so that what follows starts its own line."""
    for bar in list(getattr(tqdm, '_instances', ())):
        bar.close()
