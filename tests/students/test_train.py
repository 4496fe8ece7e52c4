"""The students stage end to end on toy models: full fine-tuning, LoRA + merge, EOS, resume after a crash."""

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from support import ROOT, student_yaml, train_until_checkpoint_then_kill
from distill.config import load_config
from distill.io import read_jsonl
from distill.students.config import StudentConfig
from distill.students.train import train
from distill.toy.check import sample_responses

pytestmark = pytest.mark.slow


def weights(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_full_finetune_changes_every_layer_and_writes_run_files(tmp_path, toy_world):
    cfg = load_config(student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run"), StudentConfig)
    model_dir = train(cfg)
    before, after = weights(toy_world / "bases" / "qwen2-h64-l2"), weights(model_dir)
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) == len(before)  # every tensor trained
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["counts"]["steps"] == 8
    assert manifest["versions"]["trl"] and manifest["config_hash"]
    assert (run / "config.yaml").exists()
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and losses[-1] < losses[0]
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 8 and summary["tokens"] > 0


def test_rerun_of_a_finished_run_trains_nothing(tmp_path, toy_world, capsys):
    """`make demo` reruns every stage: a finished student keeps its weights and its summary (steps, wall time)."""
    cfg = load_config(student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", max_steps=4, save_steps=2), StudentConfig)
    model_dir = train(cfg)
    summary = (tmp_path / "run" / "train_summary.json").read_text()
    weights_file = model_dir / "model.safetensors"
    written = weights_file.stat().st_mtime_ns
    assert train(load_config(tmp_path / "s.yaml", StudentConfig, ["training.logging_steps=1"])) == model_dir
    assert "already trained in" in capsys.readouterr().out
    assert (tmp_path / "run" / "train_summary.json").read_text() == summary and weights_file.stat().st_mtime_ns == written


def test_lora_trains_adapter_and_merges_into_standalone_model(tmp_path, toy_world):
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", learning_rate=1e-2)
    cfg = load_config(path, StudentConfig, ["lora.enabled=true", "lora.r=8", "lora.alpha=16"])
    model_dir = train(cfg)
    run = tmp_path / "run"
    assert (run / "adapter" / "adapter_config.json").exists() and model_dir == run / "model"
    merged, base = weights(model_dir), weights(toy_world / "bases" / "qwen2-h64-l2")
    assert not any("lora" in k for k in merged)  # merged: plain model, loadable without peft
    changed = [k for k in base if not torch.equal(base[k], merged[k])]
    assert changed and all(("proj" in k) for k in changed)  # only LoRA-targeted linear layers moved
    assert not any("embed" in k or "norm" in k for k in changed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert tokenizer.eos_token_id in model.generation_config.eos_token_id


def test_trained_student_stops_at_its_eos(tmp_path, toy_world):
    cfg = load_config(
        student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", max_steps=150, per_device_train_batch_size=16,
                     logging_steps=50, save_steps=1000),
        StudentConfig,
    )
    model_dir = train(cfg)
    problems = [row["problem"] for row in read_jsonl(toy_world / "prompts" / "test.jsonl")][:24]
    texts, stopped = sample_responses(str(model_dir), problems, k=0, temperature=0.6, top_p=0.95, max_new_tokens=120)
    stop_rate = sum(s[0] for s in stopped) / len(stopped)
    assert stop_rate >= 0.9, texts[:3]
    # It stops where the teacher traces stop: right after the boxed answer.
    ends = [t[0].rstrip().endswith("}.") for t, s in zip(texts, stopped) if s[0]]
    assert sum(ends) >= 0.9 * len(ends), texts[:3]


def test_killed_training_resumes_from_last_checkpoint(tmp_path, toy_world):
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", max_steps=40, save_steps=10,
                        logging_steps=5, save_total_limit=None)
    checkpoints = tmp_path / "run" / "checkpoints"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = train_until_checkpoint_then_kill(path, checkpoints / "checkpoint-20")
    assert not (tmp_path / "run" / "model").exists()
    # A half-written checkpoint, as a crash in the middle of a save leaves it, must not be resumed from.
    (checkpoints / "checkpoint-90").mkdir()
    (checkpoints / "checkpoint-90" / "model.safetensors").write_bytes(b"partial")

    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removing incomplete checkpoint" in result.stdout and "checkpoint-90" in result.stdout
    resumed = [line for line in result.stdout.splitlines() if "resuming from" in line]
    assert len(resumed) == 1 and "checkpoint-" in resumed[0]
    step = int(resumed[0].rsplit("checkpoint-", 1)[1])
    assert step >= 20
    assert f"process(es) (resumed at step {step})" in result.stdout
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 40 and summary["resumed_from"].endswith(f"checkpoint-{step}")
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["resumed_from"] and manifest["status"] == "completed"


def test_changed_model_refuses_to_resume(tmp_path, toy_world):
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", max_steps=2, save_steps=1)
    train(load_config(path, StudentConfig))
    from distill.errors import UsageError

    other = load_config(path, StudentConfig, [f"model.name_or_path={toy_world / 'bases' / 'llama-h64-l2'}",
                                              "model.family=qwen"])
    with pytest.raises(UsageError, match="different .*model.name_or_path; resuming would mix"):
        train(other)
    with pytest.raises(UsageError, match="different training.learning_rate;"):
        train(load_config(path, StudentConfig, ["training.learning_rate=1e-4"]))
    # Logging and saving cadence do not change what is trained: resuming with them changed is fine.
    train(load_config(path, StudentConfig, ["training.logging_steps=1", "training.save_total_limit=3"]))


def test_changed_data_at_the_same_path_refuses_to_resume(tmp_path, toy_world):
    """A curation rewritten in place is other training data, though data.source names the same path."""
    import pandas as pd

    from distill.errors import UsageError

    rows = pd.read_parquet(toy_world / "sft" / "train.parquet").head(32)
    source = tmp_path / "curated.jsonl"
    rows.to_json(source, orient="records", lines=True)
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", max_steps=2, save_steps=1)
    cfg = load_config(path, StudentConfig, [f"data.source={source}"])
    train(cfg)
    rows.to_json(source, orient="records", lines=True)  # the same rows written again: not a change
    train(cfg)
    rows.loc[3, "messages"][1]["content"] = "<think>\n1 + 1 = 2\n</think>\n\nThe answer is \\boxed{2}."
    rows.to_json(source, orient="records", lines=True)
    with pytest.raises(UsageError, match="different data_content; resuming would mix"):
        train(cfg)


def test_two_process_data_parallel_run_saves_once(tmp_path, toy_world):
    """The distributed path (what accelerate launch sets up on GPUs), on CPU with gloo via torchrun."""
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", max_steps=4, save_steps=2)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    result = subprocess.run([torchrun, "--nproc_per_node", "2", "-m", "distill", "train", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("] done:") == 1 and "on 2 process(es)" in result.stdout
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    assert not list((tmp_path / "run").glob(".*partial"))
