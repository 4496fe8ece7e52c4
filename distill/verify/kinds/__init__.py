"""The verifier kinds: every kind of answer distill judges, registered by name.

A kind (base.py) builds the item to judge from a trace row (curation, the student filter) or from an eval doc (eval,
lm-eval's hooks), and judges it; `verify.pool.VerdictPool` sends each item where its kind runs (the math worker
pool or the sandbox threads). A new kind is one module with a `VerifierKind` subclass, registered with
`register(TheKind())`: the built-in ones below.

The user-facing settings name kinds here, and only here:
- curate.verifier: auto asks every kind, math the kinds that check an answer, code those that check tests (none asks
  no kind: the screen keeps every trace unverified). A row is given only to kinds whose field it has: a non-empty
  answer, tests.
- curate.answer_kind and `distill score --answer-kind`: choice is the choice kind; auto, math and integer are the
  math kind in that mode (auto reads a lone letter as a choice, as it always did).
- an eval doc's "kind" (eval/docs.py): math, choice, or code (asserts or inputs and outputs, by the form of its tests).
Kinds are asked the latest registered first: a newer, more specific kind claims its rows before the general ones, and
the code kinds (registered after the answer kinds) judge a prompt that has tests and an answer, as verifier auto did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distill.verify.kinds.base import MATH_POOL, SANDBOX, AnswerItem, AnswerKind, Item, TraceOptions, VerifierKind, has_answer
from distill.verify.kinds.choice import ChoiceKind
from distill.verify.kinds.code import CodeItem, CodeKind
from distill.verify.kinds.code_asserts import CodeAssertsKind
from distill.verify.kinds.code_io import CodeIOKind
from distill.verify.kinds.math import MathKind
from distill.verify.sandbox import DEFAULT_LIMITS, Limits, Sandbox
from distill.verify.verdict import Verdict

__all__ = ["KINDS", "AnswerItem", "CodeItem", "Item", "TraceOptions", "VerifierKind", "answer_item", "code_item",
           "for_doc", "for_trace", "get", "judge", "judge_code", "judge_math", "register", "runs_code"]

KINDS: dict[str, VerifierKind] = {}


def register(kind: VerifierKind) -> VerifierKind:
    """Add a kind (or replace the one of its name); returns it."""
    if kind.checks not in ("answer", "tests") or kind.runs_in not in (MATH_POOL, SANDBOX):
        raise ValueError(f"verifier kind {kind.name!r}: checks must be answer or tests, runs_in {MATH_POOL} or {SANDBOX}")
    if kind.runs_in == MATH_POOL and not isinstance(kind, AnswerKind):
        raise TypeError(f"verifier kind {kind.name!r} runs in the math pool: it must be an AnswerKind (it scores answers)")
    KINDS.pop(kind.name, None)  # a replaced kind is asked as the latest registered
    KINDS[kind.name] = kind
    return kind


for _kind in (MathKind(), ChoiceKind(), CodeAssertsKind(), CodeIOKind()):
    register(_kind)


def get(name: str) -> VerifierKind:
    if name not in KINDS:
        raise ValueError(f"no verifier kind {name!r} (registered: {', '.join(KINDS)})")
    return KINDS[name]


def _asked() -> list[VerifierKind]:
    return list(reversed(KINDS.values()))


VERIFIER_CHECKS = {"auto": ("answer", "tests"), "math": ("answer",), "code": ("tests",)}


def for_trace(row: Mapping[str, Any], verifier: str, options: TraceOptions) -> Item | None:
    """The item that judges a trace row under curate.verifier (auto | math | code); None where the row has nothing
    that verifier checks (no reference)."""
    present = {"answer": has_answer(row), "tests": bool(row["tests"])}
    for kind in _asked():
        if kind.checks in VERIFIER_CHECKS[verifier] and present[kind.checks]:
            if (item := kind.from_trace(row, options)) is not None:
                return item
    return None


def for_doc(doc: Mapping[str, Any], response: str, reasoning: bool) -> Item:
    """The item that judges a response to a normalised eval doc."""
    for kind in _asked():
        if (item := kind.from_doc(doc, response, reasoning)) is not None:
            return item
    raise ValueError(f"no verifier kind judges eval docs of kind {doc.get('kind')!r} (registered: {', '.join(KINDS)})")


def runs_code(doc: Mapping[str, Any]) -> bool:
    """Does judging a response to this eval doc run code (which lm-eval runs only with unsafe_code)?"""
    return any(kind.runs_in == SANDBOX and kind.from_doc(doc, "", True) is not None for kind in _asked())


def answer_item(response: str, reference: str, reasoning: bool = True, answer_kind: str = "auto") -> Item:
    """A response and its reference answer under an answer_kind setting (curate.answer_kind, `distill score`)."""
    row = {"response": response, "answer": reference, "tests": None, "metadata": None}
    for kind in _asked():
        if kind.checks == "answer" and (item := kind.from_trace(row, TraceOptions(reasoning, answer_kind))) is not None:
            return item
    raise ValueError(f"no verifier kind takes answer_kind {answer_kind!r} (registered: {', '.join(KINDS)})")


def code_item(response: str, tests: Any, reasoning: bool = True, starter_code: str | None = None,
              entry_point: str | None = None) -> CodeItem:
    """A response and the tests its code must pass, judged by the code kind that takes them."""
    kind = next(k for k in _asked() if isinstance(k, CodeKind) and k.takes(tests))
    return kind.item(response, tests, reasoning, starter_code, entry_point)


def judge(item: Item, sandbox: Sandbox | None = None, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    """One item's verdict, in this thread (many items: `verify.pool.judge_many`)."""
    return get(item.kind).judge(item, sandbox, limits)


def judge_math(response: str, reference: str, reasoning: bool = True, kind: str = "auto") -> Verdict:
    """Is the final answer equal to `reference`? kind: integer, choice (a letter), math, or auto (from the reference)."""
    return judge(answer_item(response, reference, reasoning, kind))


def judge_code(response: str, tests: Any, reasoning: bool = True, starter_code: str | None = None,
               entry_point: str | None = None, sandbox: Sandbox | None = None, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    """Does the last code block of the final answer pass `tests`? A HumanEval body is completed with its prompt."""
    return judge(code_item(response, tests, reasoning, starter_code, entry_point), sandbox, limits)
