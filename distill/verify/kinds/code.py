"""What the two code kinds share: the last code block of the final answer, run against the problem's tests in the
sandbox (verify/code.py). They differ in the tests they take."""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from distill.verify.code import extract_code, verify_code
from distill.verify.kinds.base import SANDBOX, Item, TraceOptions, VerifierKind
from distill.verify.math import NO_CLOSING
from distill.verify.reasoning import final_answer_text
from distill.verify.sandbox import DEFAULT_LIMITS, Limits, Sandbox
from distill.verify.stored_tests import reference_tests
from distill.verify.verdict import Verdict


@dataclass(frozen=True, kw_only=True)
class CodeItem(Item):
    tests: Any  # as the prompt gave them (verify/code.py names the formats)
    starter_code: str | None = None  # the prompt's code: a HumanEval prompt, a LiveCodeBench class to complete
    entry_point: str | None = None  # the function check(candidate) tests call; with it, a body is completed


class CodeKind(VerifierKind):
    checks = "tests"
    runs_in = SANDBOX

    @abstractmethod
    def takes(self, tests: Any) -> bool:
        """Are these tests (as the prompt gave them) of this kind?"""

    def item(self, response: str, tests: Any, reasoning: bool = True, starter_code: str | None = None,
             entry_point: str | None = None) -> CodeItem:
        return CodeItem(kind=self.name, response=response, reasoning=reasoning, tests=tests, starter_code=starter_code,
                         entry_point=entry_point)

    def from_trace(self, row: Mapping[str, Any], options: TraceOptions) -> CodeItem | None:
        tests = reference_tests(row["tests"])
        if not self.takes(tests):
            return None
        metadata = json.loads(row["metadata"] or "{}")
        return self.item(row["response"], tests, options.reasoning, metadata.get("starter_code"), metadata.get("entry_point"))

    def from_doc(self, doc: Mapping[str, Any], response: str, reasoning: bool) -> CodeItem | None:
        if doc.get("kind") != "code":
            return None
        tests = json.loads(doc["tests"])
        if not self.takes(tests):
            return None
        return self.item(response, tests, reasoning, doc.get("starter_code") or None, doc.get("entry_point") or None)

    def judge(self, item: CodeItem, sandbox: Sandbox | None = None, limits: Limits = DEFAULT_LIMITS) -> Verdict:
        text = final_answer_text(item.response, item.reasoning)
        if text is None:
            return NO_CLOSING
        return verify_code(extract_code(text), item.tests, item.starter_code, item.entry_point, sandbox, limits)


def io_tests(tests: Any) -> bool:
    """LiveCodeBench's format: a non-empty list of {input, output, testtype} objects."""
    return isinstance(tests, list) and bool(tests) and all(isinstance(test, dict) for test in tests)
