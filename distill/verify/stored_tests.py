"""A prompt's reference tests as a trace stores them (traces.TESTS rows) and as the code verifier takes them.

One row per test: testtype stdin | functional (LiveCodeBench {input, output, testtype}; null where the test has no
testtype), assert (`code` is one assert statement), check (`code` is a check(candidate) program, run on the entry
point in the prompt's metadata), json (`code` is tests of any other form, as JSON, handed to the verifier as they are).
"""

from __future__ import annotations

import json
from typing import Any

_TEST_KEYS = {"input", "output", "testtype"}


def _one_row_test(test: Any) -> bool:
    """An assert string, or a {input, output, testtype} test with string values that a TESTS row holds exactly."""
    if isinstance(test, str):
        return True
    return (isinstance(test, dict) and set(test) <= _TEST_KEYS and all(isinstance(v, str) for v in test.values())
            and test.get("testtype", "stdin") in ("stdin", "functional"))


def _test_row(testtype: str | None, input: str | None = None, output: str | None = None, code: str | None = None) -> dict:
    return {"testtype": testtype, "input": input, "output": output, "code": code}


def stored_tests(tests: Any) -> list[dict] | None:
    """A prompt's reference tests -> TESTS rows; `reference_tests` gives back the very same value."""
    if tests is None:
        return None
    if isinstance(tests, str):
        return [_test_row("check", code=tests)]
    if isinstance(tests, list) and all(_one_row_test(t) for t in tests):
        return [_test_row("assert", code=t) if isinstance(t, str) else
                _test_row(t.get("testtype"), t.get("input"), t.get("output")) for t in tests]
    return [_test_row("json", code=json.dumps(tests, ensure_ascii=False))]


def reference_tests(stored: list[dict] | None) -> Any:
    """TESTS rows -> the tests as the prompt gave them (what the code verifier takes)."""
    if stored is None:
        return None
    if len(stored) == 1 and stored[0]["testtype"] in ("check", "json"):
        code = stored[0]["code"]
        return code if stored[0]["testtype"] == "check" else json.loads(code)
    return [t["code"] if t["testtype"] == "assert" else {k: t[k] for k in ("input", "output", "testtype") if t[k] is not None}
            for t in stored]
