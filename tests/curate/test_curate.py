"""`distill curate` end to end on traces with known flaws, written through the real trace writer."""

import json

import pyarrow.parquet as pq
import pytest
import yaml

from support import SHARED_DATA, run_cli
from distill.config import load_config
from distill.curate.run import curate
from distill.students.data import load_messages
from distill.curate.config import CurateConfig
from distill.teacher.summary import GenerateSummary
from distill.traces import Trace, write_traces

GOOD = "<think>\n{work}\n</think>\n\nThe answer is \\boxed{{{answer}}}."


def trace(pid, index, response, answer="42", finish="stop", tokens=50, status="ok", source="toy", difficulty=2, **kw):
    problem = kw.pop("problem", f"Problem {pid}: compute the value.")
    return Trace(prompt_id=pid, source=source, prompt_messages=[{"role": "user", "content": problem}], sample_index=index,
                 teacher="t", engine="hf", sampling={"n": 4}, status=status, response=response, finish_reason=finish,
                 completion_tokens=tokens, answer=answer, metadata={"difficulty": difficulty}, **kw)


def write_run(tmp_path, traces, **curate_cfg):
    run = tmp_path / "run"
    write_traces(run / "traces", traces)
    GenerateSummary(traces=len(traces), ok=len(traces), failed=0, prompt_tokens=1, completion_tokens=1, wall_seconds=1,
                    cost_usd=2.0).write(run)
    cfg = {"name": "c", "run_dir": str(run), "prompts": {"source": str(SHARED_DATA / "math" / "aime24.jsonl")},
           "curate": curate_cfg}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, run


AIME = [json.loads(line) for line in (SHARED_DATA / "math" / "aime24.jsonl").read_text().splitlines()]


def test_curation_keeps_correct_wellformed_traces_and_says_why_for_the_rest(tmp_path):
    good = GOOD.format(work="6 * 7 = 42", answer=42)
    traces = [
        trace("p1", 0, good),
        trace("p1", 1, good),  # exact duplicate of sample 0
        trace("p1", 2, GOOD.format(work="6 * 7 = 41", answer=41)),  # wrong answer
        trace("p1", 3, "<think>\n6 * 7 = 4", finish="length"),  # truncated
        trace("p2", 0, "<think>\nno end " + GOOD.format(work="x", answer=42).split("<think>")[1].replace("</think>", "")),
        trace("p2", 1, GOOD.format(work="6 * 7 = 42. 所以答案是四十二，我们再检查一遍这个乘法的结果是否正确无误。", answer=42)),
        trace("p2", 2, GOOD.format(work="Wait, let me check this again carefully.\n" * 15, answer=42)),
        trace("p2", 3, None, status="failed", error="HTTP 500"),
        trace("p3", 0, good, problem="Solve this: " + AIME[0]["problem"]),  # contaminated prompt
        trace("p4", 0, GOOD.format(work="fine", answer="\\frac{1}{2}"), answer="0.5", difficulty=3),
        trace("p4", 1, GOOD.format(work="also fine, a bit longer", answer="0.5"), answer="0.5", difficulty=3, tokens=80),
    ]
    path, run = write_run(tmp_path, traces, decontamination={
        "benchmarks": [{"name": "aime24", "source": str(SHARED_DATA / "math" / "aime24.jsonl")}]})
    out = curate(load_config(path, CurateConfig))
    summary = json.loads((out / "curation.json").read_text())
    rejected = {(r["prompt_id"], r["sample_index"]): r["reason"] for r in pq.read_table(out / "rejected-00000.parquet").to_pylist()}
    assert rejected[("p1", 1)] == "duplicate response"
    assert rejected[("p1", 2)] == "wrong answer"
    assert rejected[("p1", 3)] == "truncated (finish_reason length)"
    assert rejected[("p2", 0)] == "format: no closing </think>"
    assert rejected[("p2", 1)].startswith("language mixing")
    assert rejected[("p2", 2)].startswith("repetition")
    assert rejected[("p2", 3)] == "generation failed: HTTP 500"
    assert rejected[("p3", 0)] == "contaminated: overlaps aime24#0"
    kept = {(r["prompt_id"], r["sample_index"]) for r in pq.read_table(out / "train-00000.parquet").to_pylist()}
    assert kept == {("p1", 0), ("p4", 0), ("p4", 1)}
    assert summary["accepted"] == 3 and summary["rejected"] == 8 and summary["traces"] == 11
    assert summary["rejected_by_reason"]["wrong answer"] == 1
    assert summary["per_difficulty"]["3"]["acceptance_rate"] == 1.0
    assert summary["cost_per_accepted_trace_usd"] == pytest.approx(2.0 / 3)
    # The students stage trains on it directly.
    dataset = load_messages(str(out), split="train")
    assert len(dataset) == 3 and dataset[0]["messages"][-1]["role"] == "assistant"


