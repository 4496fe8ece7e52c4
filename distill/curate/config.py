"""The `curate:` section of a generation run (teacher/runs/<run>.yaml)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from distill.config import HubIdOrPath, Section
from distill.engines.config import EngineSection
from distill.teacher.config import GenerateConfig
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


JUDGE_RUBRIC = """You are grading an assistant's answer to a user's request.
Judge whether it does what was asked (task, language, format, length), whether it is correct and complete,
and whether it is clear and well written. Ignore any reasoning; grade the answer only.

[Request]
{prompt}

[Answer]
{response}

Write one short sentence giving your reasons, then a last line exactly of the form
Score: N
where N is a whole number from 1 (useless or wrong) to 10 (excellent)."""


class JudgeModel(Section):
    """An optional judge model for traces without a reference answer (writing, QA, translation): it reads each trace
    that passed the filters, scores it by `rubric`, and traces scoring below `threshold` are rejected. The same engines
    as generation: `openai` (any OpenAI-compatible server: vLLM, a hosted API) or `hf` (a local model)."""

    enabled: bool = False
    kind: Literal["openai", "vllm", "hf"] = "openai"
    model: str | None = Field(default=None, validate_default=True)  # served name (openai) or model path (vllm, hf)
    base_urls: list[str] = Field(default_factory=list, validate_default=True)  # kind openai
    api_key_env: str | None = None
    engine: dict[str, Any] = Field(default_factory=dict)  # more engine settings, as a run's engine: (max_concurrency, ...)
    # `{prompt}` (the last user message) and `{response}` (the answer) are replaced; the judge ends with `Score: N`.
    rubric: str = JUDGE_RUBRIC
    threshold: float = Field(default=6, ge=1, le=10)  # scores run from 1 to 10; below this, rejected
    answer_only: bool = True  # the judge reads the text after </think>, not the reasoning
    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=1)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("enabled") and not (value or "").strip():
            raise ValueError("required with curate.judge.enabled: true (the judge: a served model name for kind "
                             "openai, a model path for hf)")
        return value

    @field_validator("base_urls")
    @classmethod
    def _endpoint(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("enabled") and info.data.get("kind") == "openai" and not value:
            raise ValueError("required with curate.judge.enabled: true and kind openai (the judge's server, "
                             "like [http://HOST:PORT/v1])")
        return value

    @field_validator("rubric")
    @classmethod
    def _rubric(cls, value: str) -> str:
        if "{response}" not in value:
            raise ValueError("the rubric must hold {response}, where the answer to grade goes (and {prompt} for the request)")
        return value

    @model_validator(mode="after")
    def _engine(self) -> JudgeModel:
        named = sorted(set(self.engine) & {"kind", "model", "base_urls", "api_key_env"})
        if named:
            raise ValueError(f"engine: set {', '.join(named)} as curate.judge.{named[0]}, not under curate.judge.engine")
        if self.enabled:
            self.engine_section()
        return self

    def engine_section(self):
        """The judge's settings as the engines take them."""
        try:
            return EngineSection(kind=self.kind, model=self.model, api_key_env=self.api_key_env,
                                 **({"base_urls": self.base_urls} if self.base_urls else {}), **self.engine)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"engine.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


class NearDedup(Section):
    """Near-duplicate responses to the same prompt (MinHash over word shingles, datasketch).

    Off by default, on in the R1 runs (teacher/runs/math.yaml, code.yaml: k=4 samples per prompt), where it can
    pay. Measured (`python bench/dedup.py --traces RUN_DIR`, CPU time of the MinHash and the comparisons): on the
    demo's 12,000 toy traces (k=1, so nothing can be removed) it removed 0 and cost 2.4 s (0.2 ms a trace; the whole
    curation took 3.9 s of CPU without it, 6.5 s with it); on synthetic R1-length traces (k=4, 22,700 characters,
    a tenth of the samples copies with 0.5% of the words changed) it removed 143 of 2,000 at 5.9 ms a trace: about
    an hour of one core for 600k traces, against the GPU-hours that generated each thousand of them."""

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


class PassRateBand(Section):
    """Keep prompts whose pass rate (correct / verified samples) lies in [min, max], both ends included."""

    min: float = Field(default=0.0, ge=0, le=1)
    max: float = Field(default=1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> PassRateBand:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Subset(Section):
    """A small chosen set in the manner of s1 / LIMO: `count` prompts, hardest first (lowest teacher pass rate),
    spread round-robin over the groups `diversity` names, and the longest kept trace of each (or one in a length band)."""

    count: int = Field(ge=1)  # prompts (one trace each)
    difficulty: Literal["hardest", "random"] = "hardest"  # hardest: lowest teacher pass rate first, ties at random
    diversity: str | None = None  # `source`, or a metadata field (e.g. `topic`, `difficulty`): round-robin over its values
    length: Literal["longest", "shortest", "any"] = "longest"  # which kept trace of a prompt, and the tie-break
    min_tokens: int | None = Field(default=None, ge=0)  # a length band: traces outside it are not candidates
    max_tokens: int | None = Field(default=None, ge=1)


class StudentFilter(Section):
    """open-r1's pass-rate filter: the base student's pass@k on the training prompts; prompts it already solves at a
    rate above `max` are dropped (teaching them costs steps and teaches little)."""

    model: HubIdOrPath = Field(min_length=1)  # the base student: a local path or a Hub id (engine hf / vllm) or a served name (openai)
    engine: Literal["hf", "vllm", "openai"] = "hf"
    base_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8000/v1"])  # engine openai
    k: int = Field(default=8, ge=1)  # samples per prompt
    max: float = Field(default=0.75, ge=0, le=1)
    temperature: float = Field(default=0.6, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=32768, ge=1)
    seed: int = 0
    concurrency: int = Field(default=16, ge=1)  # requests in flight

    def band(self) -> PassRateBand:
        return PassRateBand(min=0.0, max=self.max)


class Selection(Section):
    max_per_prompt: int | None = Field(default=None, ge=1)  # None: keep every accepted trace
    policy: Literal["all", "shortest", "random"] = "all"
    seed: int = 0
    pass_rate: PassRateBand | None = None  # the teacher's pass rate per prompt: e.g. {min: 0.1, max: 0.9}
    student: StudentFilter | None = None  # the base student's pass rate per prompt (sampled, cached in the run)
    subset: Subset | None = None  # applied last, on what the band and the student filter left


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
    # Train on the final answer alone, its reasoning replaced by an empty block: R1's rows for "simpler queries ... we
    # do not provide a CoT" (see curate/run.py, assistant_turn). Responses with no reasoning block are written so always.
    answer_only: bool = False
    judge: JudgeModel = Field(default_factory=JudgeModel)  # an optional judge model's score (prompts without references)


class CurateConfig(GenerateConfig):
    """A run file of teacher/runs/ as `distill curate` reads it: the generation run (GenerateConfig) whose traces it
    curates, and its own section."""

    curate: CurateSection = Field(default_factory=CurateSection)
