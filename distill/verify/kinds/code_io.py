"""Code checked on inputs and outputs (LiveCodeBench): stdin tests compare what the program prints, functional tests
call the method the starter code names with JSON arguments (one per line) and compare the JSON it returns."""

from __future__ import annotations

from typing import Any

from distill.verify.kinds.code import CodeKind, io_tests


class CodeIOKind(CodeKind):
    name = "code-io"

    def takes(self, tests: Any) -> bool:
        return io_tests(tests)
