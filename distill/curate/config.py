"""The `curate:` section of a generation run (teacher/runs/<run>.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distill.config import Section
from distill.verify.sandbox import SandboxSettings


class LanguageFilter(Section):
    enabled: bool = True
    script: Literal["latin", "cjk", "cyrillic", "arabic"] = "latin"
    min_share: float = Field(default=0.95, ge=0, le=1)


class RepetitionFilter(Section):
    enabled: bool = True
    ngram: int = Field(default=10, ge=2)
    max_ngram_share: float = Field(default=0.3, gt=0, le=1)
    max_line_repeats: int = Field(default=10, ge=1)


class NearDedup(Section):
    """Near-duplicate responses to the same prompt (MinHash over word shingles, datasketch)."""

    enabled: bool = False
    threshold: float = Field(default=0.9, gt=0, le=1)  # estimated Jaccard similarity
    shingle: int = Field(default=5, ge=1)
    num_perm: int = Field(default=64, ge=16)


class DecontaminationSet(Section):
    name: str
    source: str  # a local .jsonl / .json file (tests use ../shared/data) or a Hub dataset id
    field: str = "problem"
    split: str = "test"
    subset: str | None = None


class Decontamination(Section):
    enabled: bool = True
    ngram: int = Field(default=8, ge=3)
    # A prompt is flagged when it holds this share of one benchmark problem's n-grams (0: any one, as open-r1).
    min_overlap: float = Field(default=0.2, ge=0, le=1)
    # An n-gram in this many benchmark problems is their shared phrasing, not a leaked problem: ignored.
    boilerplate_problems: int = Field(default=3, ge=2)
    suites: list[str] = Field(default_factory=list)  # eval suites (eval/suites/*.yaml): every benchmark of each
    local_files: dict[str, str] = Field(default_factory=dict)  # suite benchmark name -> local copy (offline)
    benchmarks: list[DecontaminationSet] = Field(default_factory=list)  # more, one by one


class Selection(Section):
    max_per_prompt: int | None = Field(default=None, ge=1)  # None: keep every accepted trace
    policy: Literal["all", "shortest", "random"] = "all"
    seed: int = 0


class CurateSection(Section):
    # <run>/<output>/: several curations of one run. A plain name, so that it stays inside the run directory.
    output: str = Field(default="curated", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    verifier: Literal["auto", "math", "code", "none"] = "auto"  # auto: tests -> code, answer -> math
    # A trace whose prompt has no reference (no answer, no tests) is rejected as `no reference`, unless this is on;
    # then it is kept unverified and counted as such. `verifier: none` keeps every trace unverified.
    accept_unverified: bool = False
    reasoning: bool = True  # the answer is the text after </think>; a response without it is wrong
    answer_kind: Literal["auto", "math", "integer", "choice"] = "auto"
    min_tokens: int = Field(default=1, ge=0)
    max_tokens: int | None = None
    language: LanguageFilter = Field(default_factory=LanguageFilter)
    repetition: RepetitionFilter = Field(default_factory=RepetitionFilter)
    dedup: bool = True  # exact duplicate responses to the same prompt
    near_dedup: NearDedup = Field(default_factory=NearDedup)
    decontamination: Decontamination = Field(default_factory=Decontamination)
    selection: Selection = Field(default_factory=Selection)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    workers: int | None = Field(default=None, ge=1)  # verifier processes (default: CPU count)
    # The teacher's top-k logprobs (when generation stored them) go into the train files only for a `kd` student:
    # at k = 20 they are some 30x the size of the text. The raw traces keep them either way.
    keep_logprobs: bool = False
