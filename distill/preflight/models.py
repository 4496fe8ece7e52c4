"""The models a preflight runs: the recipe's own tokenizer and architecture, shrunk to two small layers.

A model id resolves to a folder of a local model mirror (`--models DIR`: DIR/<org>/<name>, laid out as the Hub repo)
when there is one, else to the id itself (the Hub, or its cache). Only the tokenizer files and config.json are read;
no weights are downloaded."""

from __future__ import annotations

import shutil
from pathlib import Path

from distill.errors import UsageError
from distill.io import replace_dir, staging_dir_for

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "tokenizer.model", "chat_template.jinja", "generation_config.json")
# The shrunk model: two layers of the same architecture, small enough to train a few steps on a CPU in seconds.
LAYERS, HIDDEN, HEADS, HEAD_DIM = 2, 64, 2, 32


class LocalModels:
    """Hub ids -> folders of a local mirror, where it has them."""

    def __init__(self, root: str | None):
        self.root = Path(root).expanduser() if root else None
        if self.root is not None and not self.root.is_dir():
            raise UsageError(f"--models: no such folder: {root}")

    def resolve(self, name_or_path: str) -> str:
        if self.root is not None and (self.root / name_or_path / "config.json").is_file():
            return str(self.root / name_or_path)
        return name_or_path


def load_config(source: str, what: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source)
    except Exception as exc:  # no config.json there, or the Hub is off and the cache lacks it
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{what}: cannot load the config of {source!r}: {reason}. Reach the Hub (unset HF_HUB_OFFLINE), "
                         "or point --models at a folder holding <org>/<name>/ with its tokenizer files and config.json") from None


def shrunk_config(config):
    """The same architecture (model type, vocabulary, tied head, rope, context), two layers of a small width."""
    config = config.__class__.from_dict(config.to_dict())
    heads_per_kv = max(1, config.num_attention_heads // (getattr(config, "num_key_value_heads", None) or config.num_attention_heads))
    config.num_hidden_layers = LAYERS
    config.hidden_size = HIDDEN
    config.intermediate_size = 2 * HIDDEN
    config.num_attention_heads = HEADS
    config.num_key_value_heads = max(1, HEADS // heads_per_kv)
    config.head_dim = HEAD_DIM
    for key in ("layer_types", "max_window_layers"):
        if hasattr(config, key):
            value = getattr(config, key)
            setattr(config, key, value[:LAYERS] if isinstance(value, list) else value)
    return config


def shrink(source: str, dest: Path, what: str, seed: int = 0, vocab_size: int | None = None) -> Path:
    """`source`'s tokenizer and a randomly initialised two-layer model of its architecture, saved at `dest` (made once:
    a finished folder is reused). `vocab_size`: embedding rows instead of the architecture's."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (dest / "config.json").is_file() and (dest / "model.safetensors").is_file():
        from transformers import AutoConfig

        if not vocab_size or AutoConfig.from_pretrained(dest).vocab_size == vocab_size:
            return dest
    config = shrunk_config(load_config(source, what))
    if vocab_size:
        config.vocab_size = vocab_size
    staging = staging_dir_for(dest)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(staging)
    if Path(source).is_dir():  # the files as published, so that they load exactly as the real repo does
        for name in TOKENIZER_FILES:
            if (Path(source) / name).is_file() and name != "generation_config.json":
                shutil.copy2(Path(source) / name, staging / name)
    else:
        try:
            AutoTokenizer.from_pretrained(source).save_pretrained(staging)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"{what}: cannot load the tokenizer of {source!r}: {reason}") from None
    replace_dir(staging, dest)
    return dest


