"""The TrainingArguments every training method shares; each method adds its own (students/methods/)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from distill.errors import UsageError
from distill.progress import say


def checkpointing_arg(config_class) -> str:
    """transformers 5.2x renamed gradient_checkpointing to activation_checkpointing; GPU images still ship older ones."""
    return "activation_checkpointing" if "activation_checkpointing" in {f.name for f in fields(config_class)} \
        else "gradient_checkpointing"


def trainer_args(config_class, cfg, on_gpu: bool, specific: dict):
    """`config_class` (a TRL config) for the StudentConfig `cfg`: the arguments every method shares, plus the method's
    own (`specific`) and `training.extra`."""
    t = cfg.training
    bf16 = t.bf16 and on_gpu
    if t.bf16 and not on_gpu:
        say("no GPU: training in float32 (bf16 needs a GPU)")
    known = dict(
        output_dir=str(Path(cfg.run_dir) / "checkpoints"),
        **specific,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        bf16=bf16,
        **{checkpointing_arg(config_class): t.gradient_checkpointing and on_gpu},
        use_liger_kernel=t.use_liger_kernel,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        data_seed=t.seed,
        dataloader_num_workers=t.dataloader_num_workers,
        report_to=t.report_to or "none",
        disable_tqdm=True,
        ddp_find_unused_parameters=False,  # dense students use every parameter; the search costs a graph walk
        use_cpu=not on_gpu,
    )
    try:
        return config_class(**{**known, **t.extra})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"training: invalid {cfg.method} settings: {str(exc).splitlines()[0]}") from None
