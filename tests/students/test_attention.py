"""The attention paths of packed training: a packed row gives each trace exactly the logits it gets alone (no attention
across traces), for the CPU path `auto` picks and for the torch_varlen plumbing (with a reference kernel standing in
for PyTorch's CUDA one, which cannot run here)."""

from __future__ import annotations

import functools

import pytest
import torch
from transformers import AttentionInterface, Qwen2Config, Qwen2ForCausalLM
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from distill.errors import UsageError
from distill.students import attention

LENGTHS = (5, 11, 7)


def tiny_model(implementation: str) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True)
    cfg._attn_implementation = implementation
    return Qwen2ForCausalLM(cfg).eval()


def traces():
    g = torch.Generator().manual_seed(1)
    return [torch.randint(1, 97, (n,), generator=g).tolist() for n in LENGTHS]


def alone_logits(model) -> list[torch.Tensor]:
    """Each trace through the model by itself: the reference."""
    with torch.no_grad():
        return [model(input_ids=torch.tensor([ids])).logits[0] for ids in traces()]


def packed_logits(model, boundaries: bool = True) -> list[torch.Tensor]:
    """The traces packed into one padding-free row by TRL's own collator, split back per trace."""
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([{"input_ids": ids} for ids in traces()])
    inputs = {k: batch[k] for k in ("input_ids", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q",
                                     "max_length_k")} if boundaries else {"input_ids": batch["input_ids"]}
    with torch.no_grad():
        logits = model(**inputs, use_cache=False).logits[0]  # as TRL's SFTTrainer calls it: a cache hides the packing
    return list(torch.split(logits, list(LENGTHS)))


def assert_same(got, want):
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4)


def test_auto_on_cpu_is_sdpa_and_packing_keeps_traces_apart():
    chosen = attention.resolve("auto", packing=True, on_gpu=False)
    assert chosen.implementation == "sdpa" and chosen.line.startswith("attention: sdpa")
    model = tiny_model(chosen.implementation)
    assert_same(packed_logits(model), alone_logits(model))


def test_without_boundaries_traces_attend_to_each_other():
    """The control: the same row without position ids attends across traces, so the comparison above can fail."""
    model = tiny_model("sdpa")
    with pytest.raises(AssertionError):
        assert_same(packed_logits(model, boundaries=False), alone_logits(model))


def test_torch_varlen_plumbing_matches_traces_alone():
    # A fake for the CUDA kernel only: the reference computes each trace alone with sdpa; the layout, the boundaries
    # from TRL's collator and grouped-query heads go through torch_varlen_forward as on a GPU.
    AttentionInterface.register("varlen_reference", functools.partial(attention.torch_varlen_forward,
                                                                      kernel=attention.reference_varlen))
    reference = tiny_model("sdpa")
    model = tiny_model("varlen_reference")
    assert_same(packed_logits(model), alone_logits(reference))


def test_explicit_names_and_missing_packages_are_one_line():
    assert attention.resolve("flash_attention_2", packing=True, on_gpu=True).implementation == "flash_attention_2"
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="torch_varlen needs torch >= 2.9 with CUDA"):
            attention.resolve("torch_varlen", packing=True, on_gpu=False)
    try:
        import kernels  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match="needs the kernels package: pip install kernels"):
            attention.resolve("kernels-community/flash-attn3", packing=True, on_gpu=True)


def test_auto_on_a_gpu_in_float32_keeps_sdpa():
    chosen = attention.resolve("auto", packing=True, on_gpu=True, half=False)
    assert chosen.implementation == "sdpa" and "float32" in chosen.line
