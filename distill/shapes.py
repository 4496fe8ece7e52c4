"""The architectures of the models our recipes name, as their config.json files on the Hub give them.

Used where a model's shape matters but its weights are not at hand: `distill plan` (parameters, memory) and
`bench/train.py --shape` (a random-initialised model of the real size). A local directory with a config.json
always wins over this table.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

_LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}


def _qwen2(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, vocab: int, max_positions: int,
           rope_theta: float, tied: bool) -> dict[str, Any]:
    return {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": hidden,
            "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv_heads, "vocab_size": vocab, "max_position_embeddings": max_positions,
            "rope_theta": rope_theta, "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": tied,
            "use_sliding_window": False}


def _llama3(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int) -> dict[str, Any]:
    return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
            "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv_heads, "vocab_size": 128256, "max_position_embeddings": 131072,
            "rope_theta": 500000.0, "rope_scaling": dict(_LLAMA3_ROPE), "rms_norm_eps": 1e-5, "hidden_act": "silu",
            "tie_word_embeddings": False}


# Hub id -> config.json fields that fix the shape (and what the recipes rely on: context length, rope).
SHAPES: dict[str, dict[str, Any]] = {
    "Qwen/Qwen2.5-Math-1.5B": _qwen2(1536, 8960, 28, 12, 2, 151936, 4096, 10000.0, tied=True),
    "Qwen/Qwen2.5-1.5B": _qwen2(1536, 8960, 28, 12, 2, 151936, 131072, 1000000.0, tied=True),
    "Qwen/Qwen2.5-Math-7B": _qwen2(3584, 18944, 28, 28, 4, 152064, 4096, 10000.0, tied=False),
    "Qwen/Qwen2.5-7B": _qwen2(3584, 18944, 28, 28, 4, 152064, 131072, 1000000.0, tied=False),
    "Qwen/Qwen2.5-14B": _qwen2(5120, 13824, 48, 40, 8, 152064, 131072, 1000000.0, tied=False),
    "Qwen/Qwen2.5-32B": _qwen2(5120, 27648, 64, 40, 8, 152064, 131072, 1000000.0, tied=False),
    "meta-llama/Llama-3.1-8B": _llama3(4096, 14336, 32, 32, 8),
    "meta-llama/Llama-3.3-70B-Instruct": _llama3(8192, 28672, 80, 64, 8),
    # The R1-Distill models: their bases' shapes, with the context stretched to 128k (and untied heads for 1.5B).
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": _qwen2(1536, 8960, 28, 12, 2, 151936, 131072, 10000.0, tied=False),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": _qwen2(3584, 18944, 28, 28, 4, 152064, 131072, 10000.0, tied=False),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B": _qwen2(5120, 13824, 48, 40, 8, 152064, 131072, 1000000.0, tied=False),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": _qwen2(5120, 27648, 64, 40, 8, 152064, 131072, 1000000.0, tied=False),
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": _llama3(4096, 14336, 32, 32, 8),
    "deepseek-ai/DeepSeek-R1-Distill-Llama-70B": _llama3(8192, 28672, 80, 64, 8),
}

# Short names for the command line (`bench/train.py --shape 1.5b`).
ALIASES = {"1.5b": "Qwen/Qwen2.5-Math-1.5B", "7b": "Qwen/Qwen2.5-Math-7B", "8b": "meta-llama/Llama-3.1-8B",
           "14b": "Qwen/Qwen2.5-14B", "32b": "Qwen/Qwen2.5-32B", "70b": "meta-llama/Llama-3.3-70B-Instruct"}


def shape_fields(name_or_path: str) -> dict[str, Any] | None:
    """The config.json fields of a local model directory, else of the table (by Hub id or alias), else None."""
    local = Path(name_or_path).expanduser() / "config.json"
    if local.is_file():
        return json.loads(local.read_text())
    name = ALIASES.get(name_or_path.lower(), name_or_path)
    fields = SHAPES.get(name)
    return copy.deepcopy(fields) if fields is not None else None  # transformers edits rope_scaling in place


def model_config(name_or_path: str):
    """A transformers config of the model's shape (no download), or None when neither a local config nor the table
    knows it."""
    from transformers import AutoConfig

    fields = shape_fields(name_or_path)
    if fields is None:
        return None
    fields = dict(fields)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)
