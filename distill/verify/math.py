"""Math answers: the final-answer text against a reference, with fast paths before math-verify.

math-verify's timeouts use signal.alarm, which only works in a process's main thread: batches are
scored in worker processes (`MathScorer`), never in threads. The entry points are the math and choice kinds
(`verify.kinds`), and `verify.kinds.judge_math` for one response.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

from distill.verify.verdict import Verdict

Kind = Literal["auto", "math", "integer", "choice"]
CHOICE = re.compile(r"^\(?([A-J])\)?$")
BOXED = re.compile(r"\\boxed\s*\{")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, braces balanced."""
    matches = list(BOXED.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i].strip()
    return None


def detect_kind(reference: str) -> str:
    ref = reference.strip()
    if CHOICE.match(ref):
        return "choice"
    if re.fullmatch(r"[-+]?\d+", ref):
        return "integer"
    return "math"


CHOICE_AFTER_ANSWER = re.compile(r"(?i:answer)(?:\s+is)?[\s:：*]*(?:\$|\\text(?:bf)?\{|\(|\*\*)?\s*([A-J])(?![\w'])")
CHOICE_ALONE = re.compile(r"[(*$]*\s*([A-J])\s*[)*$.]*")  # a last line that is only the letter


def _choice(text: str) -> str | None:
    boxed = last_boxed(text)
    if boxed:
        m = re.search(r"\b([A-J])\b", re.sub(r"\\text\{([^}]*)\}", r"\1", boxed))
        if m:
            return m.group(1)
    # Only capital letters are options ("the answer is a mixture" is not option A); "answer" in any case.
    found = CHOICE_AFTER_ANSWER.findall(text)
    if found:
        return found[-1]
    last_line = text.strip().rsplit("\n", 1)[-1]
    alone = CHOICE_ALONE.fullmatch(last_line.strip())
    return alone.group(1) if alone else None


def boxed_integer_text(text: str) -> str | None:
    """The last \\boxed{...} as an integer's digits (units, spaces and thousands commas dropped), else None."""
    candidate = last_boxed(text)
    if candidate is None:
        return None
    candidate = re.sub(r"\\text\{[^}]*\}|\\,|\s|\^\{?\\circ\}?|,", "", candidate)
    return candidate if re.fullmatch(r"[-+]?\d+", candidate) else None


NO_CLOSING = Verdict(False, "no closing </think>")


def score_text(text: str, reference: str, kind: Kind = "auto") -> Verdict:
    """Is the final-answer text (what `final_answer_text` returns) equal to `reference`? The reason says why not."""
    kind = detect_kind(reference) if kind == "auto" else kind
    if kind == "choice":
        got = _choice(text)
        if got is None:
            return Verdict(False, "no answer")
        ok = got == CHOICE.match(reference.strip()).group(1)
        return Verdict(ok, "correct" if ok else "wrong answer", got)
    if kind == "integer":
        got = boxed_integer_text(text)
        if got is not None:
            ok = int(got) == int(reference)
            return Verdict(ok, "correct" if ok else "wrong answer", got)
        # No boxed integer: fall through to math-verify, which may still find one.
    boxed = last_boxed(text)
    if boxed is not None:
        if _plain_form(boxed) == _plain_form(reference):
            return Verdict(True, "correct", boxed)  # identical up to spacing and delimiters: no need to parse
        got, want = _rational(boxed), _rational(reference)
        if got is not None and want is not None:  # both exact integers / fractions: compare exactly
            return Verdict(got == want, "correct" if got == want else "wrong answer", boxed)
    return _math_verify(text, reference)


RATIONAL = re.compile(r"^(-?)(?:\\[dt]?frac\{(-?\d+)\}\{(\d+)\}|(-?\d+)/(\d+)|(-?\d+))$")


def _rational(latex: str) -> Fraction | None:
    """An integer or a plain fraction (\\frac{a}{b}, a/b) as an exact Fraction; None for anything else.

    Decimals are left to math-verify, which compares them with rounding."""
    m = RATIONAL.match(_plain_form(latex))
    if not m:
        return None
    sign, fa, fb, sa, sb, integer = m.groups()
    try:
        value = Fraction(int(integer)) if integer else Fraction(int(fa or sa), int(fb or sb))
    except ZeroDivisionError:
        return None
    return -value if sign else value


def _plain_form(latex: str) -> str:
    return re.sub(r"\\left|\\right|\\[,;!]|\s|\$", "", latex)


