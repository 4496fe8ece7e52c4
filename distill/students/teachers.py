"""The teacher of a `kd` or `on-policy` run: its tokenizer checked against the student's, then a local model beside
the student or a scorer for a served one."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from distill.config import load_config
from distill.engines.config import EngineSection
from distill.engines.serve import ServeConfig
from distill.errors import UsageError
from distill.progress import say
from distill.students.dtypes import DTYPES

# Same-tokenizer teachers for the R1-Distill students (the two-stage recipes in students/).
WAYS_OUT = ("a teacher with the student's tokenizer (Qwen2.5 students: DeepSeek-R1-Distill-Qwen-32B or our own 32B "
            "student; Llama 3 students: DeepSeek-R1-Distill-Llama-70B), or method: sft on the teacher's traces")


@dataclass
class Teacher:
    model: object | None  # a local model (on-policy), else None
    scorer: object | None  # a ServerScorer (on-policy with a served teacher), else None
    name: str


def load_tokenizer(name: str, what: str):
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{what}: cannot load the tokenizer of {name!r}: {reason}") from None


def check_same_tokenizer(student, teacher, student_name: str, teacher_name: str) -> None:
    """Logit distillation compares distributions id by id: both tokenizers must give every token the same id."""
    student_vocab, teacher_vocab = student.get_vocab(), teacher.get_vocab()
    if student_vocab == teacher_vocab:
        return
    shared = sum(1 for token, index in student_vocab.items() if teacher_vocab.get(token) == index)
    raise UsageError(
        f"teacher {teacher_name} ({len(teacher_vocab):,} tokens) and student {student_name} ({len(student_vocab):,} tokens) "
        f"do not share token ids ({shared:,} tokens agree): logit distillation needs one tokenizer. Ways out: {WAYS_OUT}")


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


def resolve(cfg, student_tokenizer) -> Teacher:
    t = cfg.teacher
    student_name = cfg.model.name_or_path
    if t.remote:
        engine, name, model = served(cfg)
        tokenizer_name = t.tokenizer or model
    else:
        name, tokenizer_name = t.model or t.tokenizer, t.tokenizer or t.model
    check_same_tokenizer(student_tokenizer, load_tokenizer(tokenizer_name, "teacher.tokenizer"), student_name, tokenizer_name)
    if cfg.method == "kd":
        return Teacher(None, None, name)
    if t.remote:
        from distill.students.onpolicy import ServerScorer

        say(f"[train {cfg.name}] teacher {name} served at {', '.join(engine.base_urls)} (top-{t.top_k} logprobs)")
        return Teacher(None, ServerScorer(engine, t.top_k), name)
    on_gpu = torch.cuda.is_available()
    try:
        model = AutoModelForCausalLM.from_pretrained(t.model, dtype=DTYPES[t.dtype] if on_gpu else torch.float32)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"teacher.model: cannot load {t.model!r}: {reason}") from None
    say(f"[train {cfg.name}] teacher {t.model} loaded beside the student"
        f" ({sum(p.numel() for p in model.parameters()):,} parameters)")
    return Teacher(model, None, name)
