"""Curation of prompts without reference answers: the judge model (a FAKE judge server, the real toy teacher in
process, and the real toy teacher behind vLLM) and the R1-Distill convention for answers with no reasoning."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from aiohttp import web

from support import ROOT, SHARED_DATA, needs_vllm, run_cli, student_yaml
from distill.config import load_config
from distill.curate.model_judge import parse_judgement
from distill.curate.run import NO_REASONING, curate
from distill.errors import UsageError
from distill.curate.config import CurateConfig
from distill.traces import Trace, write_traces
from support.fake_openai import FakeOpenAIServer

TEACHER = ROOT / "toy" / "teacher"


class FakeJudgeServer(FakeOpenAIServer):
    """A FAKE judge behind the OpenAI API: the answer it grades carries its score as `GRADE=N`; `GARBLE` gets an answer
    with no score, and anything else a score of 7. `faults` (as the fake server's) apply first."""

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.faults:
            return await super()._chat(request)
        body = await request.json()
        self.requests.append(body)
        graded = body["messages"][-1]["content"].split("[Answer]", 1)[-1]
        if "GARBLE" in graded:
            content = "What a lovely poem, I enjoyed reading it."
        else:
            grade = graded.split("GRADE=", 1)[1].split()[0] if "GRADE=" in graded else "7"
            content = f"Follows the request; clear.\nScore: {grade}"
        return web.json_response({"choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": content}}],
                                  "usage": {"prompt_tokens": 50, "completion_tokens": 9}})


def trace(pid, index, response, finish="stop", problem=None, **kw):
    problem = problem or f"Write a two-line poem about the sea ({pid})."
    return Trace(prompt_id=pid, source="writing", prompt_messages=[{"role": "user", "content": problem}],
                 sample_index=index, teacher="t", engine="openai", sampling={"n": 2}, status="ok", response=response,
                 finish_reason=finish, completion_tokens=40, answer=None, metadata={"category": "Generation"}, **kw)


def r1(answer, thinking="The user wants a poem. Plan: two lines, rhyme."):
    return f"<think>\n{thinking}\n</think>\n\n{answer}"


def write_run(tmp_path, traces, judge=None, **curate_cfg):
    run = tmp_path / "run"
    write_traces(run / "traces", traces)
    curate = {"verifier": "none", "answer_only": True, "decontamination": {"enabled": False}, **curate_cfg}
    if judge:
        curate["judge"] = judge
    cfg = {"name": "general", "run_dir": str(run), "prompts": {"source": str(SHARED_DATA / "math" / "aime24.jsonl")},
           "curate": curate}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, run


def fake_judge(server, **over):
    return {"enabled": True, "model": "fake-judge", "base_urls": [server.base_url], "threshold": 6,
            "engine": {"max_concurrency": 4, "max_retries": 0, "backoff_base_s": 0.01}, **over}


def rows(out, kind):
    return {(r["prompt_id"], r["sample_index"]): r for p in sorted(out.glob(f"{kind}-*.parquet"))
            for r in pq.read_table(p).to_pylist()}


POEMS = [
    trace("p1", 0, r1("The sea is wide and deep,\nits secrets it will keep. GRADE=8")),
    trace("p1", 1, r1("Sea. Water. GRADE=3")),
    trace("p1", 2, r1("The sea is wide and deep,\nits secrets it will keep. GRADE=8")),  # an exact duplicate of p1/0
    trace("p2", 0, r1("Waves roll in, waves roll out. GARBLE")),
    trace("p2", 1, "<think>\nA poem about the sea, so", finish="length"),  # truncated: the filters reject it first
    trace("p1", 3, r1("Sea. Water. GRADE=3")),  # an exact duplicate of p1/1
]


