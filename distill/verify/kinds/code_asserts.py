"""Code checked by asserts (HumanEval, MBPP): a list of assert statements, or a check(candidate) function run on the
entry point named in the prompt's metadata (a HumanEval body is completed with its prompt first).

Tests of no known form come here too: the verifier refuses them with a `code error` verdict that says why.
"""

from __future__ import annotations

from typing import Any

from distill.verify.kinds.code import CodeKind, io_tests


class CodeAssertsKind(CodeKind):
    name = "code-asserts"

    def takes(self, tests: Any) -> bool:
        return not io_tests(tests)
