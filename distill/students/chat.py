"""Chat template, EOS and pad token per model family.

A student that never stops is the classic distillation failure: the pad token equals EOS, so EOS is
masked out of the labels, or generation_config still names the base model's EOS. Here every family
gets an end-of-turn EOS that is trained (inside the assistant mask) and a pad token distinct from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trl

from distill.errors import UsageError

TRL_TEMPLATES = Path(trl.__file__).parent / "chat_templates"


@dataclass(frozen=True)
class ChatSetup:
    family: str
    chat_template_path: str | None  # a .jinja file handed to SFTConfig.chat_template_path
    eos_token: str | None
    pad_token: str | None


FAMILIES = {
    # Qwen2.5 base and instruct, Qwen2.5-Math: `<|im_end|>` ends a turn; `<|endoftext|>` pads.
    # TRL's qwen3 template: ChatML, no default system prompt (R1's advice), `<think>` handled.
    "qwen": ChatSetup("qwen", "qwen3", "<|im_end|>", "<|endoftext|>"),
    # Llama 3.x: `<|eot_id|>` ends a turn; the reserved right-pad token pads.
    "llama3": ChatSetup("llama3", "llama3", "<|eot_id|>", "<|finetune_right_pad_id|>"),
    "custom": ChatSetup("custom", None, None, None),
}
MODEL_TYPE_FAMILY = {"qwen2": "qwen", "qwen3": "qwen", "qwen2_moe": "qwen", "llama": "llama3"}


def template_file(name_or_path: str) -> str:
    """A TRL-bundled template name (qwen3, llama3, ...) or a path to a .jinja file."""
    bundled = TRL_TEMPLATES / f"{name_or_path}.jinja"
    if bundled.is_file():
        return str(bundled)
    if Path(name_or_path).is_file():
        return name_or_path
    names = sorted(p.stem for p in TRL_TEMPLATES.glob("*.jinja") if not p.stem.endswith("_training"))
    raise UsageError(
        f"model.chat_template: {name_or_path!r} is neither a .jinja file nor a TRL template (one of: {', '.join(names)})"
    )


def resolve(family: str, model_type: str | None, chat_template: str | None, eos_token: str | None, pad_token: str | None) -> ChatSetup:
    """Fill the `family` placeholders of a model section from its family's preset."""
    if family == "auto":
        family = MODEL_TYPE_FAMILY.get(model_type or "", "custom")
    preset = FAMILIES[family]
    template = preset.chat_template_path if chat_template == "family" else chat_template
    return ChatSetup(
        family=family,
        chat_template_path=template_file(template) if template else None,
        eos_token=preset.eos_token if eos_token == "family" else eos_token,
        pad_token=preset.pad_token if pad_token == "family" else pad_token,
    )
