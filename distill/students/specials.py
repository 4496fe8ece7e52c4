"""A Qwen2.5 or Llama 3.1 tokenizer turned into its R1-Distill counterpart: DeepSeek renamed a few of the base's special
ids (the same ids, so the embeddings stay where they are) and trained its Distill models in its own chat format. A
student trained the same way drops in where an R1-Distill model runs (vLLM's deepseek_r1 reasoning parser finds
`<think>` and `</think>` as single tokens; the eval prompts are the same), and an R1-Distill teacher scores its tokens
id for id."""

from __future__ import annotations

import json
from dataclasses import dataclass

from distill.errors import UsageError


@dataclass(frozen=True)
class Rename:
    base: str  # the base tokenizer's name at this id
    r1: str  # DeepSeek's name at this id
    special: bool  # DeepSeek's `special` flag (a non-special token survives decode(skip_special_tokens=True))


BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"

# id -> rename, as DeepSeek's published tokenizer.json files have them (tests/support/real_models.py builds both sides).
RENAMES: dict[str, dict[int, Rename]] = {
    "r1-distill-qwen": {
        151643: Rename("<|endoftext|>", EOS, True),
        151644: Rename("<|im_start|>", "<｜User｜>", False),
        151645: Rename("<|im_end|>", "<｜Assistant｜>", False),
        151646: Rename("<|object_ref_start|>", BOS, True),
        151647: Rename("<|object_ref_end|>", "<|EOT|>", False),
        151648: Rename("<|box_start|>", "<think>", False),
        151649: Rename("<|box_end|>", "</think>", False),
    },
    "r1-distill-llama": {
        128000: Rename("<|begin_of_text|>", BOS, True),
        128001: Rename("<|end_of_text|>", EOS, True),
        128011: Rename("<|reserved_special_token_3|>", "<｜User｜>", False),
        128012: Rename("<|reserved_special_token_4|>", "<｜Assistant｜>", False),
        128013: Rename("<|reserved_special_token_5|>", "<think>", False),
        128014: Rename("<|reserved_special_token_6|>", "</think>", False),
        128015: Rename("<|reserved_special_token_7|>", "<｜▁pad▁｜>", True),
    },
}


def _renamed(value, names: dict[str, str]):
    """`value` (a tokenizer.json fragment) with every string that is an old name replaced by the new one."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    if isinstance(value, dict):
        return {names.get(k, k): _renamed(v, names) for k, v in value.items()}
    return value


def as_r1_distill(tokenizer, family: str, model_name: str):
    """The tokenizer in DeepSeek's naming for `family` (r1-distill-qwen / r1-distill-llama): unchanged where it is
    already an R1-Distill tokenizer, renamed where it is the base's, refused where it is neither."""
    renames = RENAMES[family]
    found = {i: tokenizer.convert_ids_to_tokens(i) for i in renames}
    if all(found[i] == r.r1 for i, r in renames.items()):
        return tokenizer
    odd = {i: name for i, name in found.items() if name not in (renames[i].base, renames[i].r1)}
    if odd:
        i, name = next(iter(odd.items()))
        raise UsageError(
            f"model.family={family}: the tokenizer of {model_name} has {name!r} at id {i}, where its base has "
            f"{renames[i].base!r} and DeepSeek's R1-Distill {renames[i].r1!r} ({len(odd)} such ids): it is neither; "
            "set model.family to the model's own format (qwen, llama3 or custom)")
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    names = {r.base: r.r1 for r in renames.values()}
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    for entry in spec["added_tokens"]:
        if entry["id"] in renames:
            entry["content"], entry["special"] = renames[entry["id"]].r1, renames[entry["id"]].special
    spec["model"]["vocab"] = _renamed(spec["model"]["vocab"], names)
    spec["post_processor"] = _renamed(spec.get("post_processor"), names)
    renamed = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)), bos_token=BOS, eos_token=EOS,
        pad_token=names.get(tokenizer.pad_token, tokenizer.pad_token) if tokenizer.pad_token else None,
        model_max_length=tokenizer.model_max_length, clean_up_tokenization_spaces=False)
    wrong = [i for i, r in renames.items() if renamed.convert_tokens_to_ids(r.r1) != i]
    if wrong:  # a tokenizer.json layout this code does not know
        raise UsageError(f"model.family={family}: renaming the special ids {wrong} of {model_name}'s tokenizer failed")
    return renamed
