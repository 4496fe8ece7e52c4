"""Progress lines for long work: items, rate, ETA; and a plain duration format."""

from __future__ import annotations

import sys
import time


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