def test_selection_policies_and_idempotence(tmp_path):
    traces = [trace("p1", i, GOOD.format(work="w" * (10 - i), answer=42), tokens=100 - i) for i in range(4)]
    path, run = write_run(tmp_path, traces, selection={"max_per_prompt": 1, "policy": "shortest"})
    cfg = load_config(path, CurateConfig)
    out = curate(cfg)
    kept = pq.read_table(out / "train-00000.parquet").to_pylist()
    assert [r["sample_index"] for r in kept] == [3]  # fewest tokens
    first = (out / "train-00000.parquet").read_bytes()
    curate(cfg)  # same traces, same config: same output (verdicts come from the cache)
    assert (out / "train-00000.parquet").read_bytes() == first
    random_cfg = load_config(path, CurateConfig, ["curate.selection.policy=random"])
    picks = {pq.read_table(curate(random_cfg) / "train-00000.parquet").to_pylist()[0]["sample_index"] for _ in range(2)}
    assert len(picks) == 1  # seeded


def test_code_traces_are_run_in_the_sandbox(tmp_path):
    lcb = json.loads((SHARED_DATA / "code" / "livecodebench_2408_2501_public_tests.json").read_text())[0]
    program = "n = int(input())\na = list(map(int, input().split()))\nprint(a.index(sorted(a)[-2]) + 1)\n"
    right = "<think>\nsort\n</think>\n\n```python\n" + program + "```"
    wrong = "<think>\nguess\n</think>\n\n```python\nprint(1)\n```"
    traces = [trace("c1", 0, right, answer=None, tests=lcb["tests"]), trace("c1", 1, wrong, answer=None, tests=lcb["tests"])]
    path, run = write_run(tmp_path, traces)
    out = curate(load_config(path, CurateConfig))
    assert [r["sample_index"] for r in pq.read_table(out / "train-00000.parquet").to_pylist()] == [0]
    reason = pq.read_table(out / "rejected-00000.parquet").to_pylist()[0]["reason"]
    assert reason.startswith("code failed: test 0: wrong output")


def test_curate_without_traces_is_a_usage_error(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "run_dir": str(tmp_path / "none"),
                                    "prompts": {"source": str(SHARED_DATA / "math" / "aime24.jsonl")}}))
    result = run_cli("curate", path)
    assert result.returncode == 2 and "no traces to curate" in result.stderr


def test_near_duplicate_responses_are_rejected_when_enabled(tmp_path):
    work = " ".join(f"line {i}: multiply {i} by 6 and add {i + 1} to the running total" for i in range(30))
    traces = [trace("p1", 0, GOOD.format(work=work, answer=42)),
              trace("p1", 1, GOOD.format(work=work + " Done.", answer=42)),
              trace("p1", 2, GOOD.format(work="A different, short derivation: 6 * 7 = 42.", answer=42))]
    path, run = write_run(tmp_path, traces, near_dedup={"enabled": True, "threshold": 0.8}, repetition={"enabled": False})
    out = curate(load_config(path, CurateConfig))
    kept = sorted(r["sample_index"] for r in pq.read_table(out / "train-00000.parquet").to_pylist())
    assert kept == [0, 2]
    assert pq.read_table(out / "rejected-00000.parquet").to_pylist()[0]["reason"] == "near-duplicate of sample 0"


def test_retried_traces_streamed_into_several_shards_in_trace_order(tmp_path, monkeypatch):
    import distill.curate.run as curate_run

    monkeypatch.setattr(curate_run, "SHARD_ROWS", 3)
    good = [trace(f"p{p}", i, GOOD.format(work=f"{p} * {i} work", answer=42)) for p in range(3) for i in range(3)]
    failed = trace("p0", 1, None, status="failed", error="timeout")
    lost = trace("p9", 0, None, status="failed", error="HTTP 500")
    path, run = write_run(tmp_path, [good[0], failed, lost] + good[2:])
    write_traces(run / "traces", [good[1]])  # p0/1 retried later, in a later shard
    out = curate(load_config(path, CurateConfig))
    tables = [pq.read_table(p) for p in sorted(out.glob("train-*.parquet"))]
    assert [t.num_rows for t in tables] == [3, 3, 3]
    assert len({t.schema for t in tables}) == 1
    kept = [r["trace_id"] for t in tables for r in t.to_pylist()]
    assert kept == [t.to_row()["trace_id"] for t in [good[0]] + good[2:] + [good[1]]]  # the order they are stored in
    rejected = pq.read_table(out / "rejected-00000.parquet").to_pylist()
    assert [(r["trace_id"], r["reason"]) for r in rejected] == [("p9/0", "generation failed: HTTP 500")]
    assert len(load_messages(str(out), split="train")) == 9


