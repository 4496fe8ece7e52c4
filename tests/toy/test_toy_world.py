import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from distill.io import read_jsonl
from distill.toy import task
from distill.toy.models import ToyModelSpec, build_model, count_parameters
from distill.toy.tokenizer import train_tokenizer
from distill.toy.world import ToyWorldConfig, build_world


def test_problems_are_deterministic_and_correct():
    cfg = task.ToyTaskConfig()
    a = task.generate(cfg, "train", 500, seed=3)
    assert a == task.generate(cfg, "train", 500, seed=3)
    assert a != task.generate(cfg, "train", 500, seed=4)
    for p in a:
        assert eval(p.text.removeprefix("Compute ").rstrip(".")) == p.answer  # left-to-right +/- is Python's order
        assert cfg.min_ops <= len(p.ops) <= cfg.max_ops
        assert all(cfg.min_operand <= x <= cfg.max_operand for x in p.operands)
        assert p.response().endswith(f"\\boxed{{{p.answer}}}.")


def test_difficulty_knobs():
    cfg = task.ToyTaskConfig(min_operand=100, max_operand=120, min_ops=4, max_ops=4, operators="*")
    for p in task.generate(cfg, "train", 50, seed=0):
        assert len(p.ops) == 4 and set(p.ops) == {"*"} and min(p.operands) >= 100


def test_train_and_test_are_disjoint_for_any_seed():
    cfg = task.ToyTaskConfig()
    train = {p.text for p in task.generate(cfg, "train", 5000, seed=0)}
    for seed in (0, 1, 2):
        test = {p.text for p in task.generate(cfg, "test", 300, seed=seed)}
        assert not train & test


def test_world_files_use_the_prompt_schema(toy_world):
    rows = read_jsonl(toy_world / "prompts" / "test.jsonl")
    assert len(rows) == 50 and set(rows[0]) >= {"id", "problem", "answer"}
    assert len({r["id"] for r in rows}) == 50


def test_world_rebuild_is_skipped_when_unchanged(toy_world):
    logs = []
    cfg = ToyWorldConfig.model_validate(json.loads((toy_world / "world.json").read_text())["config"])
    build_world(cfg, toy_world, log=logs.append)
    assert logs == [f"toy world: up to date at {toy_world}"]


def test_tokenizer_reloads_as_qwen2_with_identical_ids(toy_world):
    tok = AutoTokenizer.from_pretrained(toy_world / "bases" / "qwen2-h64-l2")
    # transformers 5.23 imposes Qwen's regex (Qwen2Tokenizer), 5.0 loads tokenizer.json as it is: ids must not change
    assert type(tok).__name__ in ("Qwen2Tokenizer", "TokenizersBackend")
    conversation = [
        {"role": "user", "content": "Compute 12 + 7."},
        {"role": "assistant", "content": "<think>\n12 + 7 = 19\n</think>\n\n\\boxed{19}"},
    ]
    text = tok.apply_chat_template(conversation, tokenize=False)
    raw = AutoTokenizer.from_pretrained(toy_world / "tokenizer")
    assert tok(text)["input_ids"] == raw(text)["input_ids"]
    pieces = tok.convert_ids_to_tokens(tok("12 + 7 = 19")["input_ids"])
    assert pieces[:2] == ["1", "2"]  # digits one by one, as in Qwen
    decoded = tok.decode(tok(text)["input_ids"], skip_special_tokens=True)
    assert "<think>" in decoded and "</think>" in decoded and "<|im_end|>" not in decoded
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_tokenizer_training_is_deterministic():
    corpus = [p.response() for p in task.generate(task.ToyTaskConfig(), "train", 300, seed=0)]
    assert train_tokenizer(corpus, 300).get_vocab() == train_tokenizer(corpus, 300).get_vocab()


def test_model_factories_and_vllm_head_dim_limit(toy_world):
    tok = AutoTokenizer.from_pretrained(toy_world / "tokenizer")
    teacher = build_model(ToyModelSpec(name="t", hidden_size=128, num_heads=4, num_layers=2), tok, seed=0)
    student = build_model(ToyModelSpec(name="s", family="llama", hidden_size=64, num_heads=2, num_layers=2), tok, seed=0)
    assert count_parameters(teacher) >= 3 * count_parameters(student)
    assert student.config.model_type == "llama" and student.config.head_dim == 32
    assert teacher.generation_config.eos_token_id == [tok.eos_token_id, tok.pad_token_id]
    with pytest.raises(ValueError, match="head"):
        build_model(ToyModelSpec(name="x", hidden_size=64, num_heads=4), tok, seed=0)


def test_base_model_loads_and_has_no_length_pin(toy_world):
    model = AutoModelForCausalLM.from_pretrained(toy_world / "bases" / "llama-h64-l2")
    assert model.generation_config.max_new_tokens is None
