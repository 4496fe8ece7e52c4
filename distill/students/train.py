"""`distill train students/<run>.yaml`: a student trained with TRL, full or LoRA, resumable.

The method (students/methods/: `sft`, `kd`, `on-policy` or any other registered) prepares the rows, loads the teacher
and builds the trainer. Run directory, resume, manifest, progress and summary are the same for all.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PrinterCallback

from distill import hub
from distill.errors import UsageError
from distill.io import read_jsonl, replace_dir, staging_dir_for
from distill.progress import fmt_count, fmt_duration, say
from distill.runs import Run, is_main_process
from distill.students import attention, chat, specials
from distill.students.callbacks import ProgressCallback
from distill.students.checkpoints import check_disk_for_checkpoints, last_complete_checkpoint, write_failures_explained
from distill.students.config import StudentConfig
from distill.students.data import TrainingRows, content_digest
from distill.students.dtypes import DTYPES
from distill.students.methods import training_method
from distill.students.summary import TrainSummary
from distill.students.training_rows import row_tokens, source_usage, training_rows


def _load_model_config(cfg: StudentConfig):
    try:
        return AutoConfig.from_pretrained(
            cfg.model.name_or_path, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
        )
    except Exception as exc:
        raise _load_failure(cfg, "", exc) from None


def _load_failure(cfg: StudentConfig, part: str, exc: Exception) -> UsageError:
    """One line for the student's model (or `part` of it) that would not load: the Hub's reason where it is the Hub."""
    name = cfg.model.name_or_path
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return hub.load_error("model.name_or_path", name, exc) or UsageError(f"model.name_or_path: cannot load {part}{name!r}: {reason}")


# Settings that need a package the CPU install leaves out: (setting, value) -> (module, pip name).
OPTIONAL_PACKAGES = {
    ("training.use_liger_kernel", True): ("liger_kernel", "liger-kernel"),
    ("model.attn_implementation", "flash_attention_2"): ("flash_attn", "flash-attn --no-build-isolation"),
    ("model.attn_implementation", "flash_attention_3"): ("flash_attn_interface", "flash-attn-3 (built from source)"),
}


def check_optional_packages(cfg: StudentConfig) -> None:
    """A setting whose package is missing is one line at start, not an ImportError at the first step."""
    import importlib.util

    values = {"training.use_liger_kernel": cfg.training.use_liger_kernel,
              "model.attn_implementation": cfg.model.attn_implementation}
    for (key, value), (module, pip_name) in OPTIONAL_PACKAGES.items():
        if values[key] == value and importlib.util.find_spec(module) is None:
            raise UsageError(f"{key}: {value} needs {module}, which is not installed: pip install {pip_name} "
                             f"(GPU installs: README), or set {key} to another value")


def _quantization(cfg: StudentConfig):
    if cfg.lora.quantization == "none":
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UsageError("lora.quantization: QLoRA needs bitsandbytes and a CUDA GPU (pip install bitsandbytes)") from None
    from transformers import BitsAndBytesConfig

    if cfg.lora.quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def _peft_config(cfg: StudentConfig):
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM",
    )


# Settings that may change between a crash and the resume: they do not change what is trained.
RESUME_SAFE = {"logging_steps", "save_steps", "save_total_limit", "report_to", "dataloader_num_workers", "dataset_num_proc"}


def fingerprint(cfg: StudentConfig, data_content: str) -> dict:
    """What may not change when a run resumes from its checkpoints: everything that shapes training,
    the training rows themselves included (`data_content`, from `content_digest`)."""
    training = {k: v for k, v in cfg.training.model_dump(mode="json").items() if k not in RESUME_SAFE}
    shape = {
        "model": cfg.model.model_dump(mode="json"),
        # keys a single source leaves unset stay out: runs trained before mixtures existed still resume
        "data": cfg.data.model_dump(mode="json", exclude={"sources", "total_samples"} if cfg.data.sources is None else None),
        "data_content": data_content,
        "training": training,
        "lora": cfg.lora.model_dump(mode="json"),
    }
    shape.update(training_method(cfg.method).fingerprint(cfg))
    return shape


def student_tokenizer(cfg: StudentConfig, model_type: str | None):
    """The student's tokenizer as it trains (DeepSeek's special names for the r1-distill families) and its chat setup."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model.name_or_path, revision=cfg.model.revision,
                                                  trust_remote_code=cfg.model.trust_remote_code)
    except Exception as exc:
        raise _load_failure(cfg, "the tokenizer of ", exc) from None
    setup = chat.resolve(cfg.model.family, model_type, cfg.model.chat_template, cfg.model.eos_token, cfg.model.pad_token,
                         vocab=tokenizer.get_vocab())
    if setup.family in specials.RENAMES:
        tokenizer = specials.as_r1_distill(tokenizer, setup.family, cfg.model.name_or_path)
    for key, token in (("eos_token", setup.eos_token), ("pad_token", setup.pad_token)):
        if token and token not in tokenizer.get_vocab():
            raise UsageError(f"model.{key}: {token!r} is not in the tokenizer of {cfg.model.name_or_path}")
    if setup.pad_token:
        tokenizer.pad_token = setup.pad_token  # TRL mirrors it onto the model config
    return tokenizer, setup


