"""Benchmark decontamination: word n-gram overlap of training prompts with every eval benchmark
(8-grams of lower-cased words, as s1 and open-r1 do)."""

from __future__ import annotations

import re
from collections.abc import Iterable

WORD = re.compile(r"\w+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


class Decontaminator:
    """Index the n-grams of benchmark problems; a prompt sharing any of them is flagged."""

    def __init__(self, n: int = 8):
        self.n = n
        self.index: dict[tuple[str, ...], str] = {}

    def add(self, benchmark: str, problems: Iterable[str]) -> int:
        added = 0
        for number, problem in enumerate(problems):
            for gram in ngrams(problem, self.n):
                self.index.setdefault(gram, f"{benchmark}#{number}")
                added += 1
        return added

    def match(self, prompt: str) -> str | None:
        """The benchmark item (`name#row`) the prompt overlaps with, or None."""
        for gram in ngrams(prompt, self.n):
            hit = self.index.get(gram)
            if hit:
                return hit
        return None
