"""Free-form answers (MATH-500, AIME, the toy world): the final answer against the reference with math-verify, after
exact fast paths for integers and fractions (verify/math.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from distill.verify.kinds.base import AnswerItem, AnswerKind, TraceOptions
from distill.verify.math import score_text

MODES = ("auto", "math", "integer")


@dataclass(frozen=True, kw_only=True)
class MathItem(AnswerItem):
    # integer: a boxed integer first; math: math-verify; auto: from the reference (a lone letter is read as a choice)
    mode: str = "auto"


class MathKind(AnswerKind):
    name = "math"

    def item(self, response: str, reference: str, reasoning: bool = True, mode: str = "auto") -> MathItem:
        return MathItem(kind=self.name, response=response, reasoning=reasoning, reference=reference, mode=mode)

    def from_trace(self, row: Mapping[str, Any], options: TraceOptions) -> MathItem | None:
        if options.answer_kind not in MODES:
            return None
        return self.item(row["response"], row["answer"], options.reasoning, options.answer_kind)

    def from_doc(self, doc: Mapping[str, Any], response: str, reasoning: bool) -> MathItem | None:
        return self.item(response, doc["answer"], reasoning) if doc.get("kind") == "math" else None

    def scoring(self, item: MathItem):
        return score_text, (item.reference, item.mode)
