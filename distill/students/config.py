"""A student run, as written in students/<run>.yaml."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from distill.config import HubIdOrPath, Section


class ModelSection(Section):
    name_or_path: HubIdOrPath
    # Chat template and end-of-turn handling; `auto` reads the family from the model's config.
    family: Literal["auto", "qwen", "llama3", "custom"] = "auto"
    # A TRL-bundled template name (qwen3, qwen2_5, llama3, deepseek_r1_distill, ...), a .jinja file,
    # or null to keep the model's own template.
    chat_template: str | None = "family"
    eos_token: str | None = "family"
    pad_token: str | None = "family"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    attn_implementation: str | None = None  # e.g. flash_attention_2, sdpa; None lets transformers choose
    revision: str | None = None
    trust_remote_code: bool = False
    # Model config fields to change at load, e.g. {max_position_embeddings: 131072} for a long-context student.
    config_overrides: dict[str, Any] = Field(default_factory=dict)


class DataSection(Section):
    # A local dataset directory (what curation writes), a .jsonl/.parquet file, or a Hub dataset id.
    source: HubIdOrPath
    split: str = "train"
    subset: str | None = None
    messages_field: str = "messages"
    max_samples: int | None = Field(default=None, ge=1)
    shuffle_seed: int | None = 0


class TrainingSection(Section):
    max_length: int = Field(ge=16)  # stated explicitly in every recipe: TRL's default (1024) truncates traces
    packing: bool = False
    assistant_only_loss: bool = True
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = Field(default=1, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=1e-5, gt=0)
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = Field(default=0.03, ge=0)  # a fraction of all steps if < 1, else a step count
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: bool = True
    gradient_checkpointing: bool = True
    use_liger_kernel: bool = False
    logging_steps: int = Field(default=10, ge=1)
    save_steps: int = Field(default=500, ge=1)
    save_total_limit: int | None = 2
    seed: int = 42
    dataloader_num_workers: int = 0
    dataset_num_proc: int | None = None
    report_to: list[str] = Field(default_factory=list)
    # Any other SFTConfig / TrainingArguments field, passed through as is.
    extra: dict[str, Any] = Field(default_factory=dict)


class LoraSection(Section):
    enabled: bool = False
    r: int = Field(default=16, ge=1)
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"
    quantization: Literal["none", "4bit", "8bit"] = "none"  # 4bit = QLoRA (needs bitsandbytes and a GPU)
    merge: bool = True  # also write the adapter merged into a standalone model


class StudentConfig(Section):
    name: str
    run_dir: str | None = None  # default: runs/students/<name>
    model: ModelSection
    data: DataSection
    training: TrainingSection
    lora: LoraSection = Field(default_factory=LoraSection)

    @model_validator(mode="after")
    def _defaults(self) -> StudentConfig:
        if self.run_dir is None:
            self.run_dir = f"runs/students/{self.name}"
        if self.lora.quantization != "none" and not self.lora.enabled:
            raise ValueError("lora.quantization needs lora.enabled: true (QLoRA trains an adapter)")
        return self
