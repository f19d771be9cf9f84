"""The demo's runs as jobs: the scripts' entry points in worker processes, side by side.

The demo's model is small, and on a few CPU cores one run cannot keep them busy: a second
thread speeds a training run up far less than a second run beside it adds (docs/demo.md). Runs that do not depend on
each other (source only and the BN-only control beside AdvEnt; IntraDA beside AdvEnt
continued) therefore run at the same time, each in a process of its own with ONE thread. One thread per run
also makes every number independent of the machine: the sums inside a convolution are
split differently for different thread counts, so a run's weights, and its mIoU, would
otherwise depend on how many cores run it. With one thread, `--jobs 1` and `--jobs 4`
give the same results.json numbers (tests/test_demo.py checks it).

Each step writes its output (stdout and stderr, the scripts' progress bars among it) to
DIR/logs/STEP.log; the terminal shows one line per finished step and a bar of the steps
with the ones running and their time so far.
"""
import contextlib
import multiprocessing
import signal
import time
from pathlib import Path

from advent.dataset.loader import usable_cores
from advent.utils.progress import print_line, progress_bar

POLL_S = 0.5


def default_jobs():
    """How many runs at the same time: the usable cores, at most 3 (the default demo never has
    more runs ready at once; only the ablation's last four rows could use a fourth)."""
    return max(1, min(3, usable_cores()))


def run_steps(steps):
    """In a worker: run each (entry, argv, log) in order, with one thread; returns the seconds
    of each, or stops at the first non-zero exit status and returns it with the log."""
    import torch
    torch.set_num_threads(1)
    seconds = []
    for entry, argv, log in steps:
        start = time.time()
        with open(log, 'w') as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            status = entry(argv)
        if status != 0:
            return {'failed': log, 'status': status}
        seconds.append(round(time.time() - start, 1))
    return {'seconds': seconds}


class Job:
    """Steps running one after the other in one worker, under `name`."""

    def __init__(self, name, step_names, logs, pending):
        self.name, self.step_names, self.logs, self.pending = name, step_names, logs, pending
        self.seen = {}  # step -> when its log first appeared: when it started

    def current_step(self):
        """(step, seconds since it started) of the step running now, or None while queued."""
        now = time.time()
        for step, log in zip(self.step_names, self.logs):
            if log.exists():
                self.seen.setdefault(step, now)
        if not self.seen:
            return None
        step = max(self.seen, key=self.seen.get)
        return step, now - self.seen[step]


class Stages:
    """Runs the scripts' entry points in `jobs` worker processes, with their output in DIR/logs/,
    timing each step (`seconds`). Use as a context manager; start() returns a Job at once,
    finish(job) waits for it (showing what runs) and raises SystemExit if a step failed."""

    def __init__(self, out, jobs=1, total_steps=None):
        self.logs = Path(out) / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)
        self.seconds = {}
        self.jobs, self.total_steps = jobs, total_steps
        self.running = []
        self.pool = None
        self.bar = None

    def __enter__(self):
        # spawn: a fresh interpreter per worker, whatever threads this process has started. The
        # workers are born with Ctrl-C ignored (Python keeps an inherited SIG_IGN): this process
        # alone handles it and ends them, so that none prints a traceback, even mid-import.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.pool = multiprocessing.get_context('spawn').Pool(self.jobs)
        finally:
            signal.signal(signal.SIGINT, previous)
        return self

    def __exit__(self, kind, error, trace):
        if self.bar is not None:
            self.bar.close()
        if kind is None:
            self.pool.close()
        else:  # a step failed or the user interrupted: the other runs are of no use now
            self.pool.terminate()
        self.pool.join()

    def start(self, name, steps):
        """steps: [(step name, entry, argv)], run in this order in one worker."""
        logs = [self.logs / f"{step.replace(' ', '_')}.log" for step, _, _ in steps]
        for (step, _, argv), log in zip(steps, logs):
            log.unlink(missing_ok=True)  # an earlier demo's: its appearing marks the step's start
            print_line(f'-- {step}: {" ".join(argv)}  (log: {log})')
        work = [(entry, argv, str(log)) for (_, entry, argv), log in zip(steps, logs)]
        job = Job(name, [step for step, _, _ in steps], logs, self.pool.apply_async(run_steps, (work,)))
        self.running.append(job)
        return job

    def finish(self, job):
        """Wait for `job`; its steps' seconds go into `seconds`."""
        while not job.pending.ready():
            self.show_progress()
            job.pending.wait(POLL_S)
        outcome = job.pending.get()
        self.running.remove(job)
        if 'failed' in outcome:
            raise SystemExit(f'error: {job.name} failed (exit status {outcome["status"]}); see {outcome["failed"]}')
        for step, seconds in zip(job.step_names, outcome['seconds']):
            self.seconds[step] = seconds
            print_line(f'   {step} done in {seconds} s')
        self.show_progress()

    def show_progress(self):
        """A bar of the finished steps, with the running ones and their time so far."""
        if self.bar is None:
            self.bar = progress_bar(None, desc='demo steps done', total=self.total_steps)
        running = [step for step in (job.current_step() for job in self.running) if step]
        self.bar.set_postfix_str(', '.join(f'{name} {seconds:.0f} s' for name, seconds in running), refresh=False)
        self.bar.update(len(self.seconds) - self.bar.n)  # redraws as often as the bar does (a log: rarely)
