"""`method: kd` and `method: on-policy` on the real toy teacher: stored logprobs, the local teacher, resume, tokenizers."""

import json
import os
import subprocess

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from support import ROOT, run_cli, train_until_checkpoint_then_kill
from distill.config import load_config
from distill.errors import UsageError
from distill.students.config import StudentConfig
from distill.students.train import train

pytestmark = pytest.mark.slow
TEACHER = ROOT / "toy" / "teacher"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The toy world of configs/toy-world.yaml: its tokenizer is the committed toy teacher's."""
    from distill.toy.world import ToyWorldConfig, build_world

    cfg = load_config(ROOT / "configs" / "toy-world.yaml", ToyWorldConfig)
    return build_world(cfg, tmp_path_factory.mktemp("world") / "world", log=lambda *_: None)


@pytest.fixture(scope="module")
def traces(world, tmp_path_factory):
    """Teacher traces with top-5 logprobs (transformers engine), curated twice: with and without the logprobs."""
    run = tmp_path_factory.mktemp("gen") / "run"
    common = [ROOT / "teacher" / "runs" / "toy.yaml", f"run_dir={run}", f"prompts.source={world / 'prompts' / 'train.jsonl'}"]
    done = run_cli("generate", *common, "engine.kind=hf", f"engine.model={TEACHER}", "prompts.limit=48", "sampling.n=2",
                   "sampling.top_logprobs=5", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for extra in (["curate.keep_logprobs=true", "curate.output=with-logprobs"], []):
        done = run_cli("curate", *common, *extra, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    return run


def recipe(tmp_path, world, method, source, **extra):
    cfg = {
        "name": f"test-{method}", "run_dir": str(tmp_path / "run"), "method": method,
        "model": {"name_or_path": str(world / "bases" / "qwen2-h64-l2"), "family": "qwen", "dtype": "float32"},
        "data": {"source": str(source)},
        "training": {"max_length": 256, "max_steps": 20, "per_device_train_batch_size": 8, "learning_rate": 3e-3,
                     "bf16": False, "gradient_checkpointing": False, "logging_steps": 5, "save_steps": 100},
        "teacher": {"model": str(TEACHER)},
        "distillation": {"max_completion_length": 64},
    }
    for key, value in extra.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_logprobs_are_stored_compactly_and_reach_the_train_files_only_when_asked(traces):
    rows = pq.read_table(sorted((traces / "with-logprobs").glob("train-*.parquet"))[0]).to_pylist()
    row = rows[0]
    assert len(row["logprob_ids"]) == len(row["logprobs"]) == 5 * len(row["token_ids"]) > 0
    assert row["token_ids"][-1] == AutoTokenizer.from_pretrained(TEACHER).convert_tokens_to_ids("<|im_end|>")
    schema = pq.read_schema(sorted((traces / "traces").glob("shard-*.parquet"))[0])
    assert str(schema.field("logprob_ids").type) == "list<element: int32>"
    assert str(schema.field("logprobs").type) == "list<element: halffloat>"
    plain = pq.read_table(sorted((traces / "curated").glob("train-*.parquet"))[0]).to_pylist()
    assert plain and all(r["logprobs"] is None and r["token_ids"] is None for r in plain)


def test_kd_student_moves_toward_the_stored_teacher_distribution(tmp_path, world, traces):
    cfg = load_config(recipe(tmp_path, world, "kd", traces / "with-logprobs", training={"max_steps": 30}), StudentConfig)
    assert cfg.distillation.beta == 0.0  # kd's default: forward KL to the teacher's soft targets
    train(cfg)
    logged = metrics(tmp_path / "run")
    assert all("nll" in m and "kd_divergence" in m for m in logged)
    assert logged[-1]["kd_divergence"] < 0.5 * logged[0]["kd_divergence"]
    assert logged[-1]["loss"] == pytest.approx(0.5 * logged[-1]["nll"] + 0.5 * logged[-1]["kd_divergence"], rel=0.05)
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["method"] == "kd" and summary["steps"] == 30


def test_kd_on_traces_without_logprobs_is_a_clear_error(tmp_path, world, traces):
    cfg = load_config(recipe(tmp_path, world, "kd", traces / "curated"), StudentConfig)
    with pytest.raises(UsageError, match=r"rows \(first: row 0\) carry no teacher logprobs: generate with "
                                         r"sampling.top_logprobs=20 and curate with curate.keep_logprobs=true"):
        train(cfg)


def forward_kl_on(student_dir, teacher, sequences, prompt_lengths) -> float:
    student = AutoModelForCausalLM.from_pretrained(student_dir, dtype=torch.float32).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for sequence, start in zip(sequences, prompt_lengths):
            ids = torch.tensor([sequence])
            s = torch.log_softmax(student(ids).logits[0, start - 1:-1], -1)
            t = torch.log_softmax(teacher(ids).logits[0, start - 1:-1], -1)
            total += (t.exp() * (t - s)).sum().item()
            count += len(sequence) - start
    return total / count


def test_on_policy_with_a_local_teacher_pulls_the_student_toward_it(tmp_path, world, traces):
    """The student's divergence from the teacher, measured on held-out teacher traces, falls with on-policy steps."""
    path = recipe(tmp_path, world, "on-policy", traces / "curated", training={"max_steps": 25},
                  distillation={"beta": 0.5})
    cfg = load_config(path, StudentConfig)
    tokenizer = AutoTokenizer.from_pretrained(TEACHER)
    teacher = AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32).eval()
    sequences, starts = [], []
    for row in pq.read_table(sorted((traces / "curated").glob("train-*.parquet"))[0]).to_pylist()[:8]:
        prompt = tokenizer.apply_chat_template(row["messages"][:-1], add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        completion = tokenizer(row["messages"][-1]["content"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
        sequences.append(list(prompt) + completion)
        starts.append(len(prompt))
    before = forward_kl_on(cfg.model.name_or_path, teacher, sequences, starts)
    model_dir = train(cfg)
    after = forward_kl_on(model_dir, teacher, sequences, starts)
    assert after < 0.85 * before, (before, after)  # measured: 5.7 -> 4.0 nats per token
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["method"] == "on-policy" and summary["teacher_tokens_scored"] > 0 and summary["off_policy_batches"] == 0
    assert AutoTokenizer.from_pretrained(model_dir).chat_template  # a student that can be served and evaluated


def test_on_policy_mixes_in_teacher_traces_with_lmbda(tmp_path, world, traces):
    path = recipe(tmp_path, world, "on-policy", traces / "curated", training={"max_steps": 12, "logging_steps": 4},
                  distillation={"lmbda": 0.5})
    train(load_config(path, StudentConfig))
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert 0 < summary["off_policy_batches"] < 12  # some batches on the teacher's traces, the others sampled


def test_killed_on_policy_run_resumes_from_its_checkpoint(tmp_path, world, traces):
    path = recipe(tmp_path, world, "on-policy", traces / "curated",
                  training={"max_steps": 24, "save_steps": 6, "logging_steps": 3, "save_total_limit": None})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = train_until_checkpoint_then_kill(path, tmp_path / "run" / "checkpoints" / "checkpoint-12")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming from" in result.stdout and "(resumed at step" in result.stdout
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 24 and summary["resumed_from"]
    # A changed distillation setting would mix two runs in one: refused.
    changed = subprocess.run(command + ["distillation.beta=0.2", "training.max_steps=30"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert changed.returncode == 2 and "resuming would mix" in changed.stderr


def test_teacher_with_another_tokenizer_is_a_one_line_error(tmp_path, world, traces):
    """A student whose tokenizer was trained with another vocabulary size: its ids are not the toy teacher's."""
    import shutil

    from distill.toy.tokenizer import train_tokenizer

    student = tmp_path / "other-student"
    shutil.copytree(world / "bases" / "qwen2-h64-l2", student)
    corpus = [json.loads(line)["problem"] for line in (world / "prompts" / "train.jsonl").read_text().splitlines()[:500]]
    train_tokenizer(corpus, 290).save_pretrained(student)
    path = recipe(tmp_path, world, "on-policy", traces / "curated", model={"name_or_path": str(student)})
    done = run_cli("train", path, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert f"teacher {TEACHER}" in lines[0] and f"student {student}" in lines[0]
    assert "do not share token ids" in lines[0] and "regular ids differ" in lines[0]
    assert "Ways out: a teacher with the student's vocabulary" in lines[0]
