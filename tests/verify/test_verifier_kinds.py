"""The registry of verifier kinds: each kind builds its item from a trace row and from an eval doc and judges right and
wrong answers; the settings map to kinds; and a kind registered here, in this test module, is used by curation's
screen and by eval's scoring with no other edit (adding a kind is one module and its tests)."""

import gzip
import json

import pyarrow.parquet as pq
import pytest
import yaml

from support import SHARED_DATA
from support.programs import SECOND_LARGEST
from distill.config import load_config
from distill.curate.config import CurateConfig
from distill.curate.run import curate
from distill.eval.docs import gpqa_doc, humaneval_doc, livecodebench_doc, math_doc
from distill.eval.score import score_samples
from distill.traces import Trace, write_traces
from distill.verify import kinds
from distill.verify.kinds import AnswerItem, TraceOptions
from distill.verify.kinds.base import AnswerKind, VerifierKind
from distill.verify.pool import VerdictPool, judge_many
from distill.verify.stored_tests import stored_tests
from distill.verify.verdict import UNVERIFIED, Verdict

with gzip.open(SHARED_DATA / "code" / "HumanEval.jsonl.gz", "rt") as f:
    HUMANEVAL = {row["task_id"]: row for row in map(json.loads, f)}
LCB = json.loads((SHARED_DATA / "code" / "livecodebench_2408_2501_public_tests.json").read_text())


def reasoned(answer: str) -> str:
    return f"<think>\nLet me work through this.\n</think>\n\n{answer}"


def fenced(code: str) -> str:
    return reasoned(f"```python\n{code}\n```")


def row(answer=None, tests=None, metadata=None) -> dict:
    """A trace row as curation reads it (tests and metadata as stored)."""
    return {"answer": answer, "tests": stored_tests(tests), "metadata": json.dumps(metadata or {})}


GPQA = gpqa_doc({"Question": "Which is a noble gas?", "Correct Answer": "Neon", "Incorrect Answer 1": "Iron",
                 "Incorrect Answer 2": "Oxygen", "Incorrect Answer 3": "Sodium", "Record ID": "gas"})
OTHER_LETTER = "ABCD"[("ABCD".index(GPQA["answer"]) + 1) % 4]
HUMANEVAL_0 = HUMANEVAL["HumanEval/0"]

# kind -> (trace row, its options, right and wrong responses to it; eval doc, right and wrong responses to it)
CASES = {
    "math": (row("\\frac{1}{2}"), TraceOptions(), reasoned("\\boxed{0.5}"), reasoned("\\boxed{\\frac{1}{3}}"),
             math_doc({"problem": "Half?", "answer": "\\frac{1}{2}", "id": "half"}),
             reasoned("\\boxed{0.5}"), reasoned("\\boxed{2}")),
    "choice": (row("C"), TraceOptions(answer_kind="choice"), reasoned("Answer: C"), reasoned("Answer: D"),
               GPQA, reasoned(f"Answer: {GPQA['answer']}"), reasoned(f"Answer: {OTHER_LETTER}")),
    "code-asserts": (row(tests=["assert add(1, 2) == 3", "assert add(2, 2) == 4"]), TraceOptions(),
                     fenced("def add(a, b):\n    return a + b"), fenced("def add(a, b):\n    return a - b"),
                     humaneval_doc(HUMANEVAL_0), fenced(HUMANEVAL_0["canonical_solution"].rstrip()),
                     fenced("    return False")),
    "code-io": (row(tests=LCB[0]["tests"]), TraceOptions(), fenced(SECOND_LARGEST), fenced("print(1)"),
                livecodebench_doc(LCB[0]), fenced(SECOND_LARGEST), fenced("print(a)")),
}


def test_every_registered_kind_has_its_cases_here():
    assert set(kinds.KINDS) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_kind_builds_its_items_from_a_trace_row_and_an_eval_doc_and_judges_them(name, sandbox):
    trace_row, options, right, wrong, doc, doc_right, doc_wrong = CASES[name]
    items = [kinds.for_trace({**trace_row, "response": response}, "auto", options) for response in (right, wrong)]
    items += [kinds.for_doc(doc, response, reasoning=True) for response in (doc_right, doc_wrong)]
    assert [item.kind for item in items] == [name] * 4
    assert kinds.runs_code(doc) is name.startswith("code-")  # lm-eval runs such tasks only with unsafe_code
    verdicts = judge_many(items, workers=2, sandbox=sandbox)
    assert [v.correct for v in verdicts] == [True, False, True, False], verdicts
    assert [kinds.judge(item, sandbox) for item in items] == verdicts  # one at a time, in this thread: the same
    unclosed = kinds.for_doc(doc, doc_right.removeprefix("<think>\nLet me work through this.\n</think>"), reasoning=True)
    assert kinds.judge(unclosed, sandbox) == Verdict(False, "no closing </think>")


