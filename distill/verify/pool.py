"""The verdicts: is a response right? One function per kind of answer, and one pool for many answers.

Curation, eval, `distill score`, `distill verify-code` and the toy check all judge through here, so the
same response gets the same verdict everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from distill.verify.code import extract_code, verify_code
from distill.verify.math import NO_CLOSING, Kind, MathScorer, score_text
from distill.verify.reasoning import final_answer_text
from distill.verify.sandbox import DEFAULT_LIMITS, Limits, LocalSandbox, Sandbox
from distill.verify.verdict import Verdict


def judge_math(response: str, reference: str, reasoning: bool = True, kind: Kind = "auto") -> Verdict:
    """Is the final answer equal to `reference`? kind: integer, choice (a letter), math, or auto (from the reference)."""
    text = final_answer_text(response, reasoning)
    return NO_CLOSING if text is None else score_text(text, reference, kind)


def judge_code(response: str, tests: Any, reasoning: bool = True, starter_code: str | None = None,
               entry_point: str | None = None, sandbox: Sandbox | None = None, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    """Does the last code block of the final answer pass `tests`? A HumanEval body is completed with its prompt."""
    text = final_answer_text(response, reasoning)
    if text is None:
        return NO_CLOSING
    return verify_code(extract_code(text), tests, starter_code, entry_point, sandbox, limits)


class VerdictPool:
    """Judges answers as they are submitted; `on_verdict(tag, verdict)` is called once per tag, in no fixed order.

    Math goes to `MathScorer` (worker processes, each distinct answer once; workers=0: in this process), code
    to threads that run the sandbox (workers of them; default: the CPU count). Verdicts of code come in
    `close`, on the caller's thread.
    """

    def __init__(self, on_verdict: Callable[[Any, Verdict], None], workers: int | None = None,
                 sandbox: Sandbox | None = None, limits: Limits | None = None):
        self.on_verdict = on_verdict
        self.math = MathScorer(on_verdict, workers=workers)
        self.code_threads = workers or len(os.sched_getaffinity(0))
        self.sandbox, self.limits = sandbox, limits or DEFAULT_LIMITS
        self.code: ThreadPoolExecutor | None = None
        self.pending: list[tuple[Any, Future]] = []

    def submit_math(self, tag, response: str, reference: str, reasoning: bool = True, kind: Kind = "auto") -> None:
        self.math.submit(tag, response, reference, reasoning, kind)

    def submit_code(self, tag, response: str, tests: Any, reasoning: bool = True, starter_code: str | None = None,
                    entry_point: str | None = None) -> None:
        if self.code is None:
            self.sandbox = self.sandbox or LocalSandbox()
            self.code = ThreadPoolExecutor(max_workers=self.code_threads)
        self.pending.append((tag, self.code.submit(judge_code, response, tests, reasoning, starter_code, entry_point,
                                                   self.sandbox, self.limits)))

    @property
    def distinct_answers(self) -> int:
        """Math answers parsed so far (repeats of an answer are judged once)."""
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


def judge_many(items: Iterable[dict], workers: int | None = None, sandbox: Sandbox | None = None,
               limits: Limits | None = None) -> list[Verdict]:
    """One verdict per item, in order. An item holds `submit_code`'s arguments when it has `tests`, else
    `submit_math`'s: {"response", "reference", "reasoning", "kind"}."""
    verdicts: list[Verdict | None] = []
    with VerdictPool(verdicts.__setitem__, workers, sandbox, limits) as judge:
        for index, item in enumerate(items):
            verdicts.append(None)
            (judge.submit_code if "tests" in item else judge.submit_math)(index, **item)
        judge.close()
    return verdicts  # type: ignore[return-value]
