"""Loss on assistant tokens only, proven on real batches from the real SFTTrainer."""

import pytest
import torch

from support import student_yaml
from distill.config import load_config
from distill.errors import UsageError
from distill.students.config import StudentConfig
from distill.students.train import prepare


def first_batch(tmp_path, world, **training):
    cfg = load_config(student_yaml(tmp_path / "s.yaml", world, tmp_path / "run", **training), StudentConfig)
    trainer = prepare(cfg).trainer
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer.processing_class, batch


def trained_spans(labels: torch.Tensor) -> list[list[int]]:
    """Runs of consecutive positions whose label is not -100."""
    spans, current = [], []
    for token in labels.tolist():
        if token == -100:
            if current:
                spans.append(current)
            current = []
        else:
            current.append(token)
    if current:
        spans.append(current)
    return spans


def assert_only_assistant_turns(tokenizer, labels):
    spans = trained_spans(labels)
    assert spans, "no trained tokens at all"
    for span in spans:
        text = tokenizer.decode(span)
        # Exactly the assistant turn: reasoning, answer and the end-of-turn EOS (so the model learns to stop).
        assert text.startswith("<think>\n") and "</think>" in text and "\\boxed{" in text, text
        assert text.endswith("<|im_end|>\n"), text
        assert "<|im_start|>" not in text and "user" not in text and "Please reason" not in text, text
        assert tokenizer.eos_token_id in span


@pytest.mark.slow
def test_only_assistant_tokens_carry_labels(tmp_path, toy_world):
    tokenizer, batch = first_batch(tmp_path, toy_world)
    assert batch["labels"].shape == batch["input_ids"].shape
    for row_labels, row_ids in zip(batch["labels"], batch["input_ids"]):
        assert_only_assistant_turns(tokenizer, row_labels)
        # Every prompt token is masked; trained labels equal the input tokens at the same place.
        keep = row_labels != -100
        assert torch.equal(row_labels[keep], row_ids[keep])
        assert tokenizer.decode(row_ids[~keep]).startswith("<|im_start|>user\nCompute")
    assert (batch["labels"] != -100).float().mean() < 0.8


@pytest.mark.slow
def test_packed_batches_mask_each_sequence(tmp_path, toy_world):
    tokenizer, batch = first_batch(tmp_path, toy_world, packing=True, max_length=512)
    assert batch["input_ids"].shape[0] == 1 and "position_ids" in batch  # padding-free: one flat row
    starts = int((batch["position_ids"][0] == 0).sum())
    assert starts >= 8  # several conversations packed together
    assert_only_assistant_turns(tokenizer, batch["labels"][0])
    assert len(trained_spans(batch["labels"][0])) == starts


@pytest.mark.slow
def test_llama_student_masks_and_trains_its_eos(tmp_path, toy_world):
    # The Llama-architecture toy student shares the toy tokenizer (Qwen chat tokens): family set in the recipe.
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", base="llama-h64-l2")
    trainer = prepare(load_config(path, StudentConfig, ["model.family=qwen"])).trainer
    batch = next(iter(trainer.get_train_dataloader()))
    for row in batch["labels"]:
        assert_only_assistant_turns(trainer.processing_class, row)


def test_family_tokens_missing_from_tokenizer_is_a_config_error(tmp_path, toy_world):
    # family auto on a llama checkpoint means Llama 3 tokens (<|eot_id|>), which the toy tokenizer lacks.
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", base="llama-h64-l2")
    with pytest.raises(UsageError, match=r"model.eos_token: '<\|eot_id\|>' is not in the tokenizer"):
        prepare(load_config(path, StudentConfig))


LLAMA3_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|finetune_right_pad_id|>"]


@pytest.mark.slow
def test_llama3_family_trains_eot_and_pads_with_its_own_token(tmp_path, toy_world):
    """A Llama-3-style checkpoint (Llama 3 special tokens, family auto): `<|eot_id|>` ends and trains."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    from distill.toy.models import ToyModelSpec, save_base

    tokenizer = AutoTokenizer.from_pretrained(toy_world / "tokenizer")
    tokenizer.add_tokens([AddedToken(t, special=True) for t in LLAMA3_TOKENS], special_tokens=True)
    tokenizer.bos_token = "<|begin_of_text|>"
    base = tmp_path / "llama3-base"
    save_base(ToyModelSpec(name="llama3", family="llama", hidden_size=64, num_heads=2), tokenizer, 0, base)
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run")
    trainer = prepare(load_config(path, StudentConfig, [f"model.name_or_path={base}"])).trainer
    tok = trainer.processing_class
    assert tok.eos_token == "<|eot_id|>" and tok.pad_token == "<|finetune_right_pad_id|>"
    assert trainer.model.generation_config.eos_token_id[0] == tok.convert_tokens_to_ids("<|eot_id|>")
    batch = next(iter(trainer.get_train_dataloader()))
    for labels, ids in zip(batch["labels"], batch["input_ids"]):
        spans = trained_spans(labels)
        assert len(spans) == 1
        text = tok.decode(spans[0])
        assert text.startswith("<think>") and text.endswith("<|eot_id|>") and "<|start_header_id|>" not in text, text
        assert tok.decode(ids).startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>")