def test_latest_rank_makes_the_choice_of_latest_rows(tmp_path):
    import random

    from distill.traces import iter_batches, latest_rank, latest_rows

    rng = random.Random(0)
    for shard in range(5):
        write_traces(tmp_path, [trace(f"p{rng.randint(0, 9)}", rng.randint(0, 2), f"{shard}-{k}", status=rng.choice(["ok", "failed"]))
                      for k in range(40)])
    stored = [row for _, batch in iter_batches(tmp_path, ["response", "status"]) for row in batch.to_pylist()]
    rank = latest_rank(tmp_path)
    chosen = sorted((index, row) for index, row in zip(rank, stored) if index >= 0)
    assert [row for _, row in chosen] == [{"response": r["response"], "status": r["status"]} for r in latest_rows(tmp_path)]


def test_repeated_curation_takes_math_verdicts_from_the_cache(tmp_path, monkeypatch):
    import distill.verify.math as math_scorer

    traces = [trace("p1", 0, GOOD.format(work="a", answer="3\\sqrt{2}"), answer="2\\sqrt{3}"),
              trace("p1", 1, GOOD.format(work="b", answer="2\\sqrt{3}"), answer="2\\sqrt{3}")]
    path, run = write_run(tmp_path, traces)
    cfg = load_config(path, CurateConfig)
    first = pq.read_table(curate(cfg) / "rejected-00000.parquet").to_pylist()

    def no_scoring(items):
        raise AssertionError("scored again")

    monkeypatch.setattr(math_scorer, "_score_texts", no_scoring)
    second = pq.read_table(curate(cfg) / "rejected-00000.parquet").to_pylist()
    assert [r["reason"] for r in second] == [r["reason"] for r in first] == ["wrong answer"]


def test_decontamination_against_every_benchmark_of_the_eval_suites(tmp_path):
    """The suites' own task definitions name what to check: AIME, MATH-500, LiveCodeBench..., local copies offline."""
    math500 = json.loads((SHARED_DATA / "math" / "math500.jsonl").read_text().splitlines()[7])["problem"]
    lcb = json.loads((SHARED_DATA / "code" / "livecodebench_2408_2501_public_tests.json").read_text())[3]["problem"]
    good = GOOD.format(work="6 * 7 = 42", answer=42)
    traces = [trace("clean", 0, good), trace("m", 0, good, problem=f"Here is a task. {math500}"),
              trace("c", 0, good, problem=lcb[:400]), trace("a", 0, good, problem=AIME[5]["problem"])]
    local = {"aime24": str(SHARED_DATA / "math" / "aime24.jsonl"), "aime25": str(SHARED_DATA / "math" / "aime25.jsonl"),
             "math500": str(SHARED_DATA / "math" / "math500.jsonl"),
             "livecodebench": str(SHARED_DATA / "code" / "livecodebench_2408_2501_public_tests.json")}
    path, _ = write_run(tmp_path, traces, decontamination={"suites": ["eval/suites/r1.yaml"], "local_files": local})
    # gpqa_diamond (Hub only, gated) has no local copy: the error says which suite and how to go offline.
    failed = run_cli("curate", path)
    assert failed.returncode == 2 and "curate.decontamination.suites" in failed.stderr and "local_files" in failed.stderr
    gpqa = tmp_path / "gpqa.json"
    gpqa.write_text(json.dumps([{"Question": "Which particle mediates the strong force between quarks inside hadrons "
                                 "according to quantum chromodynamics?", "Correct Answer": "gluon",
                                 "Incorrect Answer 1": "photon", "Incorrect Answer 2": "W boson", "Incorrect Answer 3": "graviton"}]))
    path, _ = write_run(tmp_path, traces, decontamination={"suites": ["eval/suites/r1.yaml"],
                                                            "local_files": {**local, "gpqa_diamond": str(gpqa)}})
    out = curate(load_config(path, CurateConfig))
    rejected = {r["prompt_id"]: r["reason"] for r in pq.read_table(out / "rejected-00000.parquet").to_pylist()}
    assert rejected == {"m": "contaminated: overlaps math500#7", "c": "contaminated: overlaps livecodebench#3",
                        "a": "contaminated: overlaps aime24#5"}


