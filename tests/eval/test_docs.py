"""Eval docs and scoring: the normalisers on the real benchmark files in ../shared/data, and score_samples
with the real sandbox for code."""

import gzip
import json

import pytest

from support import SHARED_DATA
from support.programs import SECOND_LARGEST, SHORTEST_PATHS
from distill.eval.docs import (LCB_STDIN_HINT, R1_MATH_INSTRUCTION, gpqa_doc, humaneval_doc, livecodebench_doc, math_doc,
                               normalise)
from distill.eval.score import score_samples
from distill.io import read_jsonl

R = "<think>\nLet me work through this.\n</think>\n\n"
MATH = SHARED_DATA / "math"
LCB = json.loads((SHARED_DATA / "code" / "livecodebench_2408_2501_public_tests.json").read_text())
with gzip.open(SHARED_DATA / "code" / "HumanEval.jsonl.gz", "rt") as f:
    HUMANEVAL = {row["task_id"]: row for row in map(json.loads, f)}


def math_docs(name: str) -> list[dict]:
    return normalise(read_jsonl(MATH / f"{name}.jsonl"), "math")


def score_one(doc: dict, response: str, reasoning=True):
    return score_samples([doc], [response], reasoning, workers=0)[0]


def fenced(code: str) -> str:
    return f"{R}```python\n{code}\n```"


@pytest.mark.parametrize("name, problems", [("aime24", 30), ("aime25", 30), ("amc23", 40), ("math500", 500)])
def test_math_files_normalise_to_one_prompt_per_problem_with_the_instruction_once(name, problems):
    docs = math_docs(name)
    assert len(docs) == problems
    assert len({d["problem_id"] for d in docs}) == problems
    for doc in docs:
        assert doc["kind"] == "math" and doc["answer"]
        assert doc["prompt"] == f"{doc['problem']}\n{R1_MATH_INSTRUCTION}"
        assert doc["prompt"].count("Please reason step by step") == 1


def test_aime24_keeps_its_ids_and_zero_padded_answers_score_as_integers():
    rows = read_jsonl(MATH / "aime24.jsonl")
    docs = math_docs("aime24")
    assert [d["problem_id"] for d in docs] == [str(r["id"]) for r in rows]
    padded = next(d for d in docs if d["answer"] == "025")
    assert score_one(padded, R + "The answer is $\\boxed{25}$.").correct
    assert score_one(padded, R + "The answer is $\\boxed{025}$.").correct
    assert not score_one(padded, R + "The answer is $\\boxed{250}$.").correct


def test_aime25_prompt_field_loses_its_own_instruction():
    rows = read_jsonl(MATH / "aime25.jsonl")
    assert rows[0]["prompt"].endswith(R1_MATH_INSTRUCTION)  # the file carries the instruction already
    doc = math_doc(rows[0])
    assert doc["problem"] == rows[0]["prompt"][: -len(R1_MATH_INSTRUCTION)].strip()
    assert doc["prompt"].count(R1_MATH_INSTRUCTION) == 1
    assert doc["answer"] == str(rows[0]["answer"])
    # No id in the file: a stable id from the problem text, the same on every load.
    assert doc["problem_id"] == math_doc(dict(rows[0]))["problem_id"] != math_doc(rows[1])["problem_id"]


def test_amc23_float_answers_become_integers():
    rows = read_jsonl(MATH / "amc23.jsonl")
    assert rows[0]["answer"] == 27.0
    docs = math_docs("amc23")
    assert docs[0]["answer"] == "27" and docs[0]["problem_id"] == "0"
    assert all(not d["answer"].endswith(".0") for d in docs)
    assert score_one(docs[0], R + "$\\boxed{27}$").correct


