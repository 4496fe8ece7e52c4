"""Progress for long work: items, rate, ETA (a live rich bar on a terminal, plain lines in logs); plain formats."""

from __future__ import annotations

import atexit
import sys
import time
from collections.abc import Callable


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def fmt_count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


class RateMeter:
    """Items done out of a total, with rate and ETA measured from the first update of this process
    (so a resumed run does not count work it did not do)."""

    def __init__(self, total: int, done: int = 0):
        self.total = total
        self.start_done = done
        self.start_time = time.time()

    def line(self, done: int) -> str:
        elapsed = time.time() - self.start_time
        rate = (done - self.start_done) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_text = fmt_duration(eta) if eta == eta else "?"
        return f"{done}/{self.total} ({100 * done / max(self.total, 1):.0f}%) eta {eta_text}"


def say(message: str) -> None:
    print(message, file=sys.stdout, flush=True)


class Progress:
    """Progress of `total` items for long work. On a terminal: one live rich bar (label, bar, items, rate, ETA, and
    the caller's text). Elsewhere (logs, Slurm): the plain line `label done/total (p%) eta ...text` through `log`,
    at most every `every` seconds, exactly as tests and scripts parse it. `console`: a rich Console to draw on
    (default: stdout, live only when stdout is a TTY)."""

    def __init__(self, label: str, total: int, done: int = 0, every: float = 0.0,
                 log: Callable[[str], None] = say, console=None):
        self.label, self.total, self.every, self.log = label, total, every, log
        self.meter = RateMeter(total, done)
        self.last = time.time()
        live = console.is_terminal if console is not None else sys.stdout.isatty()
        self.bar = _live_bar(console, label, total, done) if live else None

    def update(self, done: int, text: str = "") -> None:
        if self.bar is not None:
            bar, task = self.bar
            bar.update(task, completed=done, text=text)
            if done >= self.total:
                self.close()
        elif time.time() - self.last >= self.every:
            self.log(f"{self.label} {self.meter.line(done)}{text}")
            self.last = time.time()

    def close(self) -> None:
        """Stop the live bar, leaving its last state on screen (plain mode: nothing to do)."""
        if self.bar is not None:
            self.bar[0].stop()
            self.bar = None


def _live_bar(console, label: str, total: int, done: int):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, ProgressColumn,
                               TaskProgressColumn, TextColumn, TimeRemainingColumn)
    from rich.table import Column
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{fmt_count(task.speed)}/s" if task.speed else "?/s")

    # on a narrow terminal the caller's text gives way (it is the only column that may wrap), never the counts
    text = TextColumn("{task.fields[text]}", markup=False, table_column=Column(no_wrap=False))
    bar = RichProgress(TextColumn("{task.description}", markup=False), BarColumn(bar_width=20), MofNCompleteColumn(),
                       TaskProgressColumn(), RateColumn(), TextColumn("eta"), TimeRemainingColumn(), text,
                       console=console or Console(file=sys.stdout))
    task = bar.add_task(label, total=total, completed=done, text="")
    bar.start()
    atexit.register(bar.stop)  # a run that dies mid-way still gives the terminal its cursor back
    return bar, task
