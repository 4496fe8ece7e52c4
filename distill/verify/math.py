"""Math answers: the final answer (text after the last `</think>`) against a reference, with math-verify.

math-verify's timeouts use signal.alarm, which only works in a process's main thread: batches are
scored in worker processes (`score_many`), never in threads.
"""

from __future__ import annotations

import multiprocessing
import re
from fractions import Fraction
from functools import lru_cache
from dataclasses import asdict, dataclass
from typing import Literal
from collections.abc import Iterable

THINK_END = "</think>"
Kind = Literal["auto", "math", "integer", "choice"]
CHOICE = re.compile(r"^\(?([A-J])\)?$")
BOXED = re.compile(r"\\boxed\s*\{")


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str  # "correct", "wrong answer", "no closing </think>", "no answer", "verifier error: ..."
    extracted: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def final_answer_text(response: str, reasoning: bool) -> str | None:
    """The part of a response that holds the final answer; None when the reasoning never closed."""
    if not reasoning:
        return response
    if THINK_END not in response:
        return None
    return response.rsplit(THINK_END, 1)[1]


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


def _choice(text: str) -> str | None:
    boxed = last_boxed(text)
    if boxed:
        m = re.search(r"\b([A-J])\b", re.sub(r"\\text\{([^}]*)\}", r"\1", boxed))
        if m:
            return m.group(1)
    found = re.findall(r"(?:answer(?: is)?\s*[:：]?\s*\(?|\()([A-J])\b\)?", text, flags=re.IGNORECASE)
    return found[-1].upper() if found else None


def _integer(text: str) -> str | None:
    boxed = last_boxed(text)
    candidate = boxed if boxed is not None else None
    if candidate is None:
        return None
    candidate = re.sub(r"\\text\{[^}]*\}|\\,|\s|\^\{?\\circ\}?|,", "", candidate)
    return candidate if re.fullmatch(r"[-+]?\d+", candidate) else None


def score(response: str, reference: str, reasoning: bool = True, kind: Kind = "auto") -> Verdict:
    """Is `response`'s final answer equal to `reference`? The reason says why not."""
    text = final_answer_text(response, reasoning)
    if text is None:
        return Verdict(False, "no closing </think>")
    kind = detect_kind(reference) if kind == "auto" else kind
    if kind == "choice":
        got = _choice(text)
        if got is None:
            return Verdict(False, "no answer")
        ok = got == CHOICE.match(reference.strip()).group(1)
        return Verdict(ok, "correct" if ok else "wrong answer", got)
    if kind == "integer":
        got = _integer(text)
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
    try:
        ok = verify(gold, pred)
    except Exception as exc:
        return Verdict(False, f"verifier error: {type(exc).__name__}", extracted)
    return Verdict(bool(ok), "correct" if ok else "wrong answer", extracted)


def _score_tuple(args: tuple[str, str, bool, str]) -> Verdict:
    return score(*args)


def score_many(items: Iterable[tuple[str, str, bool, str]], workers: int | None = None, chunksize: int = 64) -> list[Verdict]:
    """Score (response, reference, reasoning, kind) tuples in worker processes, in order."""
    items = list(items)
    if len(items) < 2 * chunksize or workers == 0:
        return [_score_tuple(i) for i in items]
    context = multiprocessing.get_context("forkserver")
    with context.Pool(processes=workers or None) as pool:
        return pool.map(_score_tuple, items, chunksize=chunksize)
