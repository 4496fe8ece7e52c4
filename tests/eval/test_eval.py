"""`distill eval` end to end on the toy teacher (hf engine): every suite task on the shared benchmark files,
the toy suite's pass@1 against the teacher's known figure, resume, one-line errors, and the lm-eval hooks alone."""

import gzip
import json
import os
import shutil
import socket

import pyarrow.parquet as pq
import pytest
import yaml

from support import ROOT, SHARED_DATA, run_cli
from distill.eval.docs import R1_MATH_INSTRUCTION, normalise
from distill.eval.run import SAMPLE_SCHEMA
from distill.eval.score import score_samples
from distill.io import read_jsonl

TEACHER = ROOT / "toy" / "teacher"
TOY_PROMPTS = ROOT / "runs" / "toy" / "world" / "prompts" / "test.jsonl"  # where the toy task reads by default
GPQA_ROWS = [
    {"Record ID": "recA", "Question": "Which gas makes up most of Earth's atmosphere?", "Correct Answer": "Nitrogen",
     "Incorrect Answer 1": "Oxygen", "Incorrect Answer 2": "Argon", "Incorrect Answer 3": "Carbon dioxide"},
    {"Record ID": "recB", "Question": "What is the spin of a photon?", "Correct Answer": "1",
     "Incorrect Answer 1": "1/2", "Incorrect Answer 2": "0", "Incorrect Answer 3": "3/2"},
]
# task -> (the local copy, its layout); GPQA is gated on the Hub, so its file is written by the test.
LOCAL = {
    "distill_aime24": (SHARED_DATA / "math" / "aime24.jsonl", "math"),
    "distill_aime25": (SHARED_DATA / "math" / "aime25.jsonl", "math"),
    "distill_math500": (SHARED_DATA / "math" / "math500.jsonl", "math"),
    "distill_amc23": (SHARED_DATA / "math" / "amc23.jsonl", "math"),
    "distill_livecodebench": (SHARED_DATA / "code" / "livecodebench_2408_2501_public_tests.json", "livecodebench"),
    "distill_humaneval": (SHARED_DATA / "code" / "HumanEval.jsonl.gz", "humaneval"),
    "distill_gpqa_diamond": (None, "gpqa"),
}
LIMIT, SAMPLES = 2, 2
RESULT_KEYS = {"problems", "samples", "pass@1", "ci95", "cons@n", "n", "pass@k", "length", "per_problem"}


def read_rows(path) -> list[dict]:
    path = str(path)
    if path.endswith(".gz"):
        with gzip.open(path, "rt") as f:
            return [json.loads(line) for line in f if line.strip()]
    if path.endswith(".json"):
        return json.loads(open(path).read())
    return read_jsonl(path)


