"""Selection by difficulty: the teacher's pass-rate band, the s1/LIMO-style subset, the student pass-rate filter."""

import json
import os
import random
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from support import ROOT, run_cli
from distill.config import load_config
from distill.curate.config import CurateSection
from distill.curate.keep import keep_or_reject
from distill.curate.run import curate
from distill.curate.screen import Outcome
from distill.curate.selection import SelectionInputs
from distill.curate.config import CurateConfig
from distill.traces import Trace, write_traces
from distill.verify.verdict import Verdict

TOY_TEACHER = ROOT / "toy" / "teacher"  # committed: a "student" that already solves about half the toy problems


def outcomes_for(prompt: str, results: list[bool], source: str = "s", lengths: list[int] | None = None) -> list[Outcome]:
    """One prompt's k samples, each verified right or wrong (as screening leaves them)."""
    lengths = lengths or [10 + i for i in range(len(results))]
    return [Outcome(f"{prompt}-{i}", prompt, i, source, "2", n, n, response_key=f"{prompt}-{i}".encode(),
                    verdict=Verdict(ok, "correct" if ok else "wrong answer")) for i, (ok, n) in enumerate(zip(results, lengths))]


def curate_section(**selection) -> CurateSection:
    return CurateSection(decontamination={"enabled": False}, selection=selection)


def kept_prompts(kept: list[Outcome]) -> set[str]:
    return {o.prompt_id for o in kept}


def test_band_keeps_exactly_the_prompts_whose_teacher_pass_rate_is_inside():
    outcomes = (outcomes_for("always", [True] * 4) + outcomes_for("half", [True, False, True, False])
                + outcomes_for("once", [False, False, True, False]) + outcomes_for("never", [False] * 4)
                + outcomes_for("three", [True, True, False, True]))
    selection = SelectionInputs()
    kept, rejected = keep_or_reject(outcomes, curate_section(pass_rate={"min": 0.3, "max": 0.75}), selection)
    assert kept_prompts(kept) == {"half", "three"}
    assert len(kept) == 2 + 3
    reasons = {o.trace_id: o.reason for o in rejected}
    assert reasons["always-0"] == "pass rate: 1.00 above 0.75"
    assert reasons["once-2"] == "pass rate: 0.25 below 0.30"
    assert reasons["never-0"] == "wrong answer" and reasons["half-1"] == "wrong answer"
    assert {p: r.rate for p, r in selection.teacher.items()} == {"always": 1.0, "half": 0.5, "once": 0.25, "never": 0.0,
                                                                 "three": 0.75}
    # The band's ends are inclusive: [0.25, 1.0] keeps every prompt with a correct sample.
    kept, _ = keep_or_reject(outcomes_for("always", [True] * 4) + outcomes_for("once", [False, False, True, False]),
                             curate_section(pass_rate={"min": 0.25, "max": 1.0}))
    assert kept_prompts(kept) == {"always", "once"}


def test_pass_rate_counts_only_verified_samples():
    outcomes = outcomes_for("p", [True, False, True])
    outcomes.append(Outcome("p-3", "p", 3, "s", "2", 5, 5, reason="format: no closing </think>"))  # never judged
    selection = SelectionInputs()
    keep_or_reject(outcomes, curate_section(), selection)
    assert (selection.teacher["p"].correct, selection.teacher["p"].verified) == (2, 3)


def subset_pool(seed: int = 0) -> list[Outcome]:
    """Three sources of unequal size; pass rates from 0.25 to 1; lengths differ by sample."""
    rng = random.Random(seed)
    pool = []
    for source, size in (("a", 8), ("b", 3), ("c", 1)):
        for i in range(size):
            solved = 1 + i % 4
            pool += outcomes_for(f"{source}{i}", [True] * solved + [False] * (4 - solved), source,
                                 lengths=[rng.randint(10, 99) for _ in range(4)])
    return pool


def test_subset_respects_count_quotas_difficulty_and_length():
    pool = subset_pool()
    longest = {}
    for o in pool:
        if o.verdict.correct and o.length > longest.get(o.prompt_id, (-1, ""))[0]:
            longest[o.prompt_id] = (o.length, o.trace_id)
    kept, rejected = keep_or_reject(pool, curate_section(subset={"count": 5, "diversity": "source"}, seed=3))
    assert len(kept) == 5 and len(kept_prompts(kept)) == 5  # one trace per prompt
    by_source = {s: sorted(o.prompt_id for o in kept if o.source == s) for s in "abc"}
    # Round-robin: c has one prompt, so a and b share the other four evenly.
    assert [len(by_source[s]) for s in "abc"] == [2, 2, 1]
    # Hardest first within a source: a's prompts with pass rate 0.25 are a0 and a4.
    assert by_source["a"] == ["a0", "a4"] and by_source["b"] == ["b0", "b1"]
    assert all(o.trace_id == longest[o.prompt_id][1] for o in kept)  # the longest correct trace
    assert {o.reason for o in rejected if o.verdict.correct} == {"not in subset"}