@lru_cache(maxsize=4096)
def _gold(reference: str):
    """The parsed reference; cached, since the k samples of a prompt share it."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    gold = parse(f"${reference}$", extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()])
    return gold or parse(reference)


# math-verify 0.9.0's verify(float_rounding=6, numeric_precision=15) calls two numbers equal when they round
# to the same 6 decimals (|a - b| <= 1e-6) or when a - b evaluates to 0 at 15 digits; anything closer than
# this margin (100x that, plus room for the precision of parsed Floats) is left to verify.
CLEARLY_APART_ABS = 1e-4
CLEARLY_APART_REL = 1e-6
EVALF_SECONDS = 1


def _real_number(expr):
    """The value of a parsed answer that is a plain real number (a sympy Float or exact Number), else None.

    Only expressions with no free symbols, no percent marker (UnevaluatedExpr: math-verify compares 9% with 9),
    no unevaluated calculus, no matrices, that evalf turns into a finite real number within EVALF_SECONDS."""
    import sympy
    from math_verify.errors import TimeoutException
    from math_verify.utils import timeout
    from sympy.matrices import MatrixBase
    from sympy.matrices.expressions import MatrixExpr

    if not isinstance(expr, sympy.Expr) or isinstance(expr, (MatrixBase, MatrixExpr)) or expr.free_symbols:
        return None
    try:
        if expr.has(sympy.UnevaluatedExpr, sympy.Integral, sympy.Sum, sympy.Product, sympy.Limit, sympy.Derivative):
            return None
        value = timeout(EVALF_SECONDS)(expr.evalf)(15)
    except (Exception, TimeoutException):  # signal.alarm outside the main thread raises too: then verify decides
        return None
    if not isinstance(value, sympy.Number) or not value.is_finite or (isinstance(value, sympy.Float) and value._prec < 40):
        return None
    return value


@lru_cache(maxsize=4096)
def _gold_numbers(reference: str) -> tuple:
    return tuple(_real_number(g) for g in _gold(reference))


def _clearly_not_equal(reference: str, gold: list, pred: list) -> bool:
    """True only where math-verify's verify(gold, pred) is bound to say False, decided without sympy's simplify.

    verify is any() over the pairs of gold x pred extractions: two strings are equal when equal after strip
    (and not empty), a string and a sympy object never; two sympy objects here only when both are plain real
    numbers that differ by clearly more than verify's own tolerance (CLEARLY_APART_*), so that neither its
    structural ==, its 6-decimal rounding, its 15-digit evalf of a - b nor simplify(a - b) == 0 can hold.
    Anything else (sets, intervals, equations, matrices, symbols, complex numbers, percentages, near-equal
    numbers) returns False: verify decides."""
    import sympy
    from sympy.matrices import MatrixBase

    numbers, pred_numbers = _gold_numbers(reference), {}
    for g, a in zip(gold, numbers):
        for i, p in enumerate(pred):
            if isinstance(g, str) and isinstance(p, str):
                if g.strip() and g.strip() == p.strip():
                    return False
            elif isinstance(g, str) or isinstance(p, str):
                if not isinstance(g, (str, sympy.Basic, MatrixBase)) or not isinstance(p, (str, sympy.Basic, MatrixBase)):
                    return False
                # a string and a sympy object: verify compares nothing
            else:
                if a is None:
                    return False
                if i not in pred_numbers:
                    pred_numbers[i] = _real_number(p)
                b = pred_numbers[i]
                if b is None:
                    return False
                a_f, b_f = sympy.Float(a, 30), sympy.Float(b, 30)
                if not abs(a_f - b_f) > CLEARLY_APART_ABS + CLEARLY_APART_REL * max(abs(a_f), abs(b_f)):
                    return False
    return True


def _math_verify(text: str, reference: str) -> Verdict:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    try:
        gold = _gold(reference)
        pred = parse(text, extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()])
    except Exception as exc:  # math-verify raises on pathological inputs
        return Verdict(False, f"verifier error: {type(exc).__name__}")
    if not pred:
        return Verdict(False, "no answer")
    extracted = str(pred[-1])
    if _clearly_not_equal(reference, gold, pred):  # two different numbers: no simplify needed to say so
        return Verdict(False, "wrong answer", extracted)
    try:
        ok = verify(gold, pred)
    except Exception as exc:
        return Verdict(False, f"verifier error: {type(exc).__name__}", extracted)
    return Verdict(bool(ok), "correct" if ok else "wrong answer", extracted)


# What a worker scores: (score function, final-answer text, the function's other arguments); the verdict is
# score(text, *args). The function travels to the worker by reference (a module function, or a registered kind's
# method), so a verifier kind defined anywhere importable is scored here like math.
Answer = tuple[Callable[..., Verdict], str, tuple]


def _score_texts(items: list[Answer]) -> list[Verdict]:
    return [score(text, *args) for score, text, args in items]


REMEMBERED_ANSWERS = 200_000


class MathScorer:
    """Scores responses as they are submitted: in worker processes, in chunks, each distinct answer once.

    The verdict depends only on (final-answer text, how it is scored: reference and kind), and the k samples of a
    prompt often end in the same answer: such repeats wait for the first one's verdict instead of being parsed again.
    `on_verdict(tag, verdict)` is called for every submitted tag, from `submit` or `close`, in no fixed order.
    Runs with fewer than `chunk` distinct answers (or workers=0) are scored inline: no pool to start.
    """

    def __init__(self, on_verdict: Callable[[Any, Verdict], None], workers: int | None = None, chunk: int = 256):
        self.on_verdict = on_verdict
        self.workers = len(os.sched_getaffinity(0)) if workers is None else workers
        self.chunk = chunk
        self.verdicts: dict[bytes, Verdict] = {}  # by answer key, once known
        self.waiting: dict[bytes, list] = {}  # answer key -> tags waiting for its verdict
        self.buffer: list[tuple[bytes, Answer]] = []
        self.in_flight: deque = deque()  # (keys, AsyncResult) per chunk sent, oldest first
        self.pool = None
        self.distinct = 0

    def submit(self, tag, text: str | None, score: Callable[..., Verdict], args: tuple, name: str) -> None:
        """A final-answer text, scored as `score(text, *args)` in a worker (an answer kind's `scoring`). `name` tells
        score functions apart (repeats are keyed by it, the arguments and the text). text None: the reasoning never
        closed."""
        if text is None:
            self.on_verdict(tag, NO_CLOSING)
            return
        key = hashlib.sha1("\0".join([name, *map(str, args), text]).encode()).digest()
        if key in self.verdicts:
            self.on_verdict(tag, self.verdicts[key])
        elif key in self.waiting:
            self.waiting[key].append(tag)
        else:
            self.waiting[key] = [tag]
            self.buffer.append((key, (score, text, args)))
            self.distinct += 1
            if len(self.buffer) >= self.chunk and self.workers > 0:
                self._send()

    def close(self) -> None:
        """Score what is left and wait for every verdict."""
        if self.buffer:
            if self.pool is None:
                self._record([k for k, _ in self.buffer], _score_texts([item for _, item in self.buffer]))
                self.buffer = []
            else:
                self._send()
        while self.in_flight:
            keys, result = self.in_flight.popleft()
            self._record(keys, result.get())
        self.stop()

    def _send(self) -> None:
        if self.pool is None:
            context = multiprocessing.get_context("forkserver")
            # Workers fork from the server with math-verify (sympy, antlr) already imported: ~0.5 s CPU each saved.
            # No effect when the server was started earlier in this process.
            context.set_forkserver_preload(["distill.verify.math", "math_verify"])
            self.pool = context.Pool(processes=self.workers)
        keys, items = [k for k, _ in self.buffer], [item for _, item in self.buffer]
        self.buffer = []
        self.in_flight.append((keys, self.pool.apply_async(_score_texts, (items,))))
        self._collect(block=len(self.in_flight) > 2 * self.workers)

    def _collect(self, block: bool) -> None:
        """Record the chunks that are done; with block, wait for the oldest first (bounds what is in flight)."""
        if block:
            self.in_flight[0][1].wait()
        entries = [(keys, result, result.ready()) for keys, result in self.in_flight]  # ready() may turn True any time
        self.in_flight = deque((keys, result) for keys, result, done in entries if not done)
        for keys, result, done in entries:
            if done:
                self._record(keys, result.get())

    def _record(self, keys: list[bytes], verdicts: list[Verdict]) -> None:
        if len(self.verdicts) > REMEMBERED_ANSWERS:
            self.verdicts.clear()  # repeats come from samples of one prompt, close together: old answers rarely recur
        for key, verdict in zip(keys, verdicts):
            self.verdicts[key] = verdict
            for tag in self.waiting.pop(key):
                self.on_verdict(tag, verdict)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool = None

    def __enter__(self) -> MathScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

