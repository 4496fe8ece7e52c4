"""The verdict pool: many items judged at once, each where its kind runs.

Curation, eval, `distill score` and the student filter judge through here (one item, one thread:
`verify.kinds.judge`), so the same response gets the same verdict everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from distill.verify import kinds
from distill.verify.kinds.base import MATH_POOL, Item
from distill.verify.math import MathScorer
from distill.verify.reasoning import final_answer_text
from distill.verify.sandbox import DEFAULT_LIMITS, Limits, LocalSandbox, Sandbox
from distill.verify.verdict import Verdict


class VerdictPool:
    """Judges items as they are submitted; `on_verdict(tag, verdict)` is called once per tag, in no fixed order.

    Kinds judged by their final answer go to `MathScorer` (worker processes, each distinct answer once; workers=0:
    in this process); code to threads that run the sandbox (workers of them; default: the CPU count), which is made
    at the first such item (`allow_weak`: see LocalSandbox). Verdicts of code come in `close`, on the caller's thread.
    """

    def __init__(self, on_verdict: Callable[[Any, Verdict], None], workers: int | None = None,
                 sandbox: Sandbox | None = None, limits: Limits | None = None, allow_weak: bool = False):
        self.on_verdict = on_verdict
        self.math = MathScorer(on_verdict, workers=workers)
        self.code_threads = workers or len(os.sched_getaffinity(0))
        self.sandbox, self.limits, self.allow_weak = sandbox, limits or DEFAULT_LIMITS, allow_weak
        self.code: ThreadPoolExecutor | None = None
        self.pending: list[tuple[Any, Future]] = []
        self.sandboxed = 0  # items sent to the sandbox

    def submit(self, tag, item: Item) -> None:
        kind = kinds.get(item.kind)
        if kind.runs_in == MATH_POOL:
            score, args = kind.scoring(item)  # type: ignore[attr-defined]  # an AnswerKind (register checks)
            self.math.submit(tag, final_answer_text(item.response, item.reasoning), score, args, kind.name)
            return
        if self.code is None:
            self.sandbox = self.sandbox or LocalSandbox(allow_weak=self.allow_weak)
            self.code = ThreadPoolExecutor(max_workers=self.code_threads)
        self.pending.append((tag, self.code.submit(kind.judge, item, self.sandbox, self.limits)))
        self.sandboxed += 1

    @property
    def distinct_answers(self) -> int:
        """Answers parsed so far (repeats of an answer are judged once)."""
        return self.math.distinct

    def close(self) -> None:
        """Wait for every verdict."""
        self.math.close()
        pending, self.pending = self.pending, []
        for tag, future in pending:
            self.on_verdict(tag, future.result())
        self._stop()

    def _stop(self) -> None:
        self.math.stop()
        if self.code is not None:
            self.code.shutdown(wait=True, cancel_futures=True)
            self.code = None

    def __enter__(self) -> VerdictPool:
        return self

    def __exit__(self, *exc) -> None:
        self._stop()


def judge_many(items: Iterable[Item], workers: int | None = None, sandbox: Sandbox | None = None,
               limits: Limits | None = None, allow_weak: bool = False) -> list[Verdict]:
    """One verdict per item (`verify.kinds` builds them), in order."""
    verdicts: list[Verdict | None] = []
    with VerdictPool(verdicts.__setitem__, workers, sandbox, limits, allow_weak) as pool:
        for index, item in enumerate(items):
            verdicts.append(None)
            pool.submit(index, item)
        pool.close()
    return verdicts  # type: ignore[return-value]