def test_subset_is_deterministic_whatever_the_order_and_seeded():
    chosen = []
    for order_seed in range(3):
        pool = subset_pool()
        random.Random(order_seed).shuffle(pool)
        kept, _ = keep_or_reject(pool, curate_section(subset={"count": 4, "difficulty": "random", "length": "any"}, seed=7))
        chosen.append(sorted(o.trace_id for o in kept))
    assert chosen[0] == chosen[1] == chosen[2]
    other = [sorted(o.trace_id for o in keep_or_reject(subset_pool(), curate_section(
        subset={"count": 4, "difficulty": "random", "length": "any"}, seed=s))[0]) for s in range(8, 12)]
    assert any(c != chosen[0] for c in other)  # the seed matters


def test_subset_length_band_and_count_larger_than_pool():
    pool = outcomes_for("p", [True, True], lengths=[5, 500]) + outcomes_for("q", [True], lengths=[7])
    kept, rejected = keep_or_reject(pool, curate_section(subset={"count": 10, "max_tokens": 100}))
    assert sorted(o.trace_id for o in kept) == ["p-0", "q-0"]  # p's 500-token trace is outside the band
    assert [o.reason for o in rejected] == ["not in subset"]


def write_config(tmp_path: Path, selection: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "run_dir": str(tmp_path / "run"),
                                    "prompts": {"source": str(tmp_path / "p.jsonl")}, "curate": {"selection": selection}}))
    (tmp_path / "p.jsonl").write_text('{"id": "a", "problem": "1 + 1", "answer": "2"}\n')
    return path


def test_bad_selection_config_is_one_line_naming_the_key(tmp_path):
    for selection, key in (({"pass_rate": {"min": 0.8, "max": 0.2}}, "curate.selection.pass_rate"),
                           ({"pass_rate": {"max": 1.5}}, "curate.selection.pass_rate.max"),
                           ({"pass_rate": {"min": -0.1}}, "curate.selection.pass_rate.min"),
                           ({"subset": {"count": 0}}, "curate.selection.subset.count"),
                           ({"student": {"model": "m", "max": 2}}, "curate.selection.student.max")):
        result = run_cli("curate", write_config(tmp_path, selection))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and key in lines[0] and "Traceback" not in result.stderr, (selection, result.stderr)


def toy_traces(world: Path, count: int) -> list[Trace]:
    """Teacher traces for the first toy problems: all correct (the programmatic chains), k = 2 each."""
    from distill.toy.task import R1_MATH_INSTRUCTION

    rows = [json.loads(line) for line in (world / "prompts" / "train.jsonl").read_text().splitlines()[:count]]
    traces = []
    for row in rows:
        for index in range(2):
            response = f"<think>\nworking, take {index}\n</think>\n\nThe answer is \\boxed{{{row['answer']}}}."
            traces.append(Trace(prompt_id=row["id"], source="toy", sample_index=index, teacher="t", engine="hf",
                                prompt_messages=[{"role": "user", "content": f"{row['problem']}\n{R1_MATH_INSTRUCTION}"}],
                                sampling={"n": 2}, status="ok", response=response, finish_reason="stop",
                                completion_tokens=20, answer=row["answer"], metadata={"difficulty": row["difficulty"]}))
    return traces


def student_run(tmp_path: Path, world: Path, model: Path, count: int = 16) -> Path:
    run = tmp_path / "run"
    if not (run / "traces").exists():
        write_traces(run / "traces", toy_traces(world, count))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "name": "toy", "run_dir": str(run), "prompts": {"source": str(world / "prompts" / "train.jsonl")},
        "curate": {"verifier": "math", "decontamination": {"enabled": False}, "workers": 1, "selection": {
            "student": {"model": str(model), "engine": "hf", "k": 4, "max": 0.5, "max_tokens": 120}}}}))
    return path


