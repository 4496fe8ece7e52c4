"""The teacher model of a `kd` or `on-policy` run: its tokenizer checked against the student's (logit distillation
compares token ids), then, for a teacher that scores live, a local model beside the student or a scorer for a served
one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from distill.config import load_config
from distill.engines.config import EngineSection
from distill.engines.serve import ServeConfig
from distill import hub
from distill.errors import UsageError
from distill.progress import say
from distill.students import chat, token_ids
from distill.students.dtypes import DTYPES

# Same-tokenizer teachers for the R1-Distill students (the two-stage recipes in students/).
WAYS_OUT = ("a teacher with the student's vocabulary and chat format (students trained with model.family=r1-distill-qwen "
            "or published R1-Distill-Qwen models: DeepSeek-R1-Distill-Qwen-32B; r1-distill-llama: "
            "DeepSeek-R1-Distill-Llama-70B; ChatML Qwen2.5 students: a Qwen2.5 Instruct teacher), "
            "or method: sft on the teacher's traces")


class ServerScorer:
    """Top-k teacher logprobs of given token sequences from an OpenAI-compatible vLLM server (`prompt_logprobs`)."""

    def __init__(self, engine_cfg, top_k: int):
        from distill.engines.openai import OpenAIEngine  # deferred: the HTTP client, for served teachers only

        self.engine = OpenAIEngine(engine_cfg)
        self.top_k = top_k
        self.loop = asyncio.new_event_loop()

    def score(self, sequences: list[list[int]], starts: list[int]) -> list[tuple[list[list[int]], list[list[float]]]]:
        """Per sequence, the teacher's top-k (ids, logprobs) at each position from its start on."""
        async def all_of():
            return await asyncio.gather(*(self.engine.score(seq, start, self.top_k) for seq, start in zip(sequences, starts)))

        return self.loop.run_until_complete(all_of())

    def close(self) -> None:
        self.loop.run_until_complete(self.engine.close())
        self.loop.close()


@dataclass
class Teacher:
    model: object | None  # a local model (on-policy), else None
    scorer: object | None  # a ServerScorer (on-policy with a served teacher), else None
    name: str


def load_tokenizer(name: str, what: str):
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as exc:
        hub_error = hub.load_error(what, name, exc)
        if hub_error:
            raise hub_error from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{what}: cannot load the tokenizer of {name!r}: {reason}") from None


def check_token_ids(student, teacher, student_end: str, student_name: str, teacher_name: str) -> str:
    """Refuse a teacher whose token ids do not mean what the student's mean (students/token_ids.py); else the line
    that says what was compared."""
    teacher_family = chat.FAMILIES[chat.detect(None, teacher.get_vocab())]
    teacher_end = teacher_family.eos_token or teacher.eos_token
    compared = token_ids.check(student, teacher, student_end, teacher_end, student_name, teacher_name, WAYS_OUT)
    return token_ids.describe(compared)


def served(cfg):
    """(engine settings, served model name, the model whose tokenizer it serves) for a teacher behind a server."""
    t = cfg.teacher
    name, model, base_urls = t.served_model_name, t.model, list(t.base_urls)
    if t.serve:
        recipe = load_config(t.serve, ServeConfig)
        name = name or recipe.served_model_name or recipe.model
        model = model or recipe.model
        base_urls = base_urls or [recipe.base_url]
        if recipe.api_key_env and "api_key_env" not in t.engine:  # the key the recipe's server requires
            t = t.model_copy(update={"engine": {**t.engine, "api_key_env": recipe.api_key_env}})
    name = name or model
    if not name:
        raise UsageError("teacher: a served teacher needs teacher.served_model_name or teacher.model")
    try:
        engine = EngineSection(kind="openai", model=name, base_urls=base_urls, **t.engine)
    except Exception as exc:
        raise UsageError(f"teacher.engine: {str(exc).splitlines()[0]}") from None
    return engine, name, model


def resolve(cfg, student_tokenizer, student_end: str, live: bool) -> Teacher:
    """The teacher of the StudentConfig `cfg`, its tokenizer checked against the student's (`student_end`: the token
    that ends the student's turn). live: it scores during training (a local model or a server); else only its
    tokenizer matters (its logprobs are stored with the traces)."""
    t = cfg.teacher
    student_name = cfg.model.name_or_path
    if t.remote:
        engine, name, model = served(cfg)
        tokenizer_name = t.tokenizer or model
    else:
        name, tokenizer_name = t.model or t.tokenizer, t.tokenizer or t.model
    same = check_token_ids(student_tokenizer, load_tokenizer(tokenizer_name, "teacher.tokenizer"), student_end,
                           student_name, tokenizer_name)
    say(f"[train {cfg.name}] teacher {tokenizer_name}: token ids checked: {same}")
    if not live:
        return Teacher(None, None, name)
    if t.remote:
        say(f"[train {cfg.name}] teacher {name} served at {', '.join(engine.base_urls)} (top-{t.top_k} logprobs)")
        return Teacher(None, ServerScorer(engine, t.top_k), name)
    on_gpu = torch.cuda.is_available()
    try:
        model = AutoModelForCausalLM.from_pretrained(t.model, dtype=DTYPES[t.dtype] if on_gpu else torch.float32)
    except Exception as exc:
        hub_error = hub.load_error("teacher.model", t.model, exc)
        if hub_error:
            raise hub_error from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"teacher.model: cannot load {t.model!r}: {reason}") from None
    say(f"[train {cfg.name}] teacher {t.model} loaded beside the student"
        f" ({sum(p.numel() for p in model.parameters()):,} parameters)")
    return Teacher(model, None, name)
