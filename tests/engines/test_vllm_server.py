"""The teacher stage against a REAL vLLM server (the CPU build, in .venv-vllm) serving the toy teacher."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from support import ROOT, free_port, needs_vllm, run_cli
from distill.traces import latest_rows, read_table

pytestmark = [pytest.mark.slow, needs_vllm]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """`distill serve teacher/toy-cpu.yaml` on a free port; stopped with `distill serve --stop`."""
    run_dir = tmp_path_factory.mktemp("serve")
    port = free_port()
    args = [ROOT / "teacher" / "toy-cpu.yaml", f"port={port}", f"run_dir={run_dir}"]
    started = run_cli("serve", *args, timeout=600)
    assert started.returncode == 0, started.stdout + started.stderr + (run_dir / "toy-cpu.log").read_text()[-3000:]
    assert "ready at" in started.stdout
    yield f"http://127.0.0.1:{port}/v1", port, run_dir
    stopped = run_cli("serve", *args, "--stop", timeout=120)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout


def run_yaml(tmp_path, world, base_urls, **engine):
    cfg = {
        "name": "vllm-test", "run_dir": str(tmp_path / "run"),
        "prompts": {"source": str(world / "prompts" / "test.jsonl"), "limit": 50},
        "engine": {"kind": "openai", "model": "toy/teacher", "base_urls": base_urls, "max_concurrency": 4,
                   "per_endpoint_concurrency": 2, "timeout_s": 60, "backoff_base_s": 0.2, "endpoint_cooldown_s": 1,
                   "endpoint_failures_before_down": 1, **engine},
        "sampling": {"n": 4, "max_tokens": 120, "seed": 0, "top_logprobs": 5},
        "flush_every": 8, "flush_seconds": 1,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def generate_cmd(path):
    return [sys.executable, "-m", "distill", "generate", str(path)]


def wait_for(predicate, proc, timeout=300):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_engine_processes_run_at_lower_priority_than_the_api_front_end(vllm_server):
    """teacher/toy-cpu.yaml sets engine_nice: the busy-polling engine must not starve the front end."""
    import psutil

    _, _, run_dir = vllm_server
    server = psutil.Process(json.loads((run_dir / "toy-cpu.pid").read_text())["pid"])  # the PID file records pid, start, cmdline
    engine = server.children(recursive=True)
    assert server.nice() == 0
    assert engine and all(child.nice() == 10 for child in engine)
    assert any("EngineCor" in child.name() for child in engine)


def test_real_server_generation_killed_and_resumed_ends_with_200_unique_traces(tmp_path, toy_world, vllm_server):
    base_url, _, _ = vllm_server
    path = run_yaml(tmp_path, toy_world, [base_url])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(generate_cmd(path), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    traces = tmp_path / "run" / "traces"
    wait_for(lambda: len(list(traces.glob("shard-*.parquet"))) >= 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = read_table(traces).num_rows
    assert 0 < done_before < 200

    result = subprocess.run(generate_cmd(path), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resuming: {done_before} samples already done" in result.stdout
    table = read_table(traces)
    pairs = list(zip(table.column("prompt_id").to_pylist(), table.column("sample_index").to_pylist()))
    assert len(pairs) == len(set(pairs)) == 200
    rows = latest_rows(traces)
    assert all(r["status"] == "ok" and r["finish_reason"] in ("stop", "length") for r in rows)
    assert all(r["endpoint"] == base_url for r in rows)
    # vLLM extensions: exact token counts and top-5 logprobs with token ids, one entry per generated token, stored
    # flat (int32 ids, float16 logprobs): the sampled token is the most likely one or among the five.
    row = rows[0]
    assert row["completion_tokens"] == len(row["token_ids"])
    assert len(row["logprob_ids"]) == len(row["logprobs"]) == 5 * len(row["token_ids"])
    first = row["logprob_ids"][:5]
    assert all(i >= 0 for i in first) and row["logprobs"][0] <= 0 and row["token_ids"][0] in first
    assert read_table(traces).schema.field("logprobs").type.value_type == "halffloat"
    # Different samples of one prompt differ (per-request seeds), at least somewhere among 50 prompts.
    by_prompt = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], set()).add(r["response"])
    assert any(len(v) > 1 for v in by_prompt.values())
    summary = json.loads((tmp_path / "run" / "generate_summary.json").read_text())
    assert summary["ok"] == 200 and summary["completion_tokens"] > 0


def test_one_of_two_endpoints_dies_mid_run_and_nothing_is_lost(tmp_path, toy_world, vllm_server):
    base_url, port, _ = vllm_server
    proxy_port = free_port()
    proxy = subprocess.Popen([sys.executable, str(ROOT / "tests" / "support" / "tcp_proxy.py"), str(proxy_port), str(port)],
                             stdout=subprocess.PIPE, text=True)
    assert proxy.stdout.readline().strip() == "ready"
    proxy_url = f"http://127.0.0.1:{proxy_port}/v1"
    path = run_yaml(tmp_path, toy_world, [proxy_url, base_url])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(generate_cmd(path), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    traces = tmp_path / "run" / "traces"
    try:
        wait_for(lambda: read_table(traces).num_rows >= 40, proc)
    finally:
        proxy.kill()  # the endpoint dies with requests in flight
        proxy.wait()
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert f"endpoint {proxy_url} taken out" in out
    rows = latest_rows(traces)
    assert len(rows) == 200 and all(r["status"] == "ok" for r in rows)
    endpoints = {r["endpoint"] for r in rows}
    assert endpoints == {proxy_url, base_url}  # both served before the death; the survivor finished


def test_server_scores_equal_the_local_teachers_logprobs(vllm_server):
    """The served teacher's top-k (prompt_logprobs) for a sequence are the local model's, position by position."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.students.logit_teacher import ServerScorer
    from distill.engines.config import EngineSection

    base_url, _, _ = vllm_server
    tokenizer = AutoTokenizer.from_pretrained(ROOT / "toy" / "teacher")
    model = AutoModelForCausalLM.from_pretrained(ROOT / "toy" / "teacher", dtype=torch.float32).eval()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Compute 12 + 5 - 30."}], add_generation_prompt=True,
                                           tokenize=True, return_dict=True)["input_ids"]
    sequence = list(prompt) + tokenizer("<think>\n12 + 5 = 17\n17 - 30 = -13\n</think>", add_special_tokens=False)["input_ids"]
    scorer = ServerScorer(EngineSection(kind="openai", model="toy/teacher", base_urls=[base_url]), top_k=5)
    try:
        [(ids, values)] = scorer.score([sequence], [len(prompt)])
    finally:
        scorer.close()
    with torch.no_grad():
        local = torch.log_softmax(model(torch.tensor([sequence])).logits[0, len(prompt) - 1:-1], -1).topk(5)
    assert len(ids) == len(sequence) - len(prompt)
    assert ids == local.indices.tolist()
    assert torch.allclose(torch.tensor(values), local.values, atol=2e-3)


