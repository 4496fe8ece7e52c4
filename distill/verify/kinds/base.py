"""What every verifier kind is: it builds a judge item from a trace row or an eval doc, and judges the item.

A kind judges either by reading the final answer (`AnswerKind`: scored in the math worker processes, where
math-verify's signal-based timeouts work, each distinct answer once) or by running code (judged in the threads that
drive the sandbox).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from distill.verify.math import NO_CLOSING
from distill.verify.reasoning import final_answer_text
from distill.verify.sandbox import DEFAULT_LIMITS, Limits, Sandbox
from distill.verify.verdict import Verdict

MATH_POOL = "math pool"
SANDBOX = "sandbox"


@dataclass(frozen=True, kw_only=True)
class Item:
    """One response to judge. Each kind adds what it checks the response against."""

    kind: str  # the name of the registered kind that judges it
    response: str
    reasoning: bool = True  # the answer is what follows the last </think>; False: the whole response


@dataclass(frozen=True, kw_only=True)
class AnswerItem(Item):
    reference: str  # the reference answer


@dataclass(frozen=True)
class TraceOptions:
    """The curation settings a kind reads when it builds an item from a trace row."""

    reasoning: bool = True  # curate.reasoning
    answer_kind: str = "auto"  # curate.answer_kind: auto | math | integer | choice


class VerifierKind(ABC):
    name: ClassVar[str]
    # The trace field it checks a response against: curate.verifier math asks only kinds that check the answer,
    # code only kinds that check tests, auto both (tests first).
    checks: ClassVar[Literal["answer", "tests"]]
    runs_in: ClassVar[Literal["math pool", "sandbox"]]

    @abstractmethod
    def from_trace(self, row: Mapping[str, Any], options: TraceOptions) -> Item | None:
        """The item for a trace row (trace columns: response, answer, tests as stored, metadata as JSON text), or
        None where the row is not of this kind. Asked only when the row has what the kind checks."""

    @abstractmethod
    def from_doc(self, doc: Mapping[str, Any], response: str, reasoning: bool) -> Item | None:
        """The item for a response to a normalised eval doc (eval/docs.py), or None where the doc is not of this kind."""

    @abstractmethod
    def judge(self, item: Item, sandbox: Sandbox | None = None, limits: Limits = DEFAULT_LIMITS) -> Verdict:
        """The item's verdict, in this thread."""


class AnswerKind(VerifierKind):
    """A kind whose verdict depends only on the final-answer text: scored in the math worker pool."""

    checks = "answer"
    runs_in = MATH_POOL

    @abstractmethod
    def scoring(self, item: AnswerItem) -> tuple[Callable[..., Verdict], tuple]:
        """(score, args): the verdict of the item's final-answer text is score(text, *args). score must be picklable
        (a module-level function, or a method of this kind): it runs in worker processes."""

    def judge(self, item: AnswerItem, sandbox: Sandbox | None = None, limits: Limits = DEFAULT_LIMITS) -> Verdict:
        text = final_answer_text(item.response, item.reasoning)
        if text is None:
            return NO_CLOSING
        score, args = self.scoring(item)
        return score(text, *args)


def has_answer(row: Mapping[str, Any]) -> bool:
    return row.get("answer") is not None and str(row["answer"]).strip() != ""
