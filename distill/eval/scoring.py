"""Score eval samples with the curation verifiers: math and choice answers in worker processes, code in the sandbox."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from distill.verify.code import extract_code, verify_code
from distill.verify.math import THINK_END, final_answer_text, score_many
from distill.verify.sandbox import Limits, LocalSandbox


@dataclass(frozen=True)
class Scored:
    correct: bool
    reason: str
    extracted: str | None


def is_reasoning(response: str) -> bool:
    """Without a suite setting: a response that opens or closes a reasoning block is a reasoning response."""
    return THINK_END in response or "<think>" in response


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


def _score_code(doc: dict, response: str, reasoning: bool, sandbox: LocalSandbox, limits: Limits) -> Scored:
    text = final_answer_text(response, reasoning)
    if text is None:
        return Scored(False, "no closing </think>", None)
    code = extract_code(text)
    if code and doc.get("entry_point"):
        code = complete_program(code, doc.get("starter_code") or "", doc["entry_point"])
    verdict = verify_code(code, json.loads(doc["tests"]), doc.get("starter_code") or None, doc.get("entry_point") or None,
                          sandbox, limits)
    reason = "correct" if verdict.passed else f"{verdict.status}: {verdict.detail}"
    return Scored(verdict.passed, reason[:300], None)


def score_samples(docs: list[dict], responses: list[str], reasoning: bool | None, workers: int | None = None,
                  sandbox: LocalSandbox | None = None, limits: Limits | None = None) -> list[Scored]:
    """One verdict per (doc, response) pair, in order. reasoning None: decided per response."""
    modes = [is_reasoning(r) if reasoning is None else reasoning for r in responses]
    verdicts: list[Scored | None] = [None] * len(responses)
    math_at = [i for i, d in enumerate(docs) if d["kind"] != "code"]
    if math_at:
        items = [(responses[i], docs[i]["answer"], modes[i], "choice" if docs[i]["kind"] == "choice" else "auto") for i in math_at]
        for i, v in zip(math_at, score_many(items, workers=workers)):
            verdicts[i] = Scored(v.correct, v.reason, v.extracted)
    code_at = [i for i, d in enumerate(docs) if d["kind"] == "code"]
    if code_at:
        sandbox = sandbox or LocalSandbox()
        limits = limits or Limits()
        with ThreadPoolExecutor(max_workers=workers or 4) as pool:
            for i, v in zip(code_at, pool.map(lambda i: _score_code(docs[i], responses[i], modes[i], sandbox, limits), code_at)):
                verdicts[i] = v
    return verdicts  # type: ignore[return-value]