def test_on_policy_run_against_the_served_teacher(tmp_path, vllm_server):
    """`method: on-policy` with teacher.base_urls: the student (a copy of the teacher) samples, the server scores every
    sampled token; a student equal to its teacher has (almost) nothing to learn."""
    base_url, _, _ = vllm_server
    rows = [{"messages": [{"role": "user", "content": f"Compute {a} + {b}.\nPlease reason step by step, and put your final "
                                                      "answer within \\boxed{}."}, {"role": "assistant", "content": "x"}]}
            for a, b in [(3, 4), (12, 30), (7, 41), (25, 2)]]
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {"name": "op-server", "run_dir": str(tmp_path / "run"), "method": "on-policy",
              "model": {"name_or_path": str(ROOT / "toy" / "teacher"), "family": "qwen", "dtype": "float32"},
              "data": {"source": str(data)},
              "training": {"max_length": 256, "max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-4,
                           "bf16": False, "gradient_checkpointing": False, "logging_steps": 1, "save_steps": 100},
              "teacher": {"base_urls": [base_url], "served_model_name": "toy/teacher", "tokenizer": str(ROOT / "toy" / "teacher"),
                          "top_k": 5},
              "distillation": {"max_completion_length": 64}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(recipe))
    done = run_cli("train", path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"served at {base_url}" in done.stdout
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["method"] == "on-policy" and summary["steps"] == 3 and summary["teacher_tokens_scored"] > 3 * 4 * 5
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(-1e-6 < loss < 0.05 for loss in losses)  # top-5 reverse KL of a model to itself
