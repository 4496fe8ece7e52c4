"""A generation run, as written in teacher/runs/<run>.yaml."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from distill.config import HubIdOrPath, Section
from distill.engines.config import EngineSection

R1_MATH_TEMPLATE = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."


class PromptsSection(Section):
    source: HubIdOrPath  # Hub dataset id, a .jsonl/.json/.parquet file, or a directory of them
    name: str | None = None  # a name for the source in traces (default: the file or dataset name)
    split: str = "train"
    subset: str | None = None
    # Where each field of the prompt schema lives in the source's rows.
    fields: dict[str, str] = Field(default_factory=lambda: {"id": "id", "problem": "problem", "answer": "answer"})
    # R1's advice: no system prompt; the instruction goes in the user turn. `{problem}` and `{column}`
    # (any column of the source) are replaced.
    template: str = R1_MATH_TEMPLATE
    # Code prompts: another template for rows whose `template_field` is non-empty (e.g. starter_code).
    alt_template: str | None = None
    alt_template_field: str | None = None
    system_prompt: str | None = None
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _fields(self) -> PromptsSection:
        unknown = set(self.fields) - {"id", "problem", "answer", "tests"}
        if unknown:
            raise ValueError(f"prompts.fields: unknown schema field(s) {sorted(unknown)}; expected id, problem, answer, tests")
        if "problem" not in self.fields:
            raise ValueError("prompts.fields: 'problem' must be mapped")
        return self


class SamplingSection(Section):
    n: int = Field(default=4, ge=1)  # samples per prompt, in one request (prefix shared)
    temperature: float = Field(default=0.6, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=32768, ge=1)
    seed: int | None = None  # set: reproducible samples on seed-honouring servers
    top_logprobs: int = Field(default=0, ge=0, le=20)


class CostSection(Section):
    """Estimated cost: GPU-hours for self-hosted, or $ per million tokens for a hosted API."""

    gpu_hour_usd: float | None = None
    gpus: int = 8
    usd_per_million_input: float | None = None
    usd_per_million_output: float | None = None


class GenerateConfig(Section):
    name: str
    run_dir: str | None = None  # default: runs/teacher/<name>
    prompts: PromptsSection
    engine: EngineSection = Field(default_factory=EngineSection)
    sampling: SamplingSection = Field(default_factory=SamplingSection)
    cost: CostSection = Field(default_factory=CostSection)
    # What `distill curate` keeps: the curate stage's section (distill.curate.config.CurateConfig types it). The CLI
    # loads the whole file as CurateConfig for both commands, so a mistake here stops `distill generate` too.
    curate: dict[str, Any] = Field(default_factory=dict)
    flush_every: int = Field(default=64, ge=1)  # traces per shard at most
    flush_seconds: float = Field(default=10.0, gt=0)  # and at least this often
    # Samples still failed after retries make `distill generate` exit 1 when they are more than this share of
    # the run (0: any failed sample). Rerunning the same command retries exactly the failed ones.
    max_failed_fraction: float = Field(default=0.0, ge=0, le=1)
    # Move damaged trace shards aside to traces/damaged/ and generate their samples again (`repair=true`).
    repair: bool = False

    @model_validator(mode="after")
    def _defaults(self) -> GenerateConfig:
        if self.run_dir is None:
            self.run_dir = f"runs/teacher/{self.name}"
        return self
