"""The teacher stage's generation: traces, prompt sources, engines, resume (hf engine and a fake API)."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from support import ROOT, SHARED_DATA
from distill.config import load_config
from distill.engines import EngineError, SamplingParams
from distill.engines.openai import OpenAIEngine
from distill.errors import DistillError, UsageError
from distill.engines.config import EngineSection
from distill.curate.config import CurateConfig
from distill.teacher.generate import generate
from distill.teacher.prompts import load_prompts
from distill.traces import latest_rows, read_table
from distill.verify.reasoning import split_reasoning
from support.fake_openai import FakeOpenAIServer

TEACHER = ROOT / "toy" / "teacher"


def run_yaml(tmp_path, world, **over):
    cfg = {
        "name": "t", "run_dir": str(tmp_path / "run"),
        "prompts": {"source": str(world / "prompts" / "test.jsonl"), "limit": 6},
        "engine": {"kind": "hf", "model": str(TEACHER)},
        "sampling": {"n": 2, "max_tokens": 120, "seed": 0},
        "flush_every": 2,
    }
    for key, value in over.items():
        section, _, field = key.partition("__")
        if field:
            cfg[section][field] = value
        else:
            cfg[key] = value
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_split_reasoning():
    assert split_reasoning("<think>\nA\n</think>\n\nB") == ("A", "B")
    assert split_reasoning("A\n</think>\nB") == ("A", "B")  # R1's template pre-fills <think>
    assert split_reasoning("no think here") == (None, "no think here")


def test_prompt_sources_and_field_mapping(tmp_path):
    from distill.teacher.config import PromptsSection

    shared = PromptsSection(source=str(SHARED_DATA / "math" / "math500.jsonl"),
                            fields={"id": "unique_id", "problem": "problem", "answer": "answer"})
    prompts = load_prompts(shared)
    assert len(prompts) == 500 and prompts[0].id.endswith(".json") and prompts[0].answer
    hashed = load_prompts(PromptsSection(source=str(SHARED_DATA / "train" / "math_train_deepscaler.json"),
                                         fields={"problem": "problem", "answer": "answer"}, limit=50))
    assert all(p.id.startswith("h") for p in hashed) and "difficulty" in hashed[0].metadata
    instruction = "\nPlease reason step by step, and put your final answer within \\boxed{}."
    messages = hashed[0].messages("{problem}" + instruction, None)
    assert messages == [{"role": "user", "content": hashed[0].problem + instruction}]
    with pytest.raises(UsageError, match=r"prompts.fields: .* has no column for id -> 'nope'"):
        load_prompts(PromptsSection(source=shared.source, fields={"id": "nope", "problem": "problem"}))


def test_hf_engine_generates_all_samples_and_rerun_is_idempotent(tmp_path, toy_world):
    cfg = load_config(run_yaml(tmp_path, toy_world), CurateConfig)
    traces = generate(cfg)
    rows = latest_rows(traces)
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}
    assert {(r["prompt_id"], r["sample_index"]) for r in rows} == {(f"toy-test-{i:06d}", s) for i in range(6) for s in range(2)}
    row = rows[0]
    assert row["reasoning"] is not None and "\\boxed{" in split_reasoning(row["response"])[1] and row["answer"] is not None
    assert row["sampling"]["temperature"] == 0.6 and row["completion_tokens"] > 0
    summary = json.loads((tmp_path / "run" / "generate_summary.json").read_text())
    assert summary["ok"] == 12 and summary["finish_reasons"] == {"stop": 12}
    shards = len(list((tmp_path / "run" / "traces").glob("shard-*.parquet")))
    generate(cfg)  # everything done: nothing requested, nothing written
    assert len(list((tmp_path / "run" / "traces").glob("shard-*.parquet"))) == shards
    with pytest.raises(UsageError, match="different sampling.temperature"):
        generate(load_config(run_yaml(tmp_path, toy_world), CurateConfig, ["sampling.temperature=1.0"]))


@pytest.mark.slow
def test_killed_generation_resumes_without_duplicates(tmp_path, toy_world):
    path = run_yaml(tmp_path, toy_world, prompts__limit=30, flush_every=4)
    command = [sys.executable, "-m", "distill", "generate", str(path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    traces = tmp_path / "run" / "traces"
    deadline = time.time() + 120
    while len(list(traces.glob("shard-*.parquet"))) < 2:
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = read_table(traces).num_rows
    assert 0 < partial < 60
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming:" in result.stdout
    table = read_table(traces)
    pairs = list(zip(table.column("prompt_id").to_pylist(), table.column("sample_index").to_pylist()))
    assert len(pairs) == len(set(pairs)) == 60  # every pair exactly once across all shards


def engine_cfg(*urls, **over):
    settings = dict(max_retries=4, backoff_base_s=0.01, backoff_max_s=0.05, endpoint_cooldown_s=0.2, vllm_extensions=False)
    return EngineSection(kind="openai", model="fake", base_urls=list(urls), **{**settings, **over})


MESSAGES = [{"role": "user", "content": "Compute 1 + 1."}]


def run_engine(engine, *params):
    """complete() once per SamplingParams, concurrently, and close the engine's session."""
    async def go():
        try:
            return await asyncio.gather(*(engine.complete(MESSAGES, p) for p in params))
        finally:
            await engine.close()

    return asyncio.run(go())