@pytest.mark.parametrize("verifier", ["auto", "math", "code"])
def test_a_prompt_without_a_reference_is_rejected_unless_unverified_traces_are_accepted_by_name(tmp_path, verifier):
    good = GOOD.format(work="6 * 7 = 42", answer=42)
    traces = [trace("p1", 0, good), trace("p2", 0, good, answer=None), trace("p3", 0, good, answer="  ")]
    if verifier == "code":
        traces = [trace("p1", 0, "<think>\nw\n</think>\n\n```python\nprint(1)\n```", answer=None, tests=[]),
                  trace("p2", 0, good, answer="42")]
    (tmp_path / "strict").mkdir()
    path, run = write_run(tmp_path / "strict", traces, verifier=verifier)
    out = curate(load_config(path, CurateConfig))
    rejected = {r["prompt_id"]: r["reason"] for r in pq.read_table(out / "rejected-00000.parquet").to_pylist()}
    assert set(rejected.values()) == {"no reference"}
    assert set(rejected) == ({"p1", "p2"} if verifier == "code" else {"p2", "p3"})

    (tmp_path / "lenient").mkdir()
    path, run = write_run(tmp_path / "lenient", traces, verifier=verifier, accept_unverified=True)
    out = curate(load_config(path, CurateConfig))
    summary = json.loads((out / "curation.json").read_text())
    assert summary["accepted"] == (2 if verifier == "code" else 3)
    assert summary["accepted_unverified"] == 2


def test_an_output_that_would_replace_the_traces_is_refused_and_the_traces_survive(tmp_path):
    path, run = write_run(tmp_path, [trace("p1", 0, GOOD.format(work="6 * 7 = 42", answer=42))])
    shards = sorted((run / "traces").iterdir())
    result = run_cli("curate", path, "curate.output=traces")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: curate.output: {run / 'traces'} holds files that no distill curate wrote; curate replaces its output "
        "directory whole, so it must be new, empty, or an earlier output of this stage"]
    assert sorted((run / "traces").iterdir()) == shards
    result = run_cli("curate", path, "curate.output=..")
    assert result.returncode == 2 and "curate.output" in result.stderr and "string should match pattern" in result.stderr.lower()
    assert run_cli("curate", path).returncode == 0 and run_cli("curate", path).returncode == 0  # its own output: replaced


def old_schema_shard(path, traces):
    """`traces` as a shard of the earlier schema: messages, tests and sampling as JSON strings, and final_answer."""
    import pyarrow as pa

    from distill.traces import SCHEMA

    json_columns = ("prompt_messages", "tests", "sampling")
    fields = [pa.field(f.name, pa.string()) if f.name in json_columns else f for f in SCHEMA]
    fields.insert(SCHEMA.get_field_index("reasoning") + 1, pa.field("final_answer", pa.string()))
    rows = []
    for t in traces:
        row = t.to_row()
        row.update(prompt_messages=json.dumps(t.prompt_messages), sampling=json.dumps(t.sampling, sort_keys=True),
                   tests=None if t.tests is None else json.dumps(t.tests), final_answer="unused")
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema(fields)), path)


