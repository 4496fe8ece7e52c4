"""One odd answer never kills generation: a 200 whose body does not fit fails that sample with its reason,
and the run goes on. The odd answers come from a FAKE hosted API (tests/support/fake_openai.py)."""

import asyncio
import json

import pytest

from distill.engines import SamplingParams
from distill.engines.openai import OpenAIEngine
from distill.engines.config import EngineSection
from distill.curate.config import CurateConfig
from distill.teacher.generate import generate
from distill.shards import ShardWriter
from distill.traces import SCHEMA, Trace, latest_rows, read_table, storable_row
from distill.verify.reasoning import split_reasoning
from support.fake_openai import FakeOpenAIServer


def config(tmp_path, server, prompts: int, n: int = 1, **over) -> CurateConfig:
    source = tmp_path / "prompts.jsonl"
    source.write_text("".join(json.dumps({"id": f"p{i:02d}", "problem": f"Compute {i} + 1.", "answer": str(i + 1)}) + "\n"
                              for i in range(prompts)))
    engine = {"kind": "openai", "model": "fake", "base_urls": [server.base_url], "max_concurrency": 1, "max_retries": 2,
              "backoff_base_s": 0.01, "backoff_max_s": 0.02, "vllm_extensions": False}
    raw = {"name": "odd", "run_dir": str(tmp_path / "run"), "prompts": {"source": str(source)},
           "engine": {**engine, **over.pop("engine", {})}, "sampling": {"n": n, "max_tokens": 50}, **over}
    return CurateConfig.model_validate(raw)


def choice(content, index=0, **extra):
    return {"index": index, "finish_reason": "stop", "message": {"role": "assistant", "content": content}, **extra}


USAGE = {"prompt_tokens": 10, "completion_tokens": 5}
ODD = [  # (body of a 200, what the failed sample's error says)
    ({"choices": [choice(42)], "usage": USAGE}, "message.content is a number 42, not text"),
    ({"choices": [choice(None)], "usage": USAGE}, "message.content is null"),
    ({"choices": [choice([{"type": "image_url", "image_url": {}}])], "usage": USAGE}, "not a text part"),
    ({"choices": [choice("4")], "usage": {"prompt_tokens": "10", "completion_tokens": "5"}},
     "usage.prompt_tokens is a string '10', not a token count"),
    ({"choices": [choice("4")], "usage": {"prompt_tokens": 10, "completion_tokens": 2**40}}, "usage.completion_tokens is a number"),
    ({"choices": [choice("4")], "usage": [10, 5]}, "usage is a list"),
    ({"choices": {"0": choice("4")}, "usage": USAGE}, "choices is an object"),
    ({"choices": ["4"], "usage": USAGE}, "malformed choice 0: a string '4', not an object"),
    ({"choices": [{"index": 0, "finish_reason": "stop"}], "usage": USAGE}, "malformed choice 0: message is null"),
    ({"choices": [choice("4", index="zero")], "usage": USAGE}, "index is a string"),
    ({"choices": [{**choice("4"), "finish_reason": 1}], "usage": USAGE}, "finish_reason is a number"),
    ({"choices": [choice("4", token_ids="1 2 3")], "usage": USAGE}, "token_ids is a string"),
    ({"choices": [choice("4", logprobs={"content": [{"token": 7, "top_logprobs": "x"}]})], "usage": USAGE}, "malformed choice 0"),
    (b"[1, 2]", "the body is a list"),
    (b'"just text"', "the body is a string"),
]


def rows_by_prompt(tmp_path) -> dict:
    return {(r["prompt_id"], r["sample_index"]): r for r in latest_rows(tmp_path / "run" / "traces")}


def test_odd_answers_fail_their_sample_with_the_reason_and_the_run_goes_on(tmp_path):
    with FakeOpenAIServer([body for body, _ in ODD]) as server:  # one odd answer per prompt, in order; then healthy
        generate(config(tmp_path, server, len(ODD) + 1, max_failed_fraction=1.0))
        assert len(server.requests) == len(ODD) + 1  # a body that does not fit is not retried: its reason is final
    rows = rows_by_prompt(tmp_path)
    assert len(rows) == len(ODD) + 1
    for i, (_, reason) in enumerate(ODD):
        row = rows[(f"p{i:02d}", 0)]
        assert row["status"] == "failed" and "malformed" in row["error"] and reason in row["error"], (i, row["error"])
    assert rows[(f"p{len(ODD):02d}", 0)]["status"] == "ok"
    # A rerun asks again for exactly the failed samples, and does not die on any of them.
    with FakeOpenAIServer() as server:
        generate(config(tmp_path, server, len(ODD) + 1))
        assert len(server.requests) == len(ODD)
    assert all(r["status"] == "ok" for r in rows_by_prompt(tmp_path).values())


