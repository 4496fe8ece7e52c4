"""Benchmark decontamination: word n-gram overlap of training prompts with every eval benchmark
(8-grams of lower-cased words, as s1 and open-r1 do)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from distill.curate.config import CurateSection
from distill.errors import UsageError
from distill.hub import HubError, load_error

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


def load_benchmarks(cfg: CurateSection) -> Decontaminator | None:
    """A Decontaminator holding every benchmark problem the config names (eval suites, single benchmarks), or None."""
    d = cfg.decontamination
    if not d.enabled or not (d.benchmarks or d.suites):
        return None
    from datasets import load_dataset

    from distill.config import looks_like_local_path
    from distill.benchmarks import suite_problems

    decon = Decontaminator(d.ngram, min_overlap=d.min_overlap, boilerplate_problems=d.boilerplate_problems)
    for suite in d.suites:
        try:
            for name, problems in suite_problems(suite, d.local_files).items():
                decon.add(name, problems)
        except HubError as exc:  # offline, or the Hub out of reach: the local copies are the other way
            raise UsageError(f"curate.decontamination.suites: {exc} (or map the benchmark to a local copy: "
                             f"curate.decontamination.local_files.NAME=PATH)") from None
        except UsageError as exc:
            raise UsageError(f"curate.decontamination.suites: {exc}") from None
        except Exception as exc:
            raise UsageError(f"curate.decontamination.suites: cannot load the benchmarks of {suite}: {_first_line(exc)} "
                             f"(offline: curate.decontamination.local_files maps a benchmark name to a local copy)") from None
    for bench in d.benchmarks:
        try:
            if looks_like_local_path(bench.source):
                rows = load_dataset("json", data_files=bench.source, split="train")
            else:
                rows = load_dataset(bench.source, bench.subset, split=bench.split)
            decon.add(bench.name, rows[bench.field])
        except Exception as exc:
            error = load_error(f"curate.decontamination.benchmarks: {bench.name}", bench.source, exc, "dataset")
            if error is not None:
                raise error from None
            raise UsageError(f"curate.decontamination.benchmarks: cannot load {bench.name} ({bench.source}, "
                             f"field {bench.field!r}): {_first_line(exc)}") from None
    return decon


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
