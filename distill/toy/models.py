"""Tiny Qwen2 / Llama models, randomly initialised from a seed, saved as ordinary checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM

from distill.config import Section

# vLLM's CPU attention supports head_dim 32, 64, 80, ...; 16 starts and then dies on the first request.
MIN_HEAD_DIM = 32


class ToyModelSpec(Section):
    name: str
    family: Literal["qwen2", "llama"] = "qwen2"
    hidden_size: int = 128
    num_heads: int = 4
    num_layers: int = 2
    intermediate_size: int | None = None  # default 4 x hidden
    max_position_embeddings: int = 1024


def build_model(spec: ToyModelSpec, tokenizer: PreTrainedTokenizerBase, seed: int):
    if spec.hidden_size % spec.num_heads or spec.hidden_size // spec.num_heads < MIN_HEAD_DIM:
        raise ValueError(
            f"toy model {spec.name}: hidden_size/num_heads must be a whole number >= {MIN_HEAD_DIM} "
            f"(vLLM's CPU attention), got {spec.hidden_size}/{spec.num_heads}"
        )
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size or 4 * spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    if spec.family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
    # Stop at the end of an assistant turn or at end-of-text. No max_new_tokens here: it would silently
    # override lm-eval's max_gen_toks.
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def save_base(spec: ToyModelSpec, tokenizer: PreTrainedTokenizerBase, seed: int, directory: str | Path) -> int:
    """Write a randomly initialised model with its tokenizer to `directory`; returns its parameter count."""
    model = build_model(spec, tokenizer, seed)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return count_parameters(model)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
