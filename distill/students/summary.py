"""train_summary.json: what a training run did (written by `distill train`, read by the report and reruns)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from distill.runs import Summary
from distill.students.methods.sft import SFT


class SourceUsage(BaseModel):
    """One source of a run's training rows. tokens: the rows' conversations in the student's chat template, cut at
    training.max_length, one pass over the rows (not multiplied by epochs); shares are of the run's rows and tokens."""

    name: str
    source: str
    split: str = "train"
    rows: int
    tokens: int | None = None
    share: float
    token_share: float | None = None


class TrainSummary(Summary):
    FILE = "train_summary.json"
    WRITER = "distill train"

    name: str | None = None
    model: str | None = None  # the final model directory
    steps: int
    train_loss: float | None = None
    final_loss: float | None = None
    tokens: int | None = None
    examples: int | None = None
    wall_seconds: float
    resumed_from: str | None = None
    parameters: int | None = None
    lora: bool = False
    world_size: int = 1
    method: str = SFT.name  # summaries written before there were other methods are of sft runs
    # Filled by the method (its summary_fields, students/methods/):
    teacher: str | None = None  # kd and on-policy
    teacher_tokens_scored: int | None = None  # on-policy: completion tokens the teacher scored
    off_policy_batches: int | None = None  # on-policy: batches trained on the teacher's trace (lmbda < 1)
    sources: list[SourceUsage] = Field(default_factory=list)  # one entry per source (one for a single data.source)