@dataclass
class Prepared:
    trainer: object | None  # None: the run directory holds this run, finished
    run: Run
    dataset: object
    checkpoint: Path | None
    rows: TrainingRows | None = None  # the dataset's rows and the source of each (summary: rows and tokens per source)
    chat_template: str | None = None  # the template the rows are rendered with (a .jinja path), for counting tokens


def prepare(cfg: StudentConfig) -> Prepared:
    """Validate everything that can fail fast, then build this run's trainer."""
    run_dir = Path(cfg.run_dir)
    method = training_method(cfg.method)
    on_gpu = torch.cuda.is_available()
    check_optional_packages(cfg)
    model_config = _load_model_config(cfg)
    tokenizer, setup = student_tokenizer(cfg, getattr(model_config, "model_type", None))
    rows = training_rows(cfg.data, extra_columns=method.data_columns)
    dataset = rows.dataset
    data_label = cfg.data.source or ", ".join(s["source"] for s in rows.sources)  # for errors about the rows
    if is_main_process():
        say(f"[train {cfg.name}] data: {rows.describe()}")
    args = method.training_arguments(cfg, setup, on_gpu)
    run = Run(run_dir, "train", cfg, fingerprint(cfg, content_digest(dataset)))
    if run.completed() and (run_dir / TrainSummary.FILE).is_file():
        return Prepared(None, run, dataset, None, rows)  # trained already: a rerun changes nothing
    teacher = method.load_teacher(cfg, tokenizer, setup)
    run.start()

    dtype = DTYPES[cfg.model.dtype] if on_gpu else torch.float32
    attn = attention.resolve(cfg.model.attn_implementation, cfg.training.packing, on_gpu, half=dtype != torch.float32)
    say(attn.line)
    with hub.loading("model.name_or_path", cfg.model.name_or_path):  # its config may be cached and its weights not
        model = AutoModelForCausalLM.from_pretrained(
            cfg.model.name_or_path, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code,
            dtype=dtype, attn_implementation=attn.implementation,
            quantization_config=_quantization(cfg), **cfg.model.config_overrides,
        )
    common = dict(model=model, args=args, processing_class=tokenizer, peft_config=_peft_config(cfg),
                  callbacks=[ProgressCallback(run_dir / "metrics.jsonl", cfg.name)])
    train_dataset = method.training_dataset(cfg, setup, dataset, tokenizer, data_label)
    trainer = method.build_trainer(cfg, setup, train_dataset, teacher, common)
    trainer.remove_callback(PrinterCallback)  # our ProgressCallback prints instead of raw log dicts
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not trainer.is_fsdp_enabled:
        # accelerate (1.15) enables FSDP only for GPU-type runs; on CPU processes it drops the config without a word
        raise UsageError("accelerate config: FSDP was asked for, but accelerate runs these processes unsharded "
                         f"({trainer.accelerator.distributed_type}): FSDP needs GPUs; use configs/accelerate/ddp.yaml here")
    if trainer.accelerator.is_main_process:  # a full disk is one line now, not a torch.save error at the first checkpoint
        check_disk_for_checkpoints(args.output_dir, trainer.model, args.save_steps, args.max_steps, args.save_total_limit,
                                   fp32_states=trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled)
    return Prepared(trainer, run, dataset, last_complete_checkpoint(args.output_dir), rows, setup.chat_template_path)


