"""Build the toy world into a directory: prompts, programmatic SFT traces, tokenizer, base models.

Layout of the world directory:
    prompts/train.jsonl, prompts/test.jsonl   prompt schema (id, problem, answer, difficulty)
    sft/                                       HF dataset (parquet) of chat `messages`: the toy teacher's data
    tokenizer/                                 the toy tokenizer (Qwen chat tokens and template)
    bases/<name>/                              randomly initialised tiny models (students' "base models")
    world.json                                 the config it was built from, and its hash
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from datasets import Dataset
from pydantic import Field

from distill.config import Section, config_hash
from distill.io import atomic_write_json, atomic_write_text, replace_dir, staging_dir_for
from distill.toy import models, tokenizer
from distill.toy import task as toy_task

WORLD_FILE = "world.json"


class ToyWorldConfig(Section):
    seed: int = 0
    task: toy_task.ToyTaskConfig = Field(default_factory=toy_task.ToyTaskConfig)
    train_problems: int = 30000
    test_problems: int = 200
    tokenizer_corpus_problems: int = 3000
    vocab_size: int = 320
    bases: list[models.ToyModelSpec] = Field(default_factory=list)
    # Where `distill toy-teacher` builds the world and puts the finished teacher.
    world_dir: str = "runs/toy/world"
    teacher_recipe: str = "students/toy-teacher.yaml"
    teacher_dir: str = "toy/teacher"
    # Direct check of the built teacher: sampled pass@1 on held-out problems.
    check_samples: int = 4
    check_temperature: float = 0.6
    check_top_p: float = 0.95


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def build_world(cfg: ToyWorldConfig, directory: str | Path | None = None, log=print) -> Path:
    """Build (or reuse, when built from the same config) the toy world. Returns its directory."""
    final = Path(directory or cfg.world_dir)
    digest = config_hash(cfg.model_copy(update={"world_dir": "", "teacher_dir": "", "teacher_recipe": ""}))
    marker = final / WORLD_FILE
    if marker.exists() and json.loads(marker.read_text()).get("hash") == digest:
        log(f"toy world: up to date at {final}")
        return final
    start = time.time()
    out = staging_dir_for(final)
    train = toy_task.generate(cfg.task, "train", cfg.train_problems, cfg.seed)
    test = toy_task.generate(cfg.task, "test", cfg.test_problems, cfg.seed)
    write_jsonl(out / "prompts" / "train.jsonl", [toy_task.prompt_record(p, "train", i) for i, p in enumerate(train)])
    write_jsonl(out / "prompts" / "test.jsonl", [toy_task.prompt_record(p, "test", i) for i, p in enumerate(test)])
    Dataset.from_list([toy_task.sft_record(p, "train", i) for i, p in enumerate(train)]).to_parquet(
        str(out / "sft" / "train.parquet")
    )

    probe = tokenizer.train_tokenizer(["x"], 300)  # only for its chat template, to render the corpus
    corpus = [
        probe.apply_chat_template(toy_task.sft_record(p, "train", i)["messages"], tokenize=False)
        for i, p in enumerate(train[: cfg.tokenizer_corpus_problems])
    ]
    tok = tokenizer.train_tokenizer(corpus, cfg.vocab_size)
    tok.save_pretrained(out / "tokenizer")
    for spec in cfg.bases:
        n_params = models.save_base(spec, tok, cfg.seed, out / "bases" / spec.name)
        log(f"toy world: base {spec.name} ({spec.family}, {n_params:,} params)")
    atomic_write_json(out / WORLD_FILE, {"hash": digest, "config": cfg.model_dump(mode="json")})
    replace_dir(out, final)
    log(
        f"toy world: {len(train)} train / {len(test)} test problems, vocab {len(tok)}, "
        f"{len(cfg.bases)} bases -> {final} ({time.time() - start:.1f}s)"
    )
    return final
