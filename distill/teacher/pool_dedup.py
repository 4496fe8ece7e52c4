"""Problem dedup across prompt pools: exact after normalisation, then near-duplicates by MinHash + LSH (datasketch).

Rows are offered in priority order (sources first to last, rows in file order); a row is kept unless it duplicates
a row kept before it, so the copy kept is always the one of the highest-priority source.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import numpy as np

# LaTeX that changes how a problem is typeset, not what it asks.
_SIZED_DELIMITER = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![A-Za-z])\.?")
_FRAC = re.compile(r"\\[dt]frac(?![A-Za-z])")
_EMPTY_GROUP = re.compile(r"[\^_]?\{\}")  # AoPS's $p_{}$, $n^{}_{}$
_SIMPLE_FRAC = re.compile(r"\\frac\s*(?:\{(\w+)\}|([A-Za-z0-9]))\s*(?:\{(\w+)\}|([A-Za-z0-9]))")  # \frac{1}{29}, \frac12 -> 1/29, 1/2
_SPACING = re.compile(r"(?<!\\)\\(?:[,;:! ]|quad(?![A-Za-z])|qquad(?![A-Za-z])|displaystyle(?![A-Za-z])|textstyle(?![A-Za-z]))|~")
_MATH_DELIMITERS = re.compile(r"\$|(?<!\\)\\[()\[\]]")  # not a line break's \\[2pt]
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")
_THOUSANDS = re.compile(r"(?<=\d)(?:,|\{,\}|\\,)(?=\d{3}(?!\d))")  # 1,000 / 1{,}000 / 1\,000 -> 1000
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})
_SPACE_AROUND_SYMBOL = re.compile(r"\s*([^\w\s])\s*")
_TRAILING_PUNCTUATION = re.compile(r"[\s.?!;:,]+$")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def normalise(text: str) -> str:
    """The text two copies of one problem share: Unicode NFKC, case folded, curly quotes and dashes made plain,
    LaTeX sizing (`\\left`, `\\right`, `\\big`), spacing (`\\,` `\\quad` `~` `\\displaystyle`), math delimiters
    (`$`, `\\(`, `\\[`), empty groups (`p_{}`) and `\\text{}`-like wrappers dropped, `\\dfrac`/`\\tfrac` -> `\\frac`,
    a fraction of two plain terms written a/b, thousands separators dropped, whitespace collapsed and removed next
    to symbols, trailing punctuation dropped."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _SIZED_DELIMITER.sub("", text)
    text = _FRAC.sub(r"\\frac", text)
    text = _EMPTY_GROUP.sub("", text)
    text = _SIMPLE_FRAC.sub(lambda m: f"{m[1] or m[2]}/{m[3] or m[4]}", text)
    text = _THOUSANDS.sub("", text)
    text = _SPACING.sub(" ", text)
    text = _MATH_DELIMITERS.sub(" ", text)
    text = _TEXT_COMMAND.sub(r" \1 ", text)
    text = " ".join(text.casefold().split())
    text = _SPACE_AROUND_SYMBOL.sub(r"\1", text)
    return _TRAILING_PUNCTUATION.sub("", text)


def shingles(normalised: str, kind: Literal["word", "char"], n: int) -> set[bytes]:
    """n-grams of word/symbol tokens (`word`) or of characters (`char`) of a normalised text."""
    if kind == "word":
        tokens = _TOKEN.findall(normalised)
        return {" ".join(tokens[i:i + n]).encode() for i in range(max(len(tokens) - n + 1, 1))}
    return {normalised[i:i + n].encode() for i in range(max(len(normalised) - n + 1, 1))}


def numbers_key(normalised: str) -> bytes:
    """The numbers a normalised problem holds, in order: two problems of one template with other numbers are
    other problems, however similar their words."""
    return hashlib.blake2b(" ".join(_NUMBER.findall(normalised)).encode(), digest_size=8).digest()


_ANSWER_DECORATION = re.compile(r"\^\{?\\circ\}?|\\circ|\\?[$%]|\b(?:degrees?|dollars?|cents?|units?)\b")