def test_the_settings_name_the_kinds():
    both = {**row("7", tests=["assert True"]), "response": reasoned("\\boxed{7}")}
    assert kinds.for_trace(both, "auto", TraceOptions()).kind == "code-asserts"  # tests first, as verifier auto did
    assert kinds.for_trace(both, "math", TraceOptions()).kind == "math"
    assert kinds.for_trace(both, "code", TraceOptions()).kind == "code-asserts"
    answer_only = {**row("7"), "response": reasoned("\\boxed{7}")}
    assert kinds.for_trace(answer_only, "code", TraceOptions()) is None  # nothing that verifier checks
    assert kinds.for_trace({**row("  "), "response": "x"}, "auto", TraceOptions()) is None  # a blank answer is none
    integer = kinds.for_trace(answer_only, "math", TraceOptions(reasoning=False, answer_kind="integer"))
    assert (integer.kind, integer.mode, integer.reasoning) == ("math", "integer", False)
    assert kinds.answer_item("x", "B", answer_kind="choice").kind == "choice"
    assert kinds.answer_item("x", "B").kind == "math"  # auto: the math kind, which reads a lone letter as a choice
    assert kinds.judge(kinds.answer_item(reasoned("Answer: B"), "B")).correct
    malformed = {**row(tests=[{"input": "1"}, "assert True"]), "response": fenced("print(1)")}
    item = kinds.for_trace(malformed, "auto", TraceOptions())  # judged, and refused with the reason
    assert kinds.judge(item).reason.startswith("code error: tests must be all assert strings")
    with pytest.raises(ValueError, match="no verifier kind judges eval docs of kind 'essay'"):
        kinds.for_doc({"kind": "essay", "answer": "x"}, "x", reasoning=True)


class ExactTextKind(AnswerKind):
    """A kind made up for this test: the last line of the final answer must be the reference, whatever its case.
    It takes trace rows whose prompt metadata asks for it, and eval docs of its name."""

    name = "exact-text"

    def from_trace(self, row, options):
        if json.loads(row["metadata"] or "{}").get("verifier") != self.name:
            return None
        return AnswerItem(kind=self.name, response=row["response"], reasoning=options.reasoning, reference=row["answer"])

    def from_doc(self, doc, response, reasoning):
        if doc["kind"] != self.name:
            return None
        return AnswerItem(kind=self.name, response=response, reasoning=reasoning, reference=doc["answer"])

    def scoring(self, item):
        return self.score, (item.reference,)

    def score(self, text, reference):
        said = text.strip().splitlines()[-1].strip() if text.strip() else ""
        if said.casefold() == reference.casefold():
            return Verdict(True, "correct", said)
        return Verdict(False, f"not the text: said {said!r}", said)


@pytest.fixture
def exact_text(monkeypatch):
    monkeypatch.setattr(kinds, "KINDS", dict(kinds.KINDS))  # the registry as it was comes back after the test
    return kinds.register(ExactTextKind())


def exact_trace(pid: str, response: str, verifier: str | None = "exact-text") -> Trace:
    return Trace(prompt_id=pid, source="capitals", sample_index=0, teacher="t", engine="hf", sampling={"n": 1},
                 prompt_messages=[{"role": "user", "content": "The capital of France?"}], response=response,
                 finish_reason="stop", completion_tokens=50, answer="Paris",
                 metadata={"verifier": verifier} if verifier else {})


