"""Benchmark decontamination: word n-gram overlap of training prompts with every eval benchmark
(8-grams of lower-cased words, as s1 and open-r1 do)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

WORD = re.compile(r"\w+")


def words_of(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    return grams_of(tuple(words_of(text)), n)


def grams_of(words: tuple[str, ...], n: int) -> set[tuple[str, ...]]:
    return {words[i:i + n] for i in range(len(words) - n + 1)}


class Decontaminator:
    """Index the n-grams of benchmark problems; flag a prompt that holds a good part of one problem's n-grams.

    Flagging on any one shared n-gram (open-r1's rule, `min_overlap=0`) flags most competitive-programming and
    many math training prompts on their stock phrasing ("in the following format n output print the", "express
    your answer as a decimal to the nearest"). So an n-gram found in `boilerplate_problems` or more benchmark
    problems is ignored, and a prompt is flagged when it shares at least `min_overlap` of some problem's n-grams.
    A problem shorter than n words is matched whole: a prompt with the same words.
    """

    def __init__(self, n: int = 8, min_overlap: float = 0.2, boilerplate_problems: int = 3):
        self.n, self.min_overlap, self.boilerplate_problems = n, min_overlap, boilerplate_problems
        self.items: list[str] = []  # name#row
        self.grams_in: list[int] = []  # n-grams per item
        self.index: dict[tuple[str, ...], list[int]] = {}  # n-gram -> items holding it (up to boilerplate_problems)
        self.short: dict[tuple[str, ...], str] = {}
        self.seen: set[tuple[str, ...]] = set()  # a problem in two suites counts once

    def add(self, benchmark: str, problems: Iterable[str]) -> int:
        added = 0
        for number, problem in enumerate(problems):
            words = tuple(words_of(problem))
            if not words or words in self.seen:
                continue
            self.seen.add(words)
            item = f"{benchmark}#{number}"
            if len(words) < self.n:
                self.short.setdefault(words, item)
                added += 1
                continue
            grams = grams_of(words, self.n)
            self.items.append(item)
            self.grams_in.append(len(grams))
            for gram in grams:
                holders = self.index.setdefault(gram, [])
                if len(holders) < self.boilerplate_problems:
                    holders.append(len(self.items) - 1)
            added += len(grams)
        return added

    def match(self, prompt: str) -> str | None:
        """The benchmark item (`name#row`) the prompt overlaps with most, or None."""
        if self.short:
            hit = self.short.get(tuple(words_of(prompt)))
            if hit:
                return hit
        shared: Counter[int] = Counter()
        for gram in ngrams(prompt, self.n):
            holders = self.index.get(gram)
            if holders and len(holders) < self.boilerplate_problems:
                shared.update(holders)
        if not shared:
            return None
        best, count = max(shared.items(), key=lambda kv: kv[1] / self.grams_in[kv[0]])
        return self.items[best] if count / self.grams_in[best] >= self.min_overlap else None