def answer_key(answer: str | None) -> str | None:
    """A reference answer as two copies of one problem would share it (degrees, $ and % signs dropped)."""
    if answer is None or not str(answer).strip():
        return None
    return normalise(_ANSWER_DECORATION.sub("", str(answer))).replace(" ", "")


def boilerplate_shingles(texts: list[str], kind: Literal["word", "char"], n: int, share: float, sample: int = 20_000,
                         min_rows: int = 10) -> frozenset[bytes]:
    """Shingles found in at least `share` of the problems (and `min_rows` of them), counted on up to `sample` problems
    spread over the pool: a pool's shared phrasing (LeetCode's preamble and ListNode / TreeNode stubs, "express your
    answer as a common fraction"), which would make distinct problems look alike."""
    from collections import Counter

    step = max(1, len(texts) // sample)
    chosen = texts[::step]
    counts = Counter(g for text in chosen for g in shingles(normalise(text), kind, n))
    floor = max(min_rows, share * len(chosen))
    return frozenset(g for g, c in counts.items() if c >= floor)


@dataclass
class Match:
    kind: Literal["exact", "near"]
    kept: int  # index of the kept row it duplicates
    similarity: float  # MinHash estimate of the Jaccard similarity (1.0 for exact)


class ProblemDeduper:
    """Offer rows one by one (`add`): each is kept, or reported as a duplicate of a row kept earlier."""

    def __init__(self, near: bool = True, threshold: float = 0.7, shingle: Literal["word", "char"] = "char",
                 ngram: int = 5, num_perm: int = 128, same_numbers: bool = True, same_answer: bool = True,
                 boilerplate: frozenset[bytes] = frozenset(), seed: int = 1):
        from datasketch import MinHash, MinHashLSH

        self.near, self.threshold, self.shingle, self.ngram, self.num_perm = near, threshold, shingle, ngram, num_perm
        self.same_numbers, self.same_answer, self.boilerplate = same_numbers, same_answer, boilerplate
        self.exact: dict[bytes, int] = {}
        self.kept = 0
        if near:
            self._minhash = MinHash
            first = MinHash(num_perm=num_perm, seed=seed)
            self._permutations, self._scheme = first.permutations, first.scheme  # made once, shared by every row
            self.seed = seed
            self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
            self.signatures: list[np.ndarray] = []  # kept row -> its MinHash values (uint32: datasketch's are < 2**32)
            self.numbers: list[bytes] = []  # kept row -> numbers_key
            self.answers: list[str | None] = []  # kept row -> answer_key

    def signature(self, normalised: str):
        m = self._minhash(num_perm=self.num_perm, seed=self.seed, permutations=self._permutations, scheme=self._scheme)
        grams = shingles(normalised, self.shingle, self.ngram)
        m.update_batch(list(grams - self.boilerplate or grams))  # all boilerplate: compared on all of it
        return m

    def add(self, text: str, answer: str | None = None) -> Match | None:
        """None when `text` is kept (it becomes row `self.kept - 1`), else the kept row it duplicates. With
        `same_answer`, a near match whose reference answer differs from `answer` (both known) is another problem."""
        normalised = normalise(text)
        key = hashlib.blake2b(normalised.encode(), digest_size=16).digest()
        if key in self.exact:
            return Match("exact", self.exact[key], 1.0)
        signature = None
        if self.near:
            signature = self.signature(normalised)
            values = signature.hashvalues.astype(np.uint32)
            numbers = numbers_key(normalised) if self.same_numbers else b""
            reference = answer_key(answer) if self.same_answer else None
            best, best_similarity = None, 0.0
            for candidate in self.lsh.query(signature):
                if self.same_numbers and self.numbers[candidate] != numbers:
                    continue
                if reference is not None and self.answers[candidate] not in (None, reference):
                    continue
                similarity = float(np.count_nonzero(self.signatures[candidate] == values)) / self.num_perm
                if similarity >= self.threshold and similarity > best_similarity:
                    best, best_similarity = candidate, similarity
            if best is not None:
                return Match("near", best, best_similarity)
            self.lsh.insert(self.kept, signature, check_duplication=False)
            self.signatures.append(values)
            self.numbers.append(numbers)
            self.answers.append(reference)
        self.exact[key] = self.kept
        self.kept += 1
        return None
