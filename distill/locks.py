"""One writer per run directory: an exclusive lock that the OS drops when the holding process dies.

The lock file sits beside the directory (`.NAME.lock`), not inside it, because curate and report replace
their output directory whole at the end, and a lock inside it would be swapped out with it. It is removed
when released; a killed holder leaves it behind, unlocked, for the next run to take.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path

from distill.errors import DistillError


class RunDirectoryBusy(DistillError):
    """Another process is writing the same run directory."""


# Locks this process holds: path -> [open file, how many holds]. flock treats two opens of one file in the
# same process as two owners, so a re-entrant hold must reuse the open file.
_held: dict[Path, list] = {}


def lock_path(directory: str | Path) -> Path:
    directory = Path(directory).resolve()
    return directory.with_name(f".{directory.name}.lock")


def acquire(directory: str | Path, stage: str) -> None:
    """Hold the run directory for this process, or raise RunDirectoryBusy naming the holder."""
    path = lock_path(directory)
    if path in _held:
        _held[path][1] += 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise RunDirectoryBusy(f"{Path(directory)}: in use by {holder}; one run directory takes one writer at a "
                                   "time: wait for it to end, or use another directory") from None
        if _same_file(handle, path):
            break
        handle.close()  # the holder removed the file between our open and our lock: take the new one
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "stage": stage, "host": platform.node(),
                             "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}))
    handle.flush()
    _held[path] = [handle, 1]


def release(directory: str | Path) -> None:
    path = lock_path(directory)
    entry = _held.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0:
        del _held[path]
        path.unlink(missing_ok=True)  # removed while held; a process that opened it just before then sees the swap
        entry[0].close()


@contextlib.contextmanager
def holding(directory: str | Path, stage: str) -> Iterator[None]:
    acquire(directory, stage)
    try:
        yield
    finally:
        release(directory)


def _same_file(handle, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"distill {info['stage']} (PID {info['pid']} on {info['host']}, since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "another distill process (PID not yet recorded)"