def test_student_filter_drops_what_the_student_already_solves_and_caches_its_samples(tmp_path, toy_world, capsys):
    # The committed toy teacher stands in for a strong base student: it solves some toy problems and not others.
    config = student_run(tmp_path, toy_world, TOY_TEACHER)
    out = curate(load_config(config, CurateConfig))
    run = tmp_path / "run"
    cache = [row for path in (run / "student_pass").rglob("rates-*.parquet") for row in pq.read_table(path).to_pylist()]
    assert len(cache) == 16 and all(r["samples"] == 4 for r in cache)
    rates = {r["prompt_id"]: r["correct"] / r["samples"] for r in cache}
    solved = {p for p, r in rates.items() if r > 0.5}
    assert solved and len(solved) < 16  # the toy teacher is good, not perfect
    train = pq.read_table(sorted(out.glob("train-*.parquet"))[0], columns=["prompt_id"]).column("prompt_id").to_pylist()
    assert set(train) == set(rates) - solved
    rejected = pq.read_table(sorted(out.glob("rejected-*.parquet"))[0], columns=["prompt_id", "reason"]).to_pylist()
    assert {r["prompt_id"] for r in rejected} == solved
    assert all(r["reason"] == f"student pass rate: {rates[r['prompt_id']]:.2f} above 0.50" for r in rejected)
    summary = json.loads((out / "curation.json").read_text())
    assert summary["rejected_by_reason"] == {"student pass rate": 2 * len(solved)}
    assert summary["student_pass_rates"]["prompts"] == 16
    assert summary["pass_rates"]["always_solved"] == {"kept": 16 - len(solved), "dropped": len(solved)}

    # A rerun samples nothing: the student's results are read back from the run directory.
    capsys.readouterr()
    curate(load_config(config, CurateConfig))
    assert "all 16 prompts cached" in capsys.readouterr().out
    assert len(list((run / "student_pass").rglob("rates-*.parquet"))) == 1


def test_student_filter_with_an_untrained_toy_base_drops_nothing(tmp_path, toy_world):
    config = student_run(tmp_path, toy_world, toy_world / "bases" / "qwen2-h64-l2", count=6)
    out = curate(load_config(config, CurateConfig))
    summary = json.loads((out / "curation.json").read_text())
    assert summary["accepted"] == 12 and summary["student_pass_rates"]["mean"] == 0.0


def test_student_filter_samples_only_prompts_inside_the_teachers_band(tmp_path, toy_world, capsys):
    config = student_run(tmp_path, toy_world, toy_world / "bases" / "qwen2-h64-l2", count=4)
    recipe = yaml.safe_load(config.read_text())
    recipe["curate"]["selection"]["pass_rate"] = {"max": 0.75}  # every toy trace here is right: pass rate 1.0
    config.write_text(yaml.safe_dump(recipe))
    out = curate(load_config(config, CurateConfig))
    assert "all 0 prompts cached" in capsys.readouterr().out  # nothing sampled for prompts the band drops
    assert json.loads((out / "curation.json").read_text())["rejected_by_reason"] == {"pass rate": 8}


def test_student_filter_that_cannot_sample_stops_with_one_line_and_caches_nothing(tmp_path, toy_world):
    # A FAKE OpenAI-compatible server stands in for a served base student (tests/support/fake_openai.py).
    from support.fake_openai import FakeOpenAIServer

    config = student_run(tmp_path, toy_world, toy_world / "bases" / "qwen2-h64-l2", count=3)
    recipe = yaml.safe_load(config.read_text())
    student = recipe["curate"]["selection"]["student"]
    cache = tmp_path / "run" / "student_pass"

    malformed = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]}
    with FakeOpenAIServer(faults=[malformed] * 20) as server:
        student.update(engine="openai", model="fake-student", base_urls=[server.base_url])
        config.write_text(yaml.safe_dump(recipe))
        result = run_cli("curate", config)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: curate.selection.student: sampling failed for all 3 prompts")
    assert server.base_url in error[0]
    assert not list(cache.rglob("rates-*.parquet"))  # nothing cached: the next run asks again

    with FakeOpenAIServer() as server:  # the student is served now: every prompt gets its k samples
        student["base_urls"] = [server.base_url]
        config.write_text(yaml.safe_dump(recipe))
        curate(load_config(config, CurateConfig))
        assert len(server.requests) == 3
    rows = [row for path in cache.rglob("rates-*.parquet") for row in pq.read_table(path).to_pylist()]
    assert sorted(r["samples"] for r in rows) == [4, 4, 4]


def test_student_filter_model_that_is_not_there_is_one_line(tmp_path, toy_world):
    for model, needle in ((str(tmp_path / "no-student"), "path does not exist"),
                          ("probe-org/no-such-model", "cannot load 'probe-org/no-such-model' (hf)")):
        config = student_run(tmp_path, toy_world, toy_world / "bases" / "qwen2-h64-l2", count=2)
        recipe = yaml.safe_load(config.read_text())
        recipe["curate"]["selection"]["student"]["model"] = model
        config.write_text(yaml.safe_dump(recipe))
        result = run_cli("curate", config, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert "curate.selection.student.model" in lines[0] and needle in lines[0], lines[0]
