"""One training example as the trainer sees it: the rendered text, the tokens that carry loss marked."""

from __future__ import annotations

OPEN, CLOSE = "⟦", "⟧"
KEEP = 1200  # characters shown at each end of a long example


def _mask(row: dict) -> list[int] | None:
    """Which tokens carry loss: TRL's labels (-100: none) where it wrote them (packing), else its masks."""
    if row.get("labels") is not None:
        return [int(label != -100) for label in row["labels"]]
    for key in ("assistant_masks", "completion_mask"):
        if row.get(key) is not None:
            return list(row[key])
    return None


def marked(row: dict, tokenizer) -> tuple[str, int, int]:
    """(text with the loss-carrying tokens between ⟦ and ⟧, tokens, tokens carrying loss) of a tokenised row (of a
    packed row, its first example); a row of prompts only (on-policy: the loss is on the student's own samples)
    renders its prompt with the generation prompt."""
    if row.get("input_ids") is not None:
        ids, mask = list(row["input_ids"]), _mask(row)
        mask = mask if mask is not None else [1] * len(ids)
        if row.get("seq_lengths"):  # a packed row: its first example
            ids, mask = ids[:row["seq_lengths"][0]], mask[:row["seq_lengths"][0]]
        pieces, inside = [], False
        for token, on in zip(ids, mask):
            if on and not inside:
                pieces.append(OPEN)
            if not on and inside:
                pieces.append(CLOSE)
            inside = bool(on)
            pieces.append(tokenizer.decode([token]))
        if inside:
            pieces.append(CLOSE)
        return "".join(pieces), len(ids), sum(1 for m in mask if m)
    messages = row.get("prompt") or row.get("messages")
    if isinstance(messages, str):
        return messages, len(tokenizer(messages)["input_ids"]), 0
    turns = [m for m in messages if m["role"] != "assistant"] if messages else []
    text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    return text + f"{OPEN}the student's own sample{CLOSE}", len(tokenizer(text, add_special_tokens=False)["input_ids"]), 0


def shortened(text: str) -> str:
    if len(text) <= 2 * KEEP:
        return text
    return f"{text[:KEEP]}\n[... {len(text) - 2 * KEEP:,} characters ...]\n{text[-KEEP:]}"
