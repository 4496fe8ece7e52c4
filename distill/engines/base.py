"""The request and result types every engine speaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class EngineError(Exception):
    """A request that failed for good (after retries), with the reason recorded on its samples."""


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768
    seed: int | None = None
    top_logprobs: int = 0  # 0: none; else top-k logprobs per generated token


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    completion_tokens: int | None = None
    # With top-k logprobs: the sampled token ids, and per token the k most likely ids and their logprobs.
    token_ids: list[int] | None = None
    top_logprob_ids: list[list[int]] | None = None
    top_logprobs: list[list[float]] | None = None
    error: str | None = None  # set: this sample failed (e.g. a malformed choice); its siblings may still be fine


@dataclass
class Result:
    completions: list[Completion]
    prompt_tokens: int | None = None
    endpoint: str | None = None
    latency_s: float = 0.0
    errors: list[str] = field(default_factory=list)  # per-try errors before this result


class Engine(Protocol):
    name: str
    model: str

    async def complete(self, messages: list[dict], params: SamplingParams) -> Result: ...

    async def close(self) -> None: ...
