"""Trace filters. Each returns None to keep a trace, or the reason it is rejected."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from distill.verify.reasoning import THINK_END, THINK_START

# Scripts counted for language mixing (the R1 paper's readability filter drops CoT mixing languages).
SCRIPTS = {
    "latin": re.compile(r"[A-Za-z\u00C0-\u024F]"),
    "cjk": re.compile(r"[\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF]"),
    "cyrillic": re.compile(r"[\u0400-\u04FF]"),
    "arabic": re.compile(r"[\u0600-\u06FF]"),
}


def format_reason(response: str, finish_reason: str | None) -> str | None:
    """Exactly one reasoning block, closed, then a non-empty final answer; never a truncated sample."""
    if finish_reason == "length":
        return "truncated (finish_reason length)"
    closes = response.count(THINK_END)
    if closes == 0:
        return "format: no closing </think>"
    if closes > 1 or response.count(THINK_START) > 1:
        return "format: more than one reasoning block"
    if not response.rsplit(THINK_END, 1)[1].strip():
        return "format: no final answer after </think>"
    return None


def length_reason(completion_tokens: int | None, min_tokens: int, max_tokens: int | None) -> str | None:
    if completion_tokens is None:
        return None
    if completion_tokens < min_tokens:
        return f"length: {completion_tokens} < {min_tokens} tokens"
    if max_tokens is not None and completion_tokens > max_tokens:
        return f"length: {completion_tokens} > {max_tokens} tokens"
    return None


def script_share(text: str, script: str) -> float | None:
    """Share of `script` letters among the letters of all counted scripts (None: no letters)."""
    counts = {name: len(pattern.findall(text)) for name, pattern in SCRIPTS.items()}
    total = sum(counts.values())
    return counts[script] / total if total else None


def language_reason(reasoning: str | None, script: str, min_share: float) -> str | None:
    if not reasoning:
        return None
    share = script_share(reasoning, script)
    if share is not None and share < min_share:
        return f"language mixing: {share:.0%} {script} < {min_share:.0%}"
    return None


def repetition_reason(text: str, ngram: int, max_ngram_share: float, max_line_repeats: int) -> str | None:
    """Looping text: one word n-gram covering too much of the text, or one long line repeated too often."""
    lines = [line.strip() for line in text.splitlines() if len(line.strip()) >= 20]
    if lines:
        line, repeats = Counter(lines).most_common(1)[0]
        if repeats > max_line_repeats:
            return f"repetition: a line repeated {repeats} times"
    words = text.split()
    if len(words) >= ngram * 4:
        grams = Counter(tuple(words[i:i + ngram]) for i in range(len(words) - ngram + 1))
        top, count = grams.most_common(1)[0]
        share = count * ngram / len(words)
        if count > 2 and share > max_ngram_share:
            return f"repetition: a {ngram}-gram covers {share:.0%} of the text"
    return None


def minhash(text: str, shingle: int, num_perm: int) -> np.ndarray:
    """MinHash values of a text's word shingles (datasketch), for estimating Jaccard similarity."""
    from datasketch import MinHash

    words = text.split()
    grams = {" ".join(words[i:i + shingle]) for i in range(max(len(words) - shingle + 1, 1))}
    m = MinHash(num_perm=num_perm, seed=1)
    m.update_batch([g.encode() for g in grams])
    return m.hashvalues


def near_duplicates(texts: list[str], threshold: float, shingle: int, num_perm: int) -> dict[int, int]:
    """{index: index of the earlier text it nearly duplicates}, by MinHash estimates of Jaccard similarity."""
    return near_duplicates_of([minhash(text, shingle, num_perm) for text in texts], threshold)


def near_duplicates_of(hashes: list[np.ndarray], threshold: float) -> dict[int, int]:
    """`near_duplicates` on MinHash values already computed (the Jaccard estimate is datasketch's)."""
    found = {}
    for i in range(len(hashes)):
        for j in range(i):
            if j not in found and np.count_nonzero(hashes[i] == hashes[j]) / len(hashes[i]) >= threshold:
                found[i] = j
                break
    return found