def test_math500_keeps_unique_ids_and_latex_answers():
    rows = read_jsonl(MATH / "math500.jsonl")
    docs = {d["problem_id"]: d for d in math_docs("math500")}
    assert set(docs) == {r["unique_id"] for r in rows}
    doc = docs["test/precalculus/807.json"]
    assert doc["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert score_one(doc, R + "$\\boxed{(3, \\frac{\\pi}{2})}$").correct


def test_livecodebench_tests_as_list_json_or_repr_and_the_prompt_hint_by_test_type():
    docs = normalise(LCB, "livecodebench")
    # The file holds lists; other copies hold the same tests as a JSON string or as a Python repr.
    for row in LCB[:3] + LCB[-3:]:
        as_list = livecodebench_doc(row)
        assert livecodebench_doc({**row, "tests": repr(row["tests"])}) == as_list
        assert livecodebench_doc({**row, "tests": json.dumps(row["tests"])}) == as_list
    assert len(docs) == len(LCB) == len({d["problem_id"] for d in docs})
    for row, doc in zip(LCB, docs):
        tests = json.loads(doc["tests"])
        assert tests and all({"input", "output", "testtype"} <= set(t) for t in tests)
        kinds = {t["testtype"] for t in tests}
        if row["starter_code"]:
            assert kinds == {"functional"}
            assert doc["prompt"].endswith(f"```python\n{row['starter_code'].strip()}\n```")
            assert "stdin" not in doc["prompt"].split(row["problem"].strip())[-1]
        else:
            assert kinds == {"stdin"}
            assert doc["prompt"].endswith(LCB_STDIN_HINT)
        assert doc["prompt"].startswith(row["problem"].strip()) and doc["kind"] == "code"


def test_humaneval_rows():
    docs = normalise(list(HUMANEVAL.values()), "humaneval")
    assert len(docs) == 164 and docs[0]["problem_id"] == "HumanEval/0"
    for doc, row in zip(docs, HUMANEVAL.values()):
        assert row["prompt"] in doc["prompt"] and doc["entry_point"] == row["entry_point"]
        assert json.loads(doc["tests"]) == row["test"] and doc["kind"] == "code"


def gpqa_row(question="Which particle mediates the electromagnetic force?", **fields):
    return {"Question": question, "Correct Answer": "The photon", "Incorrect Answer 1": "The gluon",
            "Incorrect Answer 2": "The W boson", "Incorrect Answer 3": "The graviton", **fields}


def test_gpqa_shuffle_is_fixed_per_question_and_the_letter_points_at_the_correct_answer():
    doc = gpqa_doc(gpqa_row())
    assert doc == gpqa_doc(gpqa_row())  # the same on every load, for every model
    assert f"\n{doc['answer']}) The photon" in doc["prompt"]
    assert doc["prompt"].count(") The ") == 4 and doc["kind"] == "choice"
    letters = {gpqa_doc(gpqa_row(question=f"Question number {i}?"))["answer"] for i in range(40)}
    assert len(letters) >= 3  # shuffled: the correct answer is not always in the same place
    assert gpqa_doc(gpqa_row(**{"Record ID": "recXYZ"}))["problem_id"] == "recXYZ"
    assert score_one(doc, R + f"It is the photon.\nAnswer: {doc['answer']}").correct
    wrong = "A" if doc["answer"] != "A" else "B"
    verdict = score_one(doc, R + f"Answer: {wrong}")
    assert not verdict.correct and verdict.extracted == wrong


def test_malformed_row_is_named():
    rows = [gpqa_row(), gpqa_row(question="Another?")]
    del rows[1]["Incorrect Answer 2"]
    with pytest.raises(ValueError, match=r"^row 1: cannot read it as a gpqa problem: no field 'Incorrect Answer 2'$"):
        normalise(rows, "gpqa")
    fields = "none of the fields problem, question, prompt, Problem in a row with fields answer, text"
    with pytest.raises(ValueError, match=rf"^row 0: cannot read it as a math problem: {fields}$"):
        normalise([{"text": "2 + 2?", "answer": "4"}], "math")


def test_math_responses_and_truncated_reasoning():
    doc = math_docs("math500")[0]
    cases = [
        (R + "$\\boxed{(3, \\pi/2)}$", True, True, "correct"),
        (R + "$\\boxed{(3, \\pi)}$", True, False, "wrong answer"),
        ("<think>\nSo it is \\boxed{(3, \\frac{\\pi}{2})}, let me check", True, False, "no closing </think>"),
        ("So it is \\boxed{(3, \\frac{\\pi}{2})}.", False, True, "correct"),  # a non-reasoning model
    ]
    verdicts = score_samples([doc] * len(cases), [c[0] for c in cases], reasoning=None, workers=0)
    assert [(v.correct, v.reason) for v in verdicts] == [(c[2], c[3]) for c in cases]
    # With the suite's setting: reasoning on, a response without </think> is wrong whatever it holds.
    assert score_one(doc, cases[3][0], reasoning=True).reason == "no closing </think>"


def test_livecodebench_programs_through_the_sandbox(sandbox):
    stdin = livecodebench_doc(LCB[0])
    functional = livecodebench_doc(next(r for r in LCB if "shortestDistanceAfterQueries" in r["starter_code"]))
    cases = [
        (stdin, fenced(SECOND_LARGEST), True),
        (stdin, fenced("print(1)"), False),
        (functional, fenced(SHORTEST_PATHS), True),
        (functional, fenced(SHORTEST_PATHS.replace("dist[n - 1])", "dist[n - 1] + 1)")), False),
        (stdin, "<think>\n" + fenced(SECOND_LARGEST).removeprefix(R), False),  # never closed its reasoning
    ]
    verdicts = score_samples([c[0] for c in cases], [c[1] for c in cases], reasoning=True, workers=2, sandbox=sandbox)
    assert [v.correct for v in verdicts] == [c[2] for c in cases], verdicts
    assert verdicts[4].reason == "no closing </think>"


def test_humaneval_completions_through_the_sandbox(sandbox):
    zero, cyclic = humaneval_doc(HUMANEVAL["HumanEval/0"]), humaneval_doc(HUMANEVAL["HumanEval/38"])
    body = HUMANEVAL["HumanEval/0"]["canonical_solution"]
    whole = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n" + body
    cases = [
        (zero, fenced(body.rstrip()), True),  # the body only: the prompt supplies the signature
        (zero, fenced(whole.rstrip()), True),  # the whole function: the prompt supplies `from typing import List`
        (zero, fenced("def has_close_elements(numbers, threshold):\n    return False"), False),
        # The whole function calling a helper that only the prompt defines.
        (cyclic, fenced("def decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))"), True),
        (cyclic, fenced("def decode_cyclic(s: str):\n    return encode_cyclic(s)"), False),
    ]
    verdicts = score_samples([c[0] for c in cases], [c[1] for c in cases], reasoning=True, workers=2, sandbox=sandbox)
    assert [v.correct for v in verdicts] == [c[2] for c in cases], verdicts