def test_shards_of_the_earlier_schema_load_and_curate_as_before(tmp_path):
    from distill.traces import prompt_digests, read_table

    lcb = json.loads((SHARED_DATA / "code" / "livecodebench_2408_2501_public_tests.json").read_text())[0]
    program = "n = int(input())\na = list(map(int, input().split()))\nprint(a.index(sorted(a)[-2]) + 1)\n"
    good = GOOD.format(work="6 * 7 = 42", answer=42)
    traces = [trace("p1", 0, good), trace("p1", 1, good), trace("p1", 2, GOOD.format(work="w", answer=41)),
              trace("c1", 0, "<think>\nsort\n</think>\n\n```python\n" + program + "```", answer=None, tests=lcb["tests"]),
              trace("c1", 1, "<think>\nguess\n</think>\n\n```python\nprint(1)\n```", answer=None, tests=lcb["tests"]),
              trace("h1", 0, "<think>\nw\n</think>\n\n```python\ndef f(x):\n    return x + 1\n```", answer=None,
                    tests=["assert f(1) == 2", "assert f(2) == 3"])]
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    new_path, new_run = write_run(tmp_path / "new", traces)
    old_path, old_run = write_run(tmp_path / "old", [])
    old_schema_shard(old_run / "traces" / "shard-000000.parquet", traces)

    old, new = read_table(old_run / "traces"), read_table(new_run / "traces")
    assert old.schema == new.schema and old.to_pylist() == new.to_pylist()
    assert prompt_digests(old_run / "traces") == prompt_digests(new_run / "traces")  # a resume sees the same prompts
    outputs = [curate(load_config(path, CurateConfig)) for path in (old_path, new_path)]
    for name in ("train-00000.parquet", "rejected-00000.parquet"):
        old_rows, new_rows = (pq.read_table(out / name).to_pylist() for out in outputs)
        assert old_rows == new_rows
    kept = pq.read_table(outputs[0] / "train-00000.parquet").to_pylist()
    assert [r["trace_id"] for r in kept] == ["p1/0", "c1/0", "h1/0"]
    for row in kept:  # what students read: the stored prompt, then the response
        assert row["messages"] == row["prompt_messages"] + [{"role": "assistant", "content": row["response"]}]
    rejected = {r["trace_id"]: r["reason"] for r in pq.read_table(outputs[0] / "rejected-00000.parquet").to_pylist()}
    assert rejected["p1/1"] == "duplicate response" and rejected["p1/2"] == "wrong answer"
    assert rejected["c1/1"].startswith("code failed: test 0: wrong output")


@pytest.mark.parametrize("tests", [
    None, [], "def check(candidate):\n    assert candidate(1) == 2\n", "", ["assert f(1) == 2", "assert f(2) == 3"],
    [{"input": "1\n", "output": "2\n", "testtype": "stdin"}, {"input": "[1]", "output": "2", "testtype": "functional"}],
    [{"input": "1\n", "output": "2\n"}], ["assert True", {"input": "", "output": "1"}],
    [{"input": 5, "output": "1"}], {"inputs": [], "outputs": []}, [1, 2], [{"input": "", "output": "", "testtype": None}],
    [{"input": "", "output": "", "testtype": "assert"}], [{"input": "", "output": "", "extra": "é"}], 7,
])
def test_tests_of_every_form_come_back_as_the_verifier_takes_them(tmp_path, tests):
    from distill.traces import SCHEMA, TESTS, read_table, stored_tests
    from distill.verify.stored_tests import reference_tests

    stored = stored_tests(tests)
    assert reference_tests(stored) == tests
    assert reference_tests(pa_roundtrip(stored, TESTS)) == tests
    write_traces(tmp_path, [trace("p", 0, "x", tests=tests)])
    assert reference_tests(read_table(tmp_path, ["tests"]).column("tests")[0].as_py()) == tests
    assert read_table(tmp_path).schema == SCHEMA


def pa_roundtrip(value, type):
    import pyarrow as pa

    return pa.array([value], type).to_pylist()[0]


def test_the_shard_writer_shows_only_whole_shards(tmp_path):
    import pyarrow as pa

    from distill.shards import ShardWriter

    schema = pa.schema([("x", pa.int64())])
    writer = ShardWriter(tmp_path, schema, prefix="train", digits=5, max_rows=3)
    writer.write(pa.table({"x": list(range(7))}, schema=schema))
    assert sorted(p.name for p in tmp_path.glob("train-*.parquet")) == ["train-00000.parquet", "train-00001.parquet"]
    assert [p.name for p in tmp_path.glob(".*.tmp")] == [".train-00002.tmp"]  # the open one: hidden, not a shard
    assert [p.name for p in writer.close()] == ["train-00000.parquet", "train-00001.parquet", "train-00002.parquet"]
    assert [pq.read_table(p).num_rows for p in sorted(tmp_path.glob("train-*.parquet"))] == [3, 3, 1]
    assert not list(tmp_path.glob(".*.tmp"))

    crashed = ShardWriter(tmp_path, schema, prefix="train", digits=5, max_rows=3)
    crashed.write(pa.table({"x": [1]}, schema=schema))  # never ended: a crash
    again = ShardWriter(tmp_path, schema, prefix="train", digits=5)  # removes what the crash left, numbers on
    assert not list(tmp_path.glob(".*.tmp")) and again.write_rows([{"x": 1}]).name == "train-00003.parquet"
    empty = ShardWriter(tmp_path / "empty", schema, prefix="rejected", digits=5)
    assert [pq.read_table(p).num_rows for p in empty.close(keep_empty=True)] == [0]