def test_one_malformed_choice_fails_only_its_sample(tmp_path):
    body = {"choices": [choice("<think>\nok\n</think>\n\n4"), choice(42, index=1)], "usage": USAGE}
    with FakeOpenAIServer([body]) as server:
        generate(config(tmp_path, server, 1, n=2, max_failed_fraction=0.5))
    rows = rows_by_prompt(tmp_path)
    assert rows[("p00", 0)]["status"] == "ok" and split_reasoning(rows[("p00", 0)]["response"])[1] == "4"
    assert rows[("p00", 0)]["completion_tokens"] == 5 and rows[("p00", 0)]["prompt_tokens"] == 10
    assert rows[("p00", 1)]["status"] == "failed" and "malformed choice 1: message.content is a number" in rows[("p00", 1)]["error"]


def engine_cfg(url, **over):
    settings = dict(max_retries=3, backoff_base_s=0.01, backoff_max_s=0.02, vllm_extensions=False)
    return EngineSection(kind="openai", model="fake", base_urls=[url], **{**settings, **over})


def complete(engine):
    async def go():
        try:
            return await engine.complete([{"role": "user", "content": "Compute 1 + 1."}], SamplingParams(n=1))
        finally:
            await engine.close()

    return asyncio.run(go())


def test_content_as_a_list_of_text_parts_is_joined():
    parts = [{"type": "text", "text": "<think>\nadd\n</think>\n\n"}, {"type": "text", "text": "2"}]
    body = {"choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"content": parts, "reasoning_content": [{"type": "text", "text": "one plus one"}]}}]}
    with FakeOpenAIServer([body]) as server:
        result = complete(OpenAIEngine(engine_cfg(server.base_url)))
    assert result.completions[0].error is None
    assert result.completions[0].text == "<think>\none plus one\n</think>\n\n<think>\nadd\n</think>\n\n2"


def test_a_zero_byte_200_is_retried():
    with FakeOpenAIServer(["zero", "ok"]) as server:
        result = complete(OpenAIEngine(engine_cfg(server.base_url)))
    assert len(server.requests) == 2 and result.completions[0].error is None and result.completions[0].text
    assert "empty 200 response (zero-byte body)" in result.errors[0]


@pytest.mark.timeout(60)
def test_a_server_answering_each_first_request_with_zero_bytes_does_not_stall_the_run(tmp_path):
    with FakeOpenAIServer(first_per_prompt="zero") as server:
        cfg = config(tmp_path, server, 12, n=2, engine={"max_concurrency": 8, "per_endpoint_concurrency": 2})
        generate(cfg)  # exits cleanly: every sample ok after one retry
        assert len(server.requests) == 24
    rows = rows_by_prompt(tmp_path)
    assert len(rows) == 24 and all(r["status"] == "ok" for r in rows.values())


def test_rows_are_checked_before_they_are_buffered(tmp_path):
    base = dict(prompt_id="p", source="s", prompt_messages=[{"role": "user", "content": "q"}], teacher="t", engine="openai",
                sampling={}, created=1.0)
    good = storable_row(Trace(**base, sample_index=0, response="<think>a</think>4", completion_tokens=3))
    not_text = storable_row(Trace(**base, sample_index=1, response=5))
    too_many = storable_row(Trace(**base, sample_index=2, response="4", completion_tokens=2**40))
    assert good["status"] == "ok" and split_reasoning(good["response"])[1] == "4"
    for row in (not_text, too_many):
        assert row["status"] == "failed" and row["error"].startswith("answer does not fit the trace schema")
        assert row["response"] is None and row["completion_tokens"] is None
    ShardWriter(tmp_path, SCHEMA).write_rows([good, not_text, too_many])  # the shard holds all three
    table = read_table(tmp_path)
    assert table.num_rows == 3 and table.schema == SCHEMA