def curated_reasons(tmp_path, traces: list[Trace]) -> dict[str, str | None]:
    run = tmp_path / "run"
    write_traces(run / "traces", traces)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "kinds", "run_dir": str(run), "curate": {"decontamination": {"enabled": False}},
                                    "prompts": {"source": str(SHARED_DATA / "math" / "aime24.jsonl")}}))
    out = curate(load_config(path, CurateConfig))
    reasons = {r["prompt_id"]: None for shard in out.glob("train-*.parquet") for r in pq.read_table(shard).to_pylist()}
    for shard in out.glob("rejected-*.parquet"):
        reasons.update({r["prompt_id"]: r["reason"] for r in pq.read_table(shard).to_pylist()})
    return reasons


def test_a_kind_registered_here_is_used_by_curation_and_by_eval(tmp_path, exact_text):
    traces = [exact_trace("right", reasoned("It is\nPARIS")), exact_trace("wrong", reasoned("It is\nLyon")),
              exact_trace("math", reasoned("\\boxed{Paris}"), verifier=None)]  # no metadata: the math kind, as before
    assert curated_reasons(tmp_path, traces) == {"right": None, "wrong": "not the text: said 'Lyon'", "math": None}

    doc = {"problem_id": "fr", "problem": "The capital of France?", "answer": "Paris", "prompt": "...",
           "kind": "exact-text"}
    half = math_doc({"problem": "Half?", "answer": "\\frac{1}{2}", "id": "half"})
    assert not kinds.runs_code(doc)
    verdicts = score_samples([doc, doc, half], [reasoned("paris"), reasoned("Rome"), reasoned("\\boxed{0.5}")],
                             reasoning=None, workers=2)
    assert verdicts == [Verdict(True, "correct", "paris"), Verdict(False, "not the text: said 'Rome'", "Rome"),
                        kinds.judge_math(reasoned("\\boxed{0.5}"), "\\frac{1}{2}")]
    assert verdicts[2].correct


def test_a_kind_registered_here_is_scored_in_the_math_worker_processes(exact_text):
    got = {}
    answers = ["Paris", "paris", "Rome", "PARIS", "Nice", "Paris"]
    with VerdictPool(got.__setitem__, workers=2) as pool:
        pool.math.chunk = 2  # send chunks to the workers at once, as a long curation does
        for index, answer in enumerate(answers):
            pool.submit(index, exact_text.from_doc({"kind": "exact-text", "answer": "Paris"}, reasoned(answer), True))
        assert pool.math.pool is not None  # the workers unpickled the kind's score method
        pool.close()
    assert [got[i].correct for i in range(len(answers))] == [True, True, False, True, False, True]
    assert pool.distinct_answers == 5  # the repeated "Paris" is scored once


def test_without_the_kind_the_same_traces_go_to_the_math_kind(tmp_path):
    reasons = curated_reasons(tmp_path, [exact_trace("right", reasoned("It is\nPARIS"))])
    assert reasons["right"] in ("no answer", "wrong answer")  # math-verify reads no "Paris" in "PARIS"


def test_a_kind_must_say_where_it_runs_truthfully(monkeypatch):
    monkeypatch.setattr(kinds, "KINDS", dict(kinds.KINDS))

    class Confused(VerifierKind):  # claims the math pool, but has no answer to score there
        name, checks, runs_in = "confused", "tests", "math pool"
        from_trace = from_doc = judge = None

    with pytest.raises(TypeError, match="must be an AnswerKind"):
        kinds.register(Confused())

    class Essay(Confused):  # checks a field no trace row has
        name, checks, runs_in = "essay", "essay", "sandbox"

    with pytest.raises(ValueError, match="checks must be answer or tests"):
        kinds.register(Essay())
    assert "confused" not in kinds.KINDS and "essay" not in kinds.KINDS


def test_curation_holds_verdicts_as_shared_instances_and_reads_the_cache_back_as_verdicts(tmp_path):
    from distill.curate.screen import VerdictCache

    cache = VerdictCache(tmp_path, "key")
    for trace_id, correct, reason in (("a", False, "wrong answer"), ("b", False, "wrong answer"), ("c", True, "correct")):
        cache.add(trace_id, correct, reason)
    cache.flush()
    known = VerdictCache(tmp_path, "key").known
    assert known == {"a": Verdict(False, "wrong answer"), "b": Verdict(False, "wrong answer"), "c": Verdict(True, "correct")}
    assert known["a"] is known["b"]  # 800k traces, a handful of distinct verdicts
    assert all(v.verified for v in known.values()) and not UNVERIFIED.verified and UNVERIFIED.correct