def train(cfg: StudentConfig, prepared: Prepared | None = None) -> Path:
    """Train one student; returns the directory of the final (merged) model. `prepared`: prepare(cfg)'s result, where
    the caller looked at the trainer first (distill preflight)."""
    started = time.time()
    method = training_method(cfg.method)
    prepared = prepared or prepare(cfg)
    trainer, run_dir = prepared.trainer, Path(cfg.run_dir)
    if trainer is None:
        done = TrainSummary.read(run_dir)
        say(f"[train {cfg.name}] already trained in {run_dir}: {done.steps} steps -> {done.model} "
            f"(delete {run_dir} to train again)")
        return Path(done.model)
    if prepared.checkpoint:
        say(f"[train {cfg.name}] resuming from {prepared.checkpoint}")
    with write_failures_explained(run_dir / "checkpoints"):
        result = trainer.train(resume_from_checkpoint=str(prepared.checkpoint) if prepared.checkpoint else None)

    final = save_final(trainer, cfg, run_dir)
    wall = time.time() - started
    metrics = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []
    logged_tokens = [r["num_tokens"] for r in metrics if "num_tokens" in r]
    tokens = trainer.state.num_input_tokens_seen or (int(logged_tokens[-1]) if logged_tokens else None)
    summary = TrainSummary(
        name=cfg.name, model=str(final), steps=trainer.state.global_step, train_loss=result.training_loss,
        final_loss=round(metrics[-1]["loss"], 4) if metrics else None, tokens=tokens, examples=len(prepared.dataset),
        wall_seconds=round(wall, 1), resumed_from=str(prepared.checkpoint) if prepared.checkpoint else None,
        parameters=sum(p.numel() for p in trainer.model.parameters()), lora=cfg.lora.enabled,
        world_size=trainer.args.world_size, method=cfg.method, **method.summary_fields(cfg, trainer))
    method.close(trainer)
    if not trainer.accelerator.is_main_process:
        return final
    tokens_per_row = row_tokens(prepared.dataset, trainer.processing_class, _template_text(prepared.chat_template),
                                cfg.training.max_length, cfg.training.dataset_num_proc)
    summary.sources = source_usage(prepared.rows, tokens_per_row)
    summary.write(run_dir)
    prepared.run.finish(steps=summary.steps, tokens=tokens, examples=len(prepared.dataset))
    say(f"[train {cfg.name}] done: {summary.steps} steps, {fmt_count(tokens or 0)} tokens, "
        f"final loss {summary.final_loss}, {fmt_duration(wall)} -> {final}")
    return final


def _template_text(path: str | None) -> str | None:
    return Path(path).read_text(encoding="utf-8") if path else None


def save_final(trainer, cfg: StudentConfig, run_dir: Path) -> Path:
    """Write the final model atomically: <run>/model (LoRA: the adapter to <run>/adapter, merged to <run>/model)."""
    accelerator = trainer.accelerator
    target = run_dir / ("adapter" if cfg.lora.enabled else "model")
    staging = target.with_name(f".{target.name}.partial")
    if accelerator.is_main_process:
        staging_dir_for(target)
    accelerator.wait_for_everyone()
    trainer.save_model(str(staging))  # every process calls it: gathers sharded (ZeRO-3 / FSDP) weights
    if accelerator.is_main_process:
        replace_dir(staging, target)
        if cfg.lora.enabled and cfg.lora.merge:
            merge_adapter(cfg, target, run_dir / "model")
    accelerator.wait_for_everyone()
    return run_dir / "model" if not cfg.lora.enabled or cfg.lora.merge else target


def merge_adapter(cfg: StudentConfig, adapter_dir: Path, out: Path) -> Path:
    """Merge a LoRA adapter into a fresh (unquantised) copy of its base: a standalone model."""
    from peft import PeftModel

    dtype = DTYPES[cfg.model.dtype] if torch.cuda.is_available() else torch.float32
    with hub.loading("model.name_or_path", cfg.model.name_or_path):
        base = AutoModelForCausalLM.from_pretrained(
            cfg.model.name_or_path, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code, dtype=dtype,
            **cfg.model.config_overrides,
        )
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    # The trained tokenizer's EOS (end of turn) must stop generation of the merged model too.
    eos = merged.generation_config.eos_token_id
    eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    if tokenizer.eos_token_id not in eos:
        merged.generation_config.eos_token_id = [tokenizer.eos_token_id, *eos]
    merged.config.eos_token_id = tokenizer.eos_token_id
    merged.generation_config.pad_token_id = merged.config.pad_token_id = tokenizer.pad_token_id
    staging = staging_dir_for(out)
    merged.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    return replace_dir(staging, out)