def suite_benchmarks(name: str) -> list[dict]:
    return yaml.safe_load((ROOT / "eval" / "suites" / f"{name}.yaml").read_text())["benchmarks"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def toy_prompts(tmp_path_factory):
    """The toy world's 200 test prompts: the built world's, or the same ones generated (a fresh clone)."""
    if TOY_PROMPTS.exists():
        return TOY_PROMPTS
    from distill.config import load_config
    from distill.toy import task as toy_task
    from distill.toy.world import ToyWorldConfig

    cfg = load_config(ROOT / "configs" / "toy-world.yaml", ToyWorldConfig, [])
    problems = toy_task.generate(cfg.task, "test", cfg.test_problems, cfg.seed)
    path = tmp_path_factory.mktemp("toy-prompts") / "test.jsonl"
    path.write_text("".join(json.dumps(toy_task.prompt_record(p, "test", i)) + "\n" for i, p in enumerate(problems)))
    return path


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory, toy_prompts):
    """One `distill eval` over every r1 and extra benchmark (2 problems x 2 samples, 24 tokens, local files) and
    the toy suite's benchmark in full (200 problems x 4 samples, its own 160 tokens), on the toy teacher."""
    tmp = tmp_path_factory.mktemp("eval")
    gpqa = tmp / "gpqa_diamond.jsonl"
    gpqa.write_text("".join(json.dumps(r) + "\n" for r in GPQA_ROWS))
    toy = yaml.safe_load((ROOT / "eval" / "suites" / "toy.yaml").read_text())
    benchmarks = suite_benchmarks("r1") + suite_benchmarks("extra")
    toy_bench = {**toy["benchmarks"][0], "max_tokens": toy["protocol"]["max_tokens"]}
    if toy_prompts != TOY_PROMPTS:
        toy_bench["data_files"] = str(toy_prompts)
    suite = {**toy, "name": "all", "benchmarks": benchmarks + [toy_bench], "unsafe_code": True}  # code benchmarks
    (tmp / "suite.yaml").write_text(yaml.safe_dump(suite))
    args = ["eval", tmp / "suite.yaml", f"model={TEACHER}", "model.engine=hf", f"runs_dir={tmp / 'out'}",
            "protocol.max_tokens=24"]
    files = {}
    for i, bench in enumerate(benchmarks):
        files[bench["name"]] = LOCAL[bench["task"]][0] or gpqa
        args += [f"benchmarks.{i}.data_files={files[bench['name']]}", f"benchmarks.{i}.limit={LIMIT}",
                 f"benchmarks.{i}.samples={SAMPLES}"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp / "out" / "teacher"
    return {"args": args, "result": result, "dir": run_dir, "benchmarks": benchmarks, "files": files,
            "results": json.loads((run_dir / "results.json").read_text())}


def samples_of(run, name: str) -> list[dict]:
    table = pq.read_table(run["dir"] / "samples" / f"{name}.parquet")
    assert table.schema.names == SAMPLE_SCHEMA.names
    return table.to_pylist()


@pytest.mark.slow
def test_every_suite_task_loads_its_local_file_and_keeps_every_repeat(suite_run):
    assert {b["name"] for b in suite_run["benchmarks"]} == {
        "aime24", "aime25", "math500", "gpqa_diamond", "livecodebench", "amc23", "humaneval"}
    any_repeats_differ = False
    for bench in suite_run["benchmarks"]:
        name = bench["name"]
        rows = samples_of(suite_run, name)
        assert len(rows) == LIMIT * SAMPLES, name
        # The prompt and reference of each problem are the normalised first rows of the file.
        docs = normalise(read_rows(suite_run["files"][name])[:LIMIT], LOCAL[bench["task"]][1])
        by_id = {d["problem_id"]: d for d in docs}
        assert {r["problem_id"] for r in rows} == set(by_id), name
        for row in rows:
            doc = by_id[row["problem_id"]]
            assert row["benchmark"] == name and row["prompt"] == doc["prompt"] and row["reference"] == doc["answer"]
            assert row["correct"] == (row["reason"] == "correct") and row["response_tokens"] <= 24
        for problem_id in by_id:
            responses = [r["response"] for r in sorted(rows, key=lambda r: r["sample"]) if r["problem_id"] == problem_id]
            assert len(responses) == SAMPLES
            any_repeats_differ |= len(set(responses)) > 1
        if name == "aime25":  # its file carries the instruction; the prompt holds it once
            assert all(r["prompt"].count(R1_MATH_INSTRUCTION) == 1 for r in rows)
        if name == "gpqa_diamond":
            assert all(r["reference"] in "ABCD" and "A) " in r["prompt"] for r in rows)
        if name == "livecodebench":
            assert all("```python" in r["prompt"] for r in rows)
    assert any_repeats_differ  # samples are drawn independently, not one response copied


@pytest.mark.slow
def test_results_json_has_the_documented_fields(suite_run):
    results = suite_run["results"]
    manifest = json.loads((suite_run["dir"] / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["counts"]["samples"] == 7 * LIMIT * SAMPLES + 800
    assert yaml.safe_load((suite_run["dir"] / "config.yaml").read_text())["model"]["engine"] == "hf"
    assert results["model"] == {"label": "teacher", "name_or_path": str(TEACHER), "role": "student",
                                "params": results["model"]["params"]}
    assert 100_000 < results["model"]["params"] < 5_000_000  # counted from the safetensors header
    assert results["suite"] == "all"
    assert {"temperature": 0.6, "top_p": 0.95, "max_tokens": 24, "reasoning": True}.items() <= results["protocol"].items()
    assert list(results["benchmarks"]) == [b["name"] for b in suite_run["benchmarks"]] + ["toy"]
    for bench in suite_run["benchmarks"]:
        metrics = results["benchmarks"][bench["name"]]
        rows = samples_of(suite_run, bench["name"])
        assert set(metrics) == RESULT_KEYS
        assert (metrics["problems"], metrics["samples"], metrics["n"]) == (LIMIT, LIMIT * SAMPLES, SAMPLES)
        assert metrics["pass@1"] == pytest.approx(100 * sum(r["correct"] for r in rows) / len(rows))
        lo, hi = metrics["ci95"]
        assert lo <= metrics["pass@1"] <= hi
        assert set(metrics["pass@k"]) == {"1", "2"} and metrics["pass@k"]["1"] == pytest.approx(metrics["pass@1"])
        assert set(metrics["length"]) == {"mean", "median", "p90", "max"} and metrics["length"]["max"] <= 24
        assert set(metrics["per_problem"]) == {r["problem_id"] for r in rows}
        assert metrics["cons@n"] is None or 0 <= metrics["cons@n"] <= 100


def test_toy_prompts_fallback_matches_the_built_world(toy_prompts):
    if toy_prompts != TOY_PROMPTS:
        pytest.skip("no built toy world to compare with")
    from distill.config import load_config
    from distill.toy import task as toy_task
    from distill.toy.world import ToyWorldConfig

    cfg = load_config(ROOT / "configs" / "toy-world.yaml", ToyWorldConfig, [])
    problems = toy_task.generate(cfg.task, "test", cfg.test_problems, cfg.seed)
    assert [toy_task.prompt_record(p, "test", i) for i, p in enumerate(problems)] == read_jsonl(TOY_PROMPTS)


@pytest.mark.slow
def test_toy_suite_matches_the_teachers_known_pass_at_1_and_distill_score(suite_run, tmp_path):
    known = json.loads((TEACHER / "toy_teacher.json").read_text())
    toy = suite_run["results"]["benchmarks"]["toy"]
    assert (toy["problems"], toy["samples"], toy["n"]) == (known["problems"], 4 * known["problems"], 4)
    lo, hi = toy["ci95"]
    assert lo <= 100 * known["pass_at_1"] <= hi, toy
    assert hi - lo < 15
    assert toy["length"]["max"] <= 160 and toy["cons@n"] is not None

    # Re-scoring the saved responses with `distill score` gives the same verdict for every sample.
    rows = samples_of(suite_run, "toy")
    gens = tmp_path / "toy.jsonl"
    gens.write_text("".join(json.dumps({"response": r["response"], "answer": r["reference"]}) + "\n" for r in rows))
    result = run_cli("score", gens, "--workers", "1")
    assert result.returncode == 0, result.stderr
    rescored = [vs[0] for vs in read_jsonl(tmp_path / "toy.verdicts.jsonl")]
    assert [(v["correct"], v["extracted"], v["reason"]) for v in rescored] == \
        [(r["correct"], r["extracted"], r["reason"]) for r in rows]
    assert f"pass@1 = {toy['pass@1']:.1f}% " in result.stdout


@pytest.mark.slow
def test_rerun_resumes_and_a_changed_protocol_is_refused(suite_run):
    run_dir = suite_run["dir"]
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (run_dir / "samples").iterdir()}
    result = run_cli(*suite_run["args"])
    assert result.returncode == 0, result.stderr[-3000:]
    names = [b["name"] for b in suite_run["benchmarks"]] + ["toy"]
    for name in names:
        assert f"] {name}: done before, " in result.stdout
    assert "sample(s) per problem" not in result.stdout  # nothing generated again
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (run_dir / "samples").iterdir()} == before
    assert json.loads((run_dir / "results.json").read_text())["benchmarks"] == suite_run["results"]["benchmarks"]

    error = one_line_error(run_cli(*suite_run["args"], "protocol.temperature=0.7"))
    assert "protocol.temperature" in error and str(run_dir) in error
    assert json.loads((run_dir / "results.json").read_text())["protocol"]["temperature"] == 0.6


def toy_eval(tmp_path, *overrides):
    return run_cli("eval", ROOT / "eval" / "suites" / "toy.yaml", f"runs_dir={tmp_path / 'out'}", *overrides)


def test_bad_model_path_is_a_one_line_error(tmp_path):
    error = one_line_error(toy_eval(tmp_path, "model=/nonexistent/dir", "model.engine=hf"))
    assert "model.name_or_path" in error and "/nonexistent/dir" in error


def test_a_directory_that_is_not_a_checkpoint_is_a_one_line_error(tmp_path):
    (tmp_path / "notes").mkdir()
    error = one_line_error(toy_eval(tmp_path, f"model={tmp_path / 'notes'}", "model.engine=hf"))
    assert error == f"error: model.name_or_path: {tmp_path / 'notes'} is not a model checkpoint (no config.json in it)"


def test_unknown_task_lists_the_known_ones(tmp_path):
    error = one_line_error(toy_eval(tmp_path, f"model={TEACHER}", "benchmarks.0.task=nope"))
    assert "unknown task 'nope'" in error
    for task in LOCAL:
        assert task in error
    assert "distill_toy" in error


def test_unreachable_endpoint_is_a_one_line_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    error = one_line_error(toy_eval(tmp_path, f"model={TEACHER}", "model.engine=openai", f"model.base_url={url}"))
    assert f"cannot reach {url}" in error


def test_missing_data_file_is_a_one_line_error(tmp_path):
    missing = tmp_path / "nope.jsonl"
    error = one_line_error(toy_eval(tmp_path, f"model={TEACHER}", "model.engine=hf", f"benchmarks.0.data_files={missing}"))
    assert "benchmarks.0.data_files" in error and str(missing) in error


def test_lm_eval_scores_with_our_hooks_alone(toy_prompts):
    """lm-eval on its own (metrics computed, not predict_only) reports the pass@1 of our scoring."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    task = load_yaml(ROOT / "eval" / "tasks" / "distill_toy.yaml", resolve_func=True)
    task["repeats"] = 3
    task["generation_kwargs"] = {**task["generation_kwargs"], "max_gen_toks": 160}
    task["dataset_kwargs"] = {"data_files": {"test": str(toy_prompts)}}
    out = simple_evaluate(
        model=HFLM(pretrained=str(TEACHER), dtype="float32", device="cpu", batch_size=16), tasks=[task],
        # Our tasks only: the default would index lm-eval's thousands of bundled tasks first.
        task_manager=TaskManager(include_path=str(ROOT / "eval" / "tasks"), include_defaults=False),
        limit=5, log_samples=True, apply_chat_template=True, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
    )
    samples = out["samples"]["distill_toy"]
    assert len(samples) == 5 and all(len(s["filtered_resps"][0]) == 3 for s in samples)
    docs = [s["doc"] for s in samples for _ in range(3)]
    responses = [r for s in samples for r in s["filtered_resps"][0]]
    verdicts = score_samples(docs, responses, reasoning=True, workers=0)
    reported = out["results"]["distill_toy"]["pass@1,all-samples"]
    assert reported == pytest.approx(sum(v.correct for v in verdicts) / len(verdicts))


def test_each_repeat_of_a_prompt_gets_its_own_seed_and_a_second_run_builds_again():
    from distill.eval.config import SuiteConfig
    from distill.eval.lmeval import build_lm

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing is sent: only the request payloads are built
    cfg = SuiteConfig(name="t", benchmarks=[{"name": "toy", "task": "distill_toy"}], protocol={"seed": 5},
                      model={"name_or_path": str(TEACHER), "engine": "openai", "base_url": url})
    lm = build_lm(cfg, url)
    build_lm(cfg, url)  # a second evaluate() in the same process (the model class is registered once)
    a, b = [{"role": "user", "content": "Compute 1 + 2."}], [{"role": "user", "content": "Compute 2 + 2."}]
    gen = {"temperature": 0.6, "top_p": 0.95, "max_gen_toks": 16, "do_sample": True, "until": []}
    payloads = [lm._create_payload(m, generate=True, gen_kwargs=dict(gen)) for m in (a, a, b, a, b)]
    assert [p["seed"] for p in payloads] == [5, 6, 5, 7, 6]
    assert payloads[0]["temperature"] == 0.6 and payloads[0]["top_p"] == 0.95 and payloads[0]["max_tokens"] == 16


def test_thinking_returned_apart_by_a_reasoning_parser_is_scored_with_the_answer():
    from distill.eval.config import SuiteConfig
    from distill.eval.lmeval import build_lm
    from distill.verify.kinds import judge_math

    url = f"http://127.0.0.1:{free_port()}/v1"
    cfg = SuiteConfig(name="t", benchmarks=[{"name": "toy", "task": "distill_toy"}],
                      model={"name_or_path": str(TEACHER), "engine": "openai", "base_url": url})
    lm = build_lm(cfg, url)
    parsed = {"choices": [  # as vLLM --reasoning-parser deepseek_r1 and hosted R1 APIs answer
        {"index": 0, "message": {"role": "assistant", "reasoning_content": "2 + 2 = 4", "content": "\\boxed{4}"}},
        {"index": 1, "message": {"role": "assistant", "content": "<think>\n2 + 2 = 5\n</think>\n\n\\boxed{5}"}}]}
    first, second = lm.parse_generations(parsed)
    assert first == "<think>\n2 + 2 = 4\n</think>\n\n\\boxed{4}" and judge_math(first, "4").correct
    assert second == "<think>\n2 + 2 = 5\n</think>\n\n\\boxed{5}"


def test_a_model_retrained_in_place_is_evaluated_again(tmp_path, toy_prompts):
    model = tmp_path / "student"
    shutil.copytree(TEACHER, model)
    args = [f"model={model}", "model.engine=hf", "benchmarks.0.limit=3", "benchmarks.0.samples=1",
            f"benchmarks.0.data_files={toy_prompts}"]  # a clean checkout has no built toy world
    first = toy_eval(tmp_path, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    again = toy_eval(tmp_path, *args)
    assert "toy: done before, 3 samples kept" in again.stdout
    weights = model / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # as a new save would
    retrained = toy_eval(tmp_path, *args)
    assert retrained.returncode == 0, retrained.stderr[-3000:]
    assert "changed since its samples were drawn: evaluating it again" in retrained.stdout
    assert "done before" not in retrained.stdout and "toy: 1 sample(s) per problem" in retrained.stdout