def test_judge_scores_keep_or_reject_by_threshold_and_are_stored_with_the_traces(tmp_path):
    with FakeJudgeServer() as server:
        path, run = write_run(tmp_path, POEMS, judge=fake_judge(server))
        out = curate(load_config(path, CurateConfig))
        # One request per distinct response still in the running: not the duplicate, not the truncated sample.
        assert len(server.requests) == 3
        asked = [r["messages"][0]["content"] for r in server.requests]
        assert all("Write a two-line poem about the sea" in a and "Score: N" in a for a in asked)
        assert not any("Plan: two lines" in a for a in asked)  # the judge reads the answer, not the reasoning
        assert {r["model"] for r in server.requests} == {"fake-judge"} and server.requests[0]["temperature"] == 0

    train, rejected = rows(out, "train"), rows(out, "rejected")
    assert set(train) == {("p1", 0)}
    kept = train[("p1", 0)]
    assert kept["judge_score"] == 8 and kept["judge_model"] == "fake-judge"
    assert kept["judge_reason"] == "Follows the request; clear."
    # Trained as an answer with no reasoning (answer_only), in the R1-Distill form.
    assert kept["messages"][-1] == {"role": "assistant",
                                    "content": NO_REASONING + "The sea is wide and deep,\nits secrets it will keep. GRADE=8"}
    assert rejected[("p1", 1)]["reason"] == "judge: score 3 < 6" and rejected[("p1", 1)]["judge_score"] == 3
    # A repeated response carries the judgement of the one the judge read.
    assert rejected[("p1", 2)]["reason"] == "duplicate response" and rejected[("p1", 2)]["judge_score"] == 8
    assert rejected[("p1", 3)]["reason"] == "judge: score 3 < 6" and rejected[("p1", 3)]["judge_score"] == 3
    unparseable = rejected[("p2", 0)]
    assert unparseable["reason"] == ("judge: unparseable: no 'Score: N' line: "
                                     "'What a lovely poem, I enjoyed reading it.'")
    assert unparseable["judge_score"] is None and unparseable["judge_model"] == "fake-judge"
    assert rejected[("p2", 1)]["reason"] == "truncated (finish_reason length)" and rejected[("p2", 1)]["judge_model"] is None
    summary = json.loads((out / "curation.json").read_text())
    assert summary["accepted"] == 1 and summary["rejected_by_reason"]["judge"] == 3


def test_a_repeated_curation_reuses_the_judgements_even_with_another_threshold(tmp_path):
    with FakeJudgeServer() as server:
        path, run = write_run(tmp_path, POEMS, judge=fake_judge(server))
        first = curate(load_config(path, CurateConfig))
        before = (first / "train-00000.parquet").read_bytes()
        asked = len(server.requests)
        again = curate(load_config(path, CurateConfig))
        assert len(server.requests) == asked  # nothing asked twice
        assert (again / "train-00000.parquet").read_bytes() == before
        stricter = curate(load_config(path, CurateConfig, ["curate.judge.threshold=9"]))
        assert len(server.requests) == asked
        assert rows(stricter, "train") == {}
        assert rows(stricter, "rejected")[("p1", 0)]["reason"] == "judge: score 8 < 9"
        # Another rubric is another judgement: asked again.
        curate(load_config(path, CurateConfig, ["curate.judge.rubric=Grade this: {response}. End with Score: N"]))
        assert len(server.requests) == 2 * asked


def test_a_failed_judge_request_rejects_its_trace_with_the_reason_and_is_asked_again_next_time(tmp_path):
    with FakeJudgeServer(faults=["500"]) as server:
        judge = fake_judge(server, engine={"max_concurrency": 1, "max_retries": 0})  # in order: p1/0 gets the 500
        path, run = write_run(tmp_path, POEMS[:2], judge=judge)
        out = curate(load_config(path, CurateConfig))
        reason = rows(out, "rejected")[("p1", 0)]["reason"]
        assert reason.startswith("judge: request failed: EngineError: gave up after 1 tries") and "HTTP 500" in reason
        assert rows(out, "rejected")[("p1", 1)]["reason"] == "judge: score 3 < 6"
        out = curate(load_config(path, CurateConfig))
        assert len(server.requests) == 3  # the failed one asked again, the other from the cache
        assert rows(out, "train")[("p1", 0)]["judge_score"] == 8


