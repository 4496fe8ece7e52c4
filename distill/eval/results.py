"""results.json: one model's scores on a suite (written by `distill eval`, read by the report)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from distill.runs import Summary


class BenchmarkResult(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    problems: int
    samples: int
    pass_at_1: float = Field(alias="pass@1")
    ci95: tuple[float, float]
    cons_at_n: float | None = Field(None, alias="cons@n")
    n: int | None = None
    pass_at_k: dict[str, float] = Field({}, alias="pass@k")
    length: dict[str, float | None] = {}
    per_problem: dict[str, float]


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    label: str
    name_or_path: str | None = None
    role: Literal["teacher", "student"] | None = None
    params: int | None = None


class Results(Summary):
    FILE = "results.json"
    WRITER = "distill eval, in an eval run directory as documented in distill/eval/__init__.py"

    model: ModelInfo
    suite: str | None = None
    protocol: dict[str, Any] = {}
    benchmarks: dict[str, BenchmarkResult] = Field(min_length=1)
