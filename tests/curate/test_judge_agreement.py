"""Curation, eval and `distill score` give the same verdict on the same response: math, multiple choice, and a
HumanEval-style completion (the body only, completed with the prompt). Each through its real entry point."""

import gzip
import json

import pyarrow.parquet as pq
import yaml

from support import SHARED_DATA, run_cli
from distill.config import load_config
from distill.curate.run import curate
from distill.eval.docs import gpqa_doc, humaneval_doc, math_doc
from distill.eval.score import score_samples
from distill.io import read_jsonl
from distill.curate.config import CurateConfig
from distill.traces import Trace, write_traces
from distill.verify.sandbox import LocalSandbox

with gzip.open(SHARED_DATA / "code" / "HumanEval.jsonl.gz", "rt") as f:
    HUMANEVAL = {row["task_id"]: row for row in map(json.loads, f)}


def reasoned(answer: str) -> str:
    return f"<think>\nLet me work through this step by step.\n</think>\n\n{answer}"


def fenced(code: str) -> str:
    return reasoned(f"Here it is:\n```python\n{code}\n```")


MATH = math_doc({"problem": "What is one half as a decimal?", "answer": "\\frac{1}{2}", "id": "half"})
CHOICE = gpqa_doc({"Question": "Which is a noble gas?", "Correct Answer": "Neon", "Incorrect Answer 1": "Iron",
                   "Incorrect Answer 2": "Oxygen", "Incorrect Answer 3": "Sodium", "Record ID": "gas"})
LETTER, OTHER = CHOICE["answer"], "ABCD"[("ABCD".index(CHOICE["answer"]) + 1) % 4]
CODE = humaneval_doc(HUMANEVAL["HumanEval/0"])
BODY = HUMANEVAL["HumanEval/0"]["canonical_solution"].rstrip()

CASES = [  # (doc, response, correct)
    (MATH, reasoned("So the answer is $\\boxed{0.5}$."), True),
    (MATH, reasoned("So the answer is $\\boxed{\\frac{1}{3}}$."), False),
    (MATH, reasoned("I cannot tell."), False),
    (CHOICE, reasoned(f"Neon is inert.\n\nAnswer: {LETTER}"), True),
    (CHOICE, reasoned(f"Iron, surely.\n\nAnswer: {OTHER}"), False),
    (CODE, fenced(BODY), True),  # the body only: the prompt supplies the signature and `from typing import List`
    (CODE, fenced("    return False"), False),
]


def eval_verdicts() -> list[tuple[bool, str]]:
    verdicts = score_samples([doc for doc, _, _ in CASES], [response for _, response, _ in CASES], reasoning=True,
                             workers=2, sandbox=LocalSandbox())
    return [(v.correct, v.reason) for v in verdicts]


def curation_verdicts(tmp_path) -> list[tuple[bool, str]]:
    traces = []
    for index, (doc, response, _) in enumerate(CASES):
        code = doc["kind"] == "code"
        metadata = {"starter_code": doc["starter_code"], "entry_point": doc["entry_point"]} if code else {}
        traces.append(Trace(prompt_id=f"p{index}", source="agreement", sample_index=0, teacher="t", engine="hf",
                            prompt_messages=[{"role": "user", "content": doc["prompt"]}], sampling={"n": 1},
                            response=response, finish_reason="stop", completion_tokens=40,
                            answer=None if code else doc["answer"], tests=json.loads(doc["tests"]) if code else None,
                            metadata=metadata))
    run = tmp_path / "run"
    write_traces(run / "traces", traces)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "agreement", "run_dir": str(run),
                                    "prompts": {"source": str(SHARED_DATA / "math" / "aime24.jsonl")}, "curate": {}}))
    out = curate(load_config(path, CurateConfig))
    found = {}
    for shard in out.glob("train-*.parquet"):
        found.update({row["prompt_id"]: (True, "correct") for row in pq.read_table(shard).to_pylist()})
    for shard in out.glob("rejected-*.parquet"):
        found.update({row["prompt_id"]: (False, row["reason"]) for row in pq.read_table(shard).to_pylist()})
    return [found[f"p{index}"] for index in range(len(CASES))]


def score_command_verdicts(tmp_path) -> list[tuple[bool, str]]:
    path = tmp_path / "math.jsonl"
    math = [(doc, response) for doc, response, _ in CASES if doc["kind"] != "code"]
    path.write_text("".join(json.dumps({"response": response, "answer": doc["answer"]}) + "\n" for doc, response in math))
    result = run_cli("score", path, "--reasoning")
    assert result.returncode == 0, result.stderr
    return [(v[0]["correct"], v[0]["reason"]) for v in read_jsonl(tmp_path / "math.verdicts.jsonl")]


def test_curation_eval_and_score_agree(tmp_path):
    in_eval = eval_verdicts()
    assert [correct for correct, _ in in_eval] == [correct for _, _, correct in CASES], in_eval
    assert curation_verdicts(tmp_path) == in_eval
    math_and_choice = [verdict for verdict, (doc, _, _) in zip(in_eval, CASES) if doc["kind"] != "code"]
    assert score_command_verdicts(tmp_path) == math_and_choice
