"""Code answers: the final code block, run against the problem's tests inside the sandbox.

Test formats: LiveCodeBench (`[{input, output, testtype: stdin | functional}]`, functional ones call the
method named in the starter code with JSON arguments, one per line), and assert-style tests
(HumanEval / MBPP: a list of assert statements, or a `check(candidate)` function with an entry point).
A model response is judged by the code kinds (`verify.kinds`, one per test format); `verify_code` judges a bare
program.
"""

from __future__ import annotations

import json
import re
from typing import Any

from distill.verify.sandbox import DEFAULT_LIMITS, Limits, LocalSandbox, RunResult, Sandbox, python_argv
from distill.verify.verdict import Verdict

CODE_BLOCK = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
# What competitive-programming solutions assume is imported (LiveCodeBench's own harness does the same).
PRELUDE = ("from typing import *\nimport collections, heapq, bisect, itertools, functools, math, string, re, sys\n"
           "from collections import *\nfrom functools import *\nfrom itertools import *\nfrom heapq import *\n"
           "from bisect import *\nfrom math import *\n")


PASSED = Verdict(True, "correct")


def _verdict(status: str, detail: str) -> Verdict:
    """A failed run: status failed | timeout | error."""
    return Verdict(False, f"code {status}: {detail}")


def status_and_detail(verdict: Verdict) -> tuple[str, str]:
    """("passed", "correct") or (failed | timeout | error, what went wrong), read back from a code verdict."""
    if verdict.correct:
        return "passed", verdict.reason
    status, _, detail = verdict.reason.removeprefix("code ").partition(": ")
    return status, detail


def extract_code(text: str) -> str | None:
    """The last fenced code block (python preferred), or None."""
    blocks = CODE_BLOCK.findall(text)
    if not blocks:
        return None
    python = [code for lang, code in blocks if lang.lower() in ("python", "py", "python3")]
    return (python or [code for _, code in blocks])[-1]


def complete_program(code: str, starter_code: str, entry_point: str) -> str:
    """HumanEval-style: the prompt and the body when the model wrote only the body; when it wrote the whole
    function, what the prompt holds before it (imports, helper functions it may call) and then the model's code."""
    if f"def {entry_point}" not in code:
        return starter_code + code
    at = starter_code.find(f"def {entry_point}")
    if at >= 0:
        return f"{starter_code[:at]}\n{code}"
    imports = "\n".join(line for line in starter_code.splitlines() if re.match(r"\s*(import|from)\s", line))
    return f"{imports}\n{code}" if imports else code


def function_name(starter_code: str | None) -> str | None:
    names = re.findall(r"def\s+(\w+)\s*\(\s*self", starter_code or "")
    return names[-1] if names else None


def _functional_program(code: str, name: str) -> str:
    return (f"{PRELUDE}\n{code}\n\nimport json as _json, sys as _sys\n"
            "_args = [_json.loads(line) for line in _sys.stdin.read().split('\\n') if line.strip()]\n"
            f"_result = Solution().{name}(*_args)\nprint(_json.dumps(_result))\n")


def _same_stdout(got: str, expected: str) -> bool:
    lines = lambda s: [line.rstrip() for line in s.strip().splitlines()]  # noqa: E731
    return lines(got) == lines(expected)


def _same_json(got: str, expected: str) -> bool:
    try:
        return json.loads(got.strip()) == json.loads(expected.strip())
    except ValueError:
        return got.strip() == expected.strip()


def _failure(result: RunResult, what: str) -> Verdict:
    if result.status == "timeout":
        return _verdict("timeout", f"{what}: time limit exceeded ({result.wall_s:.1f}s)")
    last = (result.stderr.strip().splitlines() or ["no output"])[-1][:300]
    return _verdict("failed" if "AssertionError" in last else "error", f"{what}: exit {result.returncode}: {last}")


def _wrong_types(code: Any, tests: Any, starter_code: Any, entry_point: Any) -> str | None:
    """What is wrong with the item's types (code, tests, starter code, entry point), or None."""
    for name, value in (("code", code), ("starter_code", starter_code), ("entry_point", entry_point)):
        if value is not None and not isinstance(value, str):
            return f"{name} must be a string, got {type(value).__name__}"
    if isinstance(tests, str) and "def check(" in tests:
        return None
    if not isinstance(tests, list) or not tests:
        return f"unsupported tests: {str(tests)[:100]}"
    if all(isinstance(t, str) for t in tests):
        return None
    if not all(isinstance(t, dict) for t in tests):
        kinds = ", ".join(sorted({type(t).__name__ for t in tests}))
        return f"tests must be all assert strings or all {{input, output}} objects, got {kinds}"
    for index, test in enumerate(tests):
        if not all(isinstance(test.get(key, ""), str) for key in ("input", "output")):
            return f"test {index}: input and output must be strings"
        if test.get("testtype", "stdin") not in ("stdin", "functional"):
            return f"test {index}: testtype must be stdin or functional, got {str(test['testtype'])[:40]!r}"
    return None


def verify_code(code: str | None, tests: Any, starter_code: str | None = None, entry_point: str | None = None,
                sandbox: Sandbox | None = None, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    """The verdict of `code` on `tests`; an item of the wrong types is an error verdict, never an exception.

    With an entry point, the code is completed with the starter code (the HumanEval prompt) first."""
    if (wrong := _wrong_types(code, tests, starter_code, entry_point)) is not None:
        return _verdict("error", wrong)
    if not code or not code.strip():
        return _verdict("error", "no code block in the answer")
    if entry_point:
        code = complete_program(code, starter_code or "", entry_point)
    sandbox = sandbox or LocalSandbox()
    if isinstance(tests, str):  # a check(candidate) function
        if not entry_point:
            return _verdict("error", "check(candidate) tests need an entry_point")
        program = f"{PRELUDE}\n{code}\n\n{tests}\n\ncheck({entry_point})\n"
        result = sandbox.run({"main.py": program}, python_argv(), limits=limits)
        return PASSED if result.status == "ok" else _failure(result, "check")
    if all(isinstance(t, str) for t in tests):  # assert statements
        program = f"{PRELUDE}\n{code}\n\n" + "\n".join(tests) + "\n"
        result = sandbox.run({"main.py": program}, python_argv(), limits=limits)
        return PASSED if result.status == "ok" else _failure(result, "asserts")
    name = function_name(starter_code)
    for index, test in enumerate(tests):
        functional = test.get("testtype") == "functional"
        if functional and not name:
            return _verdict("error", "functional test without a starter-code method name")
        program = _functional_program(code, name) if functional else code
        result = sandbox.run({"main.py": program}, python_argv(), stdin=test.get("input", ""), limits=limits)
        if result.status != "ok":
            return _failure(result, f"test {index}")
        same = _same_json if functional else _same_stdout
        if not same(result.stdout, test.get("output", "")):
            return _verdict("failed", f"test {index}: wrong output: got {result.stdout.strip()[:80]!r}, "
                                      f"expected {str(test.get('output', '')).strip()[:80]!r}")
    return PASSED
