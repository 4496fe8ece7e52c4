"""How a stage reaches a model: the engine settings every stage shares (generation, the judge model, the student
filter, a served teacher, eval)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from distill.config import Section


class EngineSection(Section):
    kind: Literal["openai", "vllm", "hf"] = "openai"
    model: str = "deepseek-ai/DeepSeek-R1"  # served model name (openai) or model path (vllm, hf)
    base_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8000/v1"])
    api_key_env: str | None = None  # name of the environment variable holding the API key
    max_concurrency: int = Field(default=64, ge=1)  # requests in flight in total
    per_endpoint_concurrency: int = Field(default=32, ge=1)
    timeout_s: float = Field(default=3600, gt=0)  # one request: R1 at 32k tokens takes minutes
    max_retries: int = Field(default=5, ge=0)
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    endpoint_failures_before_down: int = Field(default=3, ge=1)
    endpoint_cooldown_s: float = 10.0  # doubled at each outage (to 16x), halved back as the endpoint succeeds
    health_check_interval_s: float = Field(default=1.0, gt=0)  # while every endpoint is down
    all_down_timeout_s: float = 600.0  # every endpoint down this long: remaining samples fail (resumable)
    vllm_extensions: bool = True  # vLLM servers: token ids for exact counts and logprobs
    vllm_args: dict[str, Any] = Field(default_factory=dict)  # kind vllm: LLM(...) arguments