def test_openai_engine_retries_5xx_empty_and_dropped_connections():
    with FakeOpenAIServer(["500", "empty", "drop", "ok"]) as server:
        (result,) = run_engine(OpenAIEngine(engine_cfg(server.base_url)), SamplingParams(n=3))
    assert len(result.completions) == 3 and len(result.errors) == 3
    assert "HTTP 500" in result.errors[0] and "empty 200" in result.errors[1] and "connection" in result.errors[2]
    assert [c.completion_tokens for c in result.completions] == [5, 5, 5]  # usage total shared by length
    assert server.requests[-1]["n"] == 3 and "seed" not in server.requests[-1]


def test_openai_engine_gives_up_with_the_reason():
    with FakeOpenAIServer(["500"] * 10) as server:
        with pytest.raises(EngineError, match="gave up after 3 tries; last: .*HTTP 500"):
            run_engine(OpenAIEngine(engine_cfg(server.base_url, max_retries=2)), SamplingParams(n=1))


def test_failed_and_missing_samples_are_recorded_not_dropped(tmp_path, toy_world):
    with FakeOpenAIServer(["short"] + ["500"] * 3) as server:
        path = run_yaml(tmp_path, toy_world, prompts__limit=2, sampling={"n": 3, "max_tokens": 50})
        cfg = load_config(path, CurateConfig, ["engine.kind=openai", "engine.model=fake", "engine.max_concurrency=1",
                                                 f"engine.base_urls=[{server.base_url}]", "engine.max_retries=2",
                                                 "engine.backoff_base_s=0.01", "engine.vllm_extensions=false"])
        with pytest.raises(DistillError, match="4 of 6 samples still failed after retries.*rerun the same command"):
            generate(cfg)
    rows = sorted(latest_rows(tmp_path / "run" / "traces"), key=lambda r: (r["prompt_id"], r["sample_index"]))
    assert len(rows) == 6
    first, second = rows[:3], rows[3:]
    assert [r["status"] for r in first] == ["ok", "ok", "failed"]  # the server returned 2 of 3
    assert "returned 2 of 3" in first[2]["error"]
    assert all(r["status"] == "failed" and "HTTP 500" in r["error"] for r in second)
    # Resumed with a healthy server: only the failed pairs are asked again, and they supersede the failures.
    with FakeOpenAIServer() as server:
        generate(load_config(path, CurateConfig, ["engine.kind=openai", "engine.model=fake",
                                                    f"engine.base_urls=[{server.base_url}]", "engine.vllm_extensions=false"]))
        assert sorted(r["n"] for r in server.requests) == [1, 3]
    rows = latest_rows(tmp_path / "run" / "traces")
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)


def test_dead_endpoint_is_taken_out_and_work_moves_to_the_other():
    with FakeOpenAIServer() as alive:
        dead = "http://127.0.0.1:9/v1"  # nothing listens there
        engine = OpenAIEngine(engine_cfg(dead, alive.base_url, endpoint_failures_before_down=1))
        results = run_engine(engine, *[SamplingParams(n=2)] * 8)
    assert all(len(r.completions) == 2 and r.endpoint == alive.base_url for r in results)
    assert engine.endpoints[0].outages >= 1 and engine.endpoints[1].served == 8


def test_code_prompts_use_their_own_templates_and_parse_tests():
    cfg = load_config(ROOT / "teacher" / "runs" / "code.yaml", CurateConfig,
                      [f"prompts.source={SHARED_DATA / 'code' / 'livecodebench_2408_2501_public_tests.json'}"])
    prompts = load_prompts(cfg.prompts)
    assert len(prompts) == 279
    stdin = next(p for p in prompts if not p.metadata["starter_code"])
    functional = next(p for p in prompts if p.metadata["starter_code"])
    assert stdin.tests[0]["testtype"] == "stdin" and isinstance(stdin.tests[0]["input"], str)  # Python-literal tests parsed
    p = cfg.prompts

    def text(prompt):
        return prompt.messages(p.template, p.system_prompt, p.alt_template, p.alt_template_field)[0]["content"]

    assert "Read the inputs from stdin" in text(stdin) and "starter code" not in text(stdin)
    assert functional.metadata["starter_code"].strip() in text(functional) and "stdin" not in text(functional)


def test_all_endpoints_down_fails_the_request_after_the_limit():
    engine = OpenAIEngine(engine_cfg("http://127.0.0.1:9/v1", endpoint_failures_before_down=1, max_retries=50,
                                     all_down_timeout_s=0.5))
    with pytest.raises(EngineError, match="every endpoint has been down"):
        run_engine(engine, SamplingParams(n=1))