def test_a_judge_that_never_answers_stops_curation_with_one_line(tmp_path):
    from support import free_port

    judge = {"enabled": True, "model": "judge", "base_urls": [f"http://127.0.0.1:{free_port()}/v1"],
             "engine": {"max_retries": 0, "endpoint_failures_before_down": 10}}
    path, run = write_run(tmp_path, POEMS[:2], judge=judge)
    result = run_cli("curate", path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "curate.judge: all 2 requests to the judge judge failed (is it served at http://127.0.0.1:" in result.stderr
    assert "connection error" in result.stderr and not (run / "curated").exists()
    (tmp_path / "empty").mkdir()
    path, run = write_run(tmp_path, POEMS[:1], judge={"enabled": True, "kind": "hf", "model": str(tmp_path / "empty")})
    result = run_cli("curate", path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"curate.judge.model: cannot load '{tmp_path / 'empty'}' (hf)" in result.stderr


@pytest.mark.parametrize("text, score, reason", [
    ("Clear and correct.\nScore: 7", 7, "Clear and correct."),
    ("**Reasons:** fluent.\n**Score:** 9", 9, "**Reasons:** fluent."),
    ("Decent. score = 6/10", 6, "Decent."),
    ("<think>\nScore: 2 at first sight... no.\n</think>\n\nGood after all.\nScore: 8", 8, "Good after all."),
])
def test_judge_answers_are_read_in_their_common_forms(text, score, reason):
    judgement = parse_judgement(text, "stop")
    assert (judgement.score, judgement.reason) == (score, reason)


@pytest.mark.parametrize("text, finish, reason", [
    ("It is fine.", "stop", "unparseable: no 'Score: N' line: 'It is fine.'"),
    ("Solid work.\nScore: 12", "stop", "unparseable: score 12 is outside 1-10"),
    ("<think>\nLet me weigh this", "length", "unparseable: the judge never closed its reasoning (cut off at max_tokens)"),
    ("The answer is mostly", "length", "unparseable: no 'Score: N' line, cut off at max_tokens: 'The answer is mostly'"),
])
def test_unreadable_judge_answers_say_why(text, finish, reason):
    assert parse_judgement(text, finish).score is None and parse_judgement(text, finish).reason == reason


def test_bad_judge_settings_are_one_line_naming_the_key(tmp_path):
    path, _ = write_run(tmp_path, POEMS[:1], judge={"enabled": True, "base_urls": ["http://127.0.0.1:9/v1"]})
    result = run_cli("curate", path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "curate.judge.model: required with curate.judge.enabled" in result.stderr
    cases = {"curate.judge.threshold=11": "curate.judge.threshold: Input should be less than or equal to 10",
             "curate.judge.threshold=0": "curate.judge.threshold: Input should be greater than or equal to 1",
             "curate.judge.base_urls=[]": "curate.judge.base_urls: required with curate.judge.enabled: true and kind openai",
             "curate.judge.rubric=Grade it": "curate.judge.rubric: the rubric must hold {response}",
             "curate.judge.engine.timeout_s=0": "curate.judge: engine.timeout_s: Input should be greater than 0"}
    for override, message in cases.items():
        with pytest.raises(UsageError, match=f"^{path}: " + message.replace("{", r"\{").replace("}", r"\}")):
            load_config(path, CurateConfig, ["curate.judge.model=m", override])


def test_the_real_toy_teacher_as_an_in_process_judge_gives_every_trace_a_clear_verdict(tmp_path):
    """A real model through the `hf` engine. The toy teacher only knows arithmetic: its grades are not the point,
    the path is (each trace judged once, each verdict a score or a stated reason)."""
    path, run = write_run(tmp_path, POEMS[:2], judge={"enabled": True, "kind": "hf", "model": str(TEACHER),
                                                       "max_tokens": 24})
    out = curate(load_config(path, CurateConfig))
    judged = {**rows(out, "train"), **rows(out, "rejected")}
    assert set(judged) == {("p1", 0), ("p1", 1)}
    for row in judged.values():
        assert row["judge_model"] == str(TEACHER)
        if row.get("reason"):
            assert row["reason"].startswith(("judge: unparseable: ", "judge: score ")), row["reason"]
        else:
            assert row["judge_score"] >= 6


def test_a_non_reasoning_row_trains_as_the_r1_distill_template_says(tmp_path, toy_world):
    """A teacher answer with no reasoning (reasoning: false, e.g. DeepSeek-V3 for simple queries) is trained as
    `<think>\\n\\n</think>\\n\\n` + answer, through the students stage's real template path."""
    from transformers import AutoTokenizer

    from distill.students.chat import TRL_TEMPLATES
    from distill.students.config import StudentConfig
    from distill.students.train import prepare

    answer = "Bonjour le monde."
    traces = [trace(f"t{i}", 0, answer, problem=f"Translate into French ({i}): Hello world.") for i in range(8)]
    path, run = write_run(tmp_path, traces, reasoning=False, answer_only=False)
    out = curate(load_config(path, CurateConfig))
    message = rows(out, "train")[("t0", 0)]["messages"][-1]
    assert message == {"role": "assistant", "content": "<think>\n\n</think>\n\nBonjour le monde."}

    # The Qwen students (TRL's qwen3 template, the default) train on exactly that turn and its end of turn.
    recipe = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "student")
    cfg = load_config(recipe, StudentConfig, [f"data.source={out}"])
    trainer = prepare(cfg).trainer
    batch = next(iter(trainer.get_train_dataloader()))
    tokenizer = trainer.processing_class
    for labels in batch["labels"]:
        trained = tokenizer.decode([t for t in labels.tolist() if t != -100])
        assert trained == "<think>\n\n</think>\n\nBonjour le monde.<|im_end|>\n"

    # The R1-Distill template itself: its generation prompt opens the block, and the training variant TRL bundles
    # renders the row so that what follows the generation prompt is the empty block's close, then the answer.
    tok = AutoTokenizer.from_pretrained(TEACHER)
    conversation = rows(out, "train")[("t0", 0)]["messages"]
    prompt = tok.apply_chat_template(conversation[:-1], chat_template=(TRL_TEMPLATES / "deepseek_r1_distill.jinja").read_text(),
                                     tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(conversation, tokenize=False,
                                   chat_template=(TRL_TEMPLATES / "deepseek_r1_distill_training.jinja").read_text())
    assert prompt.endswith("<｜Assistant｜><think>\n")
    assert full == prompt + "\n</think>\n\nBonjour le monde.<｜end▁of▁sentence｜>"


@pytest.mark.slow
@needs_vllm
def test_the_real_toy_teacher_served_by_vllm_as_the_judge(tmp_path):
    """The real vLLM CPU server (teacher/toy-cpu.yaml) as the judge: the toy teacher's grades are not the point, the
    path is (requests answered, each verdict a score or a stated reason, cached for the next run)."""
    from support import free_port

    port, serve_dir = free_port(), tmp_path / "serve"
    args = [ROOT / "teacher" / "toy-cpu.yaml", f"port={port}", f"run_dir={serve_dir}"]
    started = run_cli("serve", *args, timeout=600)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        judge = {"enabled": True, "model": "toy/teacher", "base_urls": [f"http://127.0.0.1:{port}/v1"], "max_tokens": 24,
                 "engine": {"timeout_s": 120}}
        path, run = write_run(tmp_path, POEMS, judge=judge)
        out = curate(load_config(path, CurateConfig))
        judged = [r for r in {**rows(out, "train"), **rows(out, "rejected")}.values() if r["judge_model"]]
        assert len(judged) == 5  # three responses read, two repeats carrying their judgements
        for row in judged:
            reason = row.get("reason")
            assert reason is None or reason.startswith(("judge: unparseable: ", "judge: score ")), reason
        cached = sorted(Path(run, "judgements").rglob("judgements-*.parquet"))
        assert sum(pq.read_metadata(p).num_rows for p in cached) == 3
    finally:
        run_cli("serve", *args, "--stop", timeout=120)


@pytest.mark.parametrize("response, answer_only, turn", [
    ("Hello! How can I help?", False, "<think>\n\n</think>\n\nHello! How can I help?"),
    ("<think>\nGreet back.\n</think>\n\nHello!", False, "<think>\nGreet back.\n</think>\n\nHello!"),
    ("<think>\nGreet back.\n</think>\n\nHello!", True, "<think>\n\n</think>\n\nHello!"),
    ("Greet back.\n</think>\n\nHello!", True, "<think>\n\n</think>\n\nHello!"),  # R1's template pre-fills <think>
    ("<think>\nnever closed", True, "<think>\nnever closed"),  # malformed: kept as generated, not dressed up
])
def test_the_assistant_turn_of_each_kind_of_response(response, answer_only, turn):
    from distill.curate.run import assistant_turn

    assert assistant_turn(response, answer_only) == turn
