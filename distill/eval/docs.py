"""Benchmark rows in any of their published layouts -> one normalised doc per problem.

Hub copies and local copies of a benchmark name their fields differently (`problem` / `question` /
`prompt`, `answer` as a string or a number, GPQA's four answer columns, LiveCodeBench's tests as a
string). Each normaliser returns the same fields whatever the source, so one task YAML serves both.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
from typing import Any

import numpy

R1_MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# Some copies (QwQ's AIME files) carry an instruction already: strip it so that ours is the only one.
TRAILING_INSTRUCTION = re.compile(r"\s*Please reason step by step,? and put your final answer within \\boxed\{\}\.?\s*$")

GPQA_TEMPLATE = (  # OpenAI simple-evals, which the R1 paper's GPQA numbers follow
    "Answer the following multiple choice question. The last line of your response should be of the following "
    "format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step before answering.\n\n"
    "{question}\n\nA) {A}\nB) {B}\nC) {C}\nD) {D}"
)
LCB_STDIN_HINT = (  # LiveCodeBench's own prompt wording
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the "
    "sample inputs). Enclose your code within delimiters as follows. Ensure that when the python program runs, it "
    "reads the inputs, runs the algorithm and writes output to STDOUT.\n```python\n# YOUR CODE HERE\n```"
)
LCB_STARTER_HINT = ("You will use the following starter code to write the solution to the problem and enclose your "
                    "code within delimiters.\n```python\n{starter}\n```")
HUMANEVAL_HINT = ("Complete the following Python function. Answer with the whole function in one ```python code block."
                  "\n```python\n{prompt}```")


def _first(doc: dict, *keys: str) -> Any:
    for key in keys:
        if doc.get(key) not in (None, ""):
            return doc[key]
    raise ValueError(f"none of the fields {', '.join(keys)} in a row with fields {', '.join(sorted(doc))}")


def _stable_id(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]


def answer_text(value: Any) -> str:
    """27.0 -> "27", 1e-05 -> "0.00001", "025" -> "025" (the integer scorer compares numerically),
    "\\frac{1}{2}" unchanged."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):  # str() writes 1e-05, which no model answer looks like
        return numpy.format_float_positional(value, trim="-")
    return str(value).strip()


def math_doc(doc: dict) -> dict:
    problem = TRAILING_INSTRUCTION.sub("", str(_first(doc, "problem", "question", "prompt", "Problem")).strip())
    answer = answer_text(_first(doc, "answer", "final_answer", "Answer"))
    if answer.startswith("[") and answer.endswith("]"):  # OlympiadBench: a stringified one-element list
        try:
            values = ast.literal_eval(answer)
            answer = str(values[0]) if len(values) == 1 else answer
        except (ValueError, SyntaxError):
            pass
    raw_id = next((doc[k] for k in ("unique_id", "id", "idx") if doc.get(k) is not None), None)
    problem_id = str(raw_id) if raw_id is not None else _stable_id(problem)
    return {"problem_id": problem_id, "problem": problem, "answer": answer,
            "prompt": f"{problem}\n{R1_MATH_INSTRUCTION}", "kind": "math"}


def gpqa_doc(doc: dict) -> dict:
    question = str(_first(doc, "Question", "question")).strip()
    correct = str(_first(doc, "Correct Answer")).strip()
    choices = [correct] + [str(doc[f"Incorrect Answer {i}"]).strip() for i in (1, 2, 3)]
    random.Random(_stable_id(question)).shuffle(choices)  # fixed per question, the same for every model
    letter = "ABCD"[choices.index(correct)]
    prompt = GPQA_TEMPLATE.format(question=question, **dict(zip("ABCD", choices)))
    return {"problem_id": str(doc.get("Record ID") or _stable_id(question)), "problem": question, "answer": letter,
            "prompt": prompt, "kind": "choice"}


def _tests(value: Any) -> list:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return ast.literal_eval(value)  # the rllm copies hold a Python repr
    return list(value)


def livecodebench_doc(doc: dict) -> dict:
    problem = str(_first(doc, "problem", "question_content", "question")).strip()
    starter = str(doc.get("starter_code") or "").strip()
    tests = _tests(_first(doc, "tests", "public_test_cases"))
    hint = LCB_STARTER_HINT.format(starter=starter) if starter else LCB_STDIN_HINT
    return {"problem_id": str(doc.get("question_id") or _stable_id(problem)), "problem": problem, "answer": "",
            "prompt": f"{problem}\n\n{hint}", "kind": "code", "tests": json.dumps(tests), "starter_code": starter,
            "entry_point": ""}


def humaneval_doc(doc: dict) -> dict:
    prompt = str(doc["prompt"])
    return {"problem_id": str(doc["task_id"]), "problem": prompt, "answer": "", "prompt": HUMANEVAL_HINT.format(prompt=prompt),
            "kind": "code", "tests": json.dumps(str(doc["test"])), "starter_code": prompt, "entry_point": str(doc["entry_point"])}


NORMALISERS = {"math": math_doc, "gpqa": gpqa_doc, "livecodebench": livecodebench_doc, "humaneval": humaneval_doc}


def normalise(rows, layout: str):
    """A datasets.Dataset in `layout` -> the normalised columns, row by row, with the row named on error."""
    convert = NORMALISERS[layout]
    out = []
    for number, row in enumerate(rows):
        try:
            out.append(convert(dict(row)))
        except KeyError as exc:
            raise ValueError(f"row {number}: cannot read it as a {layout} problem: no field {exc}") from None
        except (ValueError, SyntaxError, TypeError) as exc:
            raise ValueError(f"row {number}: cannot read it as a {layout} problem: {exc}") from None
    return out

