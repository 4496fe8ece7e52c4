"""Multiple choice (GPQA): the letter the response names (boxed, after "Answer", or alone on the last line) against
the reference letter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distill.verify.kinds.base import AnswerItem, AnswerKind, TraceOptions
from distill.verify.math import score_text


class ChoiceKind(AnswerKind):
    name = "choice"

    def item(self, response: str, letter: str, reasoning: bool = True) -> AnswerItem:
        return AnswerItem(kind=self.name, response=response, reasoning=reasoning, reference=letter)

    def from_trace(self, row: Mapping[str, Any], options: TraceOptions) -> AnswerItem | None:
        return self.item(row["response"], row["answer"], options.reasoning) if options.answer_kind == "choice" else None

    def from_doc(self, doc: Mapping[str, Any], response: str, reasoning: bool) -> AnswerItem | None:
        return self.item(response, doc["answer"], reasoning) if doc.get("kind") == "choice" else None

    def scoring(self, item: AnswerItem):
        return score_text, (item.reference, "choice")
