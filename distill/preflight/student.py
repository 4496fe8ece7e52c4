"""The preflight of a student recipe: its real tokenizers and template, one rendered example, the teacher's token ids,
the data columns and the plan, then a few steps of the exact recipe on a two-layer model of the same architecture,
evaluated on one problem per benchmark of an eval suite."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from distill.config import deep_merge, load_config, parse_overrides, read_yaml
from distill.errors import UsageError
from distill.preflight import example
from distill.preflight.models import LocalModels, shrink
from distill.preflight.models import load_config as load_config_of
from distill.preflight.options import PreflightOptions
from distill.preflight.plan import plan_of
from distill.preflight.suite import evaluate_once
from distill.progress import say
from distill.students.config import StudentConfig
from distill.students.methods import training_method
from distill.toy import task as toy_task

STAND_IN_ROWS = 8


def stand_in_rows(dest: Path, count: int) -> Path:
    """Rows in the shape curation writes (messages with R1's <think> reasoning and a boxed answer), for a recipe whose
    data is not made yet: problems of the toy world's task."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "train.jsonl"
    problems = toy_task.generate(toy_task.ToyTaskConfig(), "train", count, seed=0)
    path.write_text("".join(json.dumps(toy_task.sft_record(p, "train", i)) + "\n" for i, p in enumerate(problems)))
    return dest


def data_overrides(raw: dict, opts: PreflightOptions, work: Path, log) -> list[str]:
    """The recipe's data where it is there; else `--data`, else stand-in rows (said so)."""
    data = raw.get("data") or {}
    sources = [s["source"] for s in data.get("sources") or []] if data.get("sources") else [data.get("source")]
    keys = [f"data.sources.{i}.source" for i in range(len(sources))] if data.get("sources") else ["data.source"]
    missing = [s for s in sources if s is None or not Path(str(s)).expanduser().exists()]
    if not missing and not opts.data:
        log(f"data: {', '.join(map(str, sources))}")
        return []
    if opts.data:
        log(f"data: --data {opts.data} stands in for {', '.join(map(str, sources))}")
        return [f"{key}={opts.data}" for key in keys]
    training = raw.get("training") or {}
    batch = int(training.get("per_device_train_batch_size", 8))  # one micro-batch a step here (cpu_overrides)
    count = max(STAND_IN_ROWS, batch * opts.steps)  # enough for every step's batch
    standin = stand_in_rows(work / "stand-in-data", count)
    log(f"data: {', '.join(map(str, missing))} not there yet (the teacher stage writes it): {count} stand-in rows "
        f"in R1's format ({standin}); run again with --data PATH to check your own rows")
    return [f"{key}={standin}" for key in keys]


def teacher_source(cfg: StudentConfig) -> str | None:
    """The model whose tokenizer (and architecture) the recipe's teacher has, as training resolves it."""
    from distill.students.logit_teacher import served

    t = cfg.teacher
    return t.tokenizer or (served(cfg)[2] if t.remote else t.model)


def cpu_overrides(cfg: StudentConfig, raw: dict, opts: PreflightOptions) -> list[str]:
    """What must differ from the recipe on a CPU, in a few steps."""
    t = cfg.training
    changes = [f"training.max_steps={opts.steps}", f"training.save_steps={opts.steps}", "training.logging_steps=1",
               "training.save_total_limit=1", "training.num_train_epochs=1"]
    if t.gradient_accumulation_steps > 1:  # the same loop, once: each step's batch is one micro-batch here
        changes.append("training.gradient_accumulation_steps=1")
    if t.bf16:
        changes.append("training.bf16=false")
    if t.use_liger_kernel:
        changes.append("training.use_liger_kernel=false")
    if t.dataset_num_proc and t.dataset_num_proc > 1:
        changes.append("training.dataset_num_proc=1")
    if t.dataloader_num_workers:
        changes.append("training.dataloader_num_workers=0")
    if (raw.get("training", {}).get("extra") or {}).get("use_vllm"):
        changes.append("training.extra.use_vllm=false")
    if training_method(cfg.method).needs_teacher and cfg.distillation.max_completion_length > opts.max_new_tokens:
        changes.append(f"distillation.max_completion_length={opts.max_new_tokens}")
    if cfg.model.attn_implementation not in (None, "auto", "sdpa", "eager"):
        changes.append("model.attn_implementation=auto")
    return changes


def preflight_student(path: str, overrides: list[str], opts: PreflightOptions) -> dict:
    started = time.time()
    raw = deep_merge(read_yaml(path), parse_overrides(overrides))
    name = str(raw.get("name") or Path(path).stem)
    work = Path(opts.out) / name
    log = lambda line: say(f"[preflight {name}] {line}")  # noqa: E731
    log(f"recipe {path}: method {raw.get('method', 'sft')}, student {(raw.get('model') or {}).get('name_or_path')}")
    data_changes = data_overrides(raw, opts, work, log)  # before the recipe loads: it checks that its data is there
    plan_overrides, overrides = overrides, [*overrides, *data_changes]
    cfg = load_config(path, StudentConfig, overrides)
    method = training_method(cfg.method)
    models = LocalModels(opts.models)

    student_dir = shrink(models.resolve(cfg.model.name_or_path), work / "models" / "student", "model.name_or_path")
    changes = [f"model.name_or_path={student_dir}", f"run_dir={work / 'run'}"]
    teacher_name = teacher_source(cfg) if method.needs_teacher else None
    if teacher_name:
        # A served teacher meets the student through its tokenizer only (top-k ids); beside the student, TRL also needs
        # the same number of embedding rows. Here it runs beside the student, so a served one gets the student's.
        rows = load_config_of(str(student_dir), "model.name_or_path").vocab_size if cfg.teacher.remote else None
        teacher_dir = shrink(models.resolve(teacher_name), work / "models" / "teacher", "teacher", vocab_size=rows)
        changes += [f"teacher.model={teacher_dir}", f"teacher.tokenizer={teacher_dir}", "teacher.serve=null",
                    "teacher.base_urls=[]", "teacher.dtype=float32"]
        where = f"served by {cfg.teacher.serve}" if cfg.teacher.serve else "beside the student"
        log(f"teacher {teacher_name} ({where} in the recipe): here a two-layer model with its tokenizer, beside the student")
    changes += cpu_overrides(cfg, raw, opts)
    log(f"two layers of {cfg.model.name_or_path}'s architecture (its tokenizer, config and vocabulary) at {student_dir}")
    log("differs from the recipe here: " + " ".join(c for c in changes if not c.startswith(("model.name_or_path", "run_dir",
                                                                                               "teacher."))))
    shutil.rmtree(work / "run", ignore_errors=True)  # a preflight always trains from the start
    run_cfg = load_config(path, StudentConfig, [*overrides, *changes])

    from distill.students.train import TrainSummary, prepare, train

    prepared = prepare(run_cfg)  # tokenizer, family, template, data columns, teacher token ids: the real checks
    trainer = prepared.trainer
    tokenizer = trainer.processing_class
    log(f"chat: template {Path(prepared.chat_template).name if prepared.chat_template else 'the model’s own'}; "
        f"end of turn {tokenizer.eos_token!r} ({tokenizer.eos_token_id}), pad {tokenizer.pad_token!r} ({tokenizer.pad_token_id})")
    text, tokens, trained = example.marked(trainer.train_dataset[0], tokenizer)
    log(f"one training example ({tokens:,} tokens, {trained:,} carry loss, between {example.OPEN} {example.CLOSE}):")
    say(example.shortened(text))
    plan_line = plan_of(path, plan_overrides)  # the recipe's own data: stand-in rows would not say its tokens
    log(f"plan: {plan_line}")

    final = train(run_cfg, prepared)
    summary = TrainSummary.read(Path(run_cfg.run_dir))
    if summary.steps < opts.steps:
        raise UsageError(f"preflight {cfg.name}: trained {summary.steps} of {opts.steps} steps: {summary.examples} rows "
                         f"gave no full batch (per device {cfg.training.per_device_train_batch_size} x accumulation "
                         f"{cfg.training.gradient_accumulation_steps}); check the data, or pass --data with more rows")
    log(f"trained {summary.steps} steps in {summary.wall_seconds:.0f}s (final loss {summary.final_loss})")
    scores = evaluate_once(opts.suite, str(final), work / "eval", opts, log)
    wall = time.time() - started
    log(f"passed in {wall:.0f}s")
    return {"recipe": path, "kind": "student", "seconds": round(wall, 1), "steps": summary.steps, "eval": scores}
