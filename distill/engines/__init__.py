"""Engines: every model is queried the same way (chat messages + sampling params -> completions)."""

from distill.engines.base import Completion, Engine, EngineError, Result, SamplingParams

__all__ = ["Completion", "Engine", "EngineError", "Result", "SamplingParams", "make_engine"]


def make_engine(cfg) -> Engine:
    """The engine named by an EngineSection (see distill.teacher.config)."""
    if cfg.kind == "openai":
        from distill.engines.openai import OpenAIEngine

        return OpenAIEngine(cfg)
    if cfg.kind == "hf":
        from distill.engines.hf import HFEngine

        return HFEngine(cfg)
    from distill.engines.vllm_offline import VLLMEngine

    return VLLMEngine(cfg)
