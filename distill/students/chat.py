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


# DeepSeek's R1-Distill tokenizers are their bases' with a few special ids renamed (students/specials.py).
R1_ASSISTANT = "<｜Assistant｜>"
R1_END = "<｜end▁of▁sentence｜>"

FAMILIES = {
    # Qwen2.5 base and instruct, Qwen2.5-Math: `<|im_end|>` ends a turn; `<|endoftext|>` pads.
    # TRL's qwen3 template: ChatML, no default system prompt (R1's advice), `<think>` handled.
    "qwen": ChatSetup("qwen", "qwen3", "<|im_end|>", "<|endoftext|>"),
    # Llama 3.x: `<|eot_id|>` ends a turn; the reserved right-pad token pads.
    "llama3": ChatSetup("llama3", "llama3", "<|eot_id|>", "<|finetune_right_pad_id|>"),
    # DeepSeek's format, as the R1-Distill models were trained in it: `<｜User｜>...<｜Assistant｜>...` with
    # `<｜end▁of▁sentence｜>` ending the answer and `<think>`/`</think>` single tokens. Over a Qwen2.5 or Llama 3.1
    # base, the base's special ids are renamed first (students/specials.py), as DeepSeek did. The pad is not the end
    # of sentence (DeepSeek's tokenizer_config pads with it, which would mask it): Qwen's <|fim_pad|>, DeepSeek's own
    # <｜▁pad▁｜> for Llama.
    "r1-distill-qwen": ChatSetup("r1-distill-qwen", "deepseek_r1_distill", R1_END, "<|fim_pad|>"),
    "r1-distill-llama": ChatSetup("r1-distill-llama", "deepseek_r1_distill", R1_END, "<｜▁pad▁｜>"),
    "custom": ChatSetup("custom", None, None, None),
}
MODEL_TYPE_FAMILY = {"qwen2": "qwen", "qwen3": "qwen", "qwen2_moe": "qwen", "llama": "llama3"}
R1_DISTILL_FAMILY = {"qwen": "r1-distill-qwen", "llama3": "r1-distill-llama"}


def detect(model_type: str | None, vocab: dict[str, int] | None) -> str:
    """The family of a model from its tokenizer first (DeepSeek's renamed specials mark an R1-Distill model, whatever
    its model_type), then from its config's model_type; `custom` when neither tells."""
    by_type = MODEL_TYPE_FAMILY.get(model_type or "")
    vocab = vocab or {}
    if R1_ASSISTANT in vocab:
        base = by_type or ("llama3" if "<|finetune_right_pad_id|>" in vocab else "qwen")
        return R1_DISTILL_FAMILY[base]
    if by_type:
        return by_type
    for family in ("qwen", "llama3"):
        if FAMILIES[family].eos_token in vocab:
            return family
    return "custom"


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


def resolve(family: str, model_type: str | None, chat_template: str | None, eos_token: str | None, pad_token: str | None,
            vocab: dict[str, int] | None = None) -> ChatSetup:
    """Fill the `family` placeholders of a model section from its family's preset (`auto`: detected from the
    tokenizer's `vocab` and the config's `model_type`)."""
    if family == "auto":
        family = detect(model_type, vocab)
    preset = FAMILIES[family]
    template = preset.chat_template_path if chat_template == "family" else chat_template
    return ChatSetup(
        family=family,
        chat_template_path=template_file(template) if template else None,
        eos_token=preset.eos_token if eos_token == "family" else eos_token,
        pad_token=preset.pad_token if pad_token == "family" else pad_token,
    )
