"""A student run, as written in students/<run>.yaml."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from distill.config import HubIdOrPath, Section
from distill.students.methods import DEFAULT_METHOD, method_names, training_method


class ModelSection(Section):
    name_or_path: HubIdOrPath
    # Chat template and end-of-turn handling (students/chat.py); `auto` reads the family from the model's tokenizer
    # and config. r1-distill-qwen / r1-distill-llama: DeepSeek's format, the base's special ids renamed to DeepSeek's.
    family: Literal["auto", "qwen", "llama3", "r1-distill-qwen", "r1-distill-llama", "custom"] = "auto"
    # A TRL-bundled template name (qwen3, qwen2_5, llama3, deepseek_r1_distill, ...), a .jinja file,
    # or null to keep the model's own template.
    chat_template: str | None = "family"
    eos_token: str | None = "family"
    pad_token: str | None = "family"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    # None or auto: students/attention.py picks the fastest correct kernel; or a name (flash_attention_2, sdpa, torch_varlen, ...)
    attn_implementation: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    # Model config fields to change at load, e.g. {max_position_embeddings: 131072} for a long-context student.
    config_overrides: dict[str, Any] = Field(default_factory=dict)


class SourceSection(Section):
    """One source of a mixture (`data.sources`): a dataset as `data.source` takes it, and how much of the mixture it
    makes. `weight` is a relative share of the weighted rows; `samples` an exact row count (up- or down-sampled)."""

    source: HubIdOrPath
    weight: float | None = Field(default=None, ge=0)
    samples: int | None = Field(default=None, ge=1)
    split: str = "train"
    subset: str | None = None
    messages_field: str = "messages"
    name: str | None = None  # in summaries and the mixture's `source` column; default: source (+ subset, split)

    @model_validator(mode="after")
    def _one_amount(self) -> SourceSection:
        if self.weight is not None and self.samples is not None:
            raise ValueError("weight and samples are both given: keep one (weight: a share of the mixture; "
                             "samples: an exact row count)")
        if self.weight is None and self.samples is None:
            raise ValueError("give weight (a share of the mixture) or samples (an exact row count)")
        if self.name is None:
            self.name = self.source + (f"/{self.subset}" if self.subset else "") + (f":{self.split}" if self.split != "train" else "")
        return self


class DataSection(Section):
    # One dataset: a local dataset directory (what curation or `distill mix` writes), a .jsonl/.parquet file, or a
    # Hub dataset id. Or `sources`, a weighted mixture of several (students/mixture.py says how it is drawn).
    source: HubIdOrPath | None = None
    sources: list[SourceSection] | None = None
    # Mixtures: rows in all; default the most the weights allow without repeating a row of a weighted source.
    total_samples: int | None = Field(default=None, ge=1)
    split: str = "train"
    subset: str | None = None
    messages_field: str = "messages"
    max_samples: int | None = Field(default=None, ge=1)
    shuffle_seed: int | None = 0  # also seeds a mixture's sampling (0 when null; then the rows stay in source order)

    @field_validator("sources")
    @classmethod
    def _sources(cls, sources: list[SourceSection] | None, info: ValidationInfo) -> list[SourceSection] | None:
        if sources is None:
            return None
        if info.data.get("source") is not None:
            raise ValueError("data.source is set too: keep one (on the command line, data.sources=null data.source=PATH "
                             "trains on one dataset)")
        if not sources:
            raise ValueError("an empty list: name at least one source")
        weights = [s.weight for s in sources if s.weight is not None]
        if weights and not any(w > 0 for w in weights):
            raise ValueError(f"the weights are all zero ({', '.join(f'{w:g}' for w in weights)}): "
                             "at least one must be above 0")
        seen: dict[str, int] = {}
        for index, s in enumerate(sources):
            if s.name in seen:
                raise ValueError(f"sources {seen[s.name]} and {index} are both named {s.name!r}: give each its own name")
            seen[s.name] = index
        return sources

    @model_validator(mode="after")
    def _one_of(self) -> DataSection:
        if self.source is None and self.sources is None:
            raise ValueError("give data.source (one dataset) or data.sources (a mixture of several)")
        if self.sources is None and self.total_samples is not None:
            raise ValueError("data.total_samples sizes a mixture (data.sources); for one source use data.max_samples")
        if self.sources is not None:
            fixed = sum(s.samples for s in self.sources if s.samples is not None)
            weighted = any(s.weight is not None for s in self.sources)
            if self.total_samples is not None and (fixed > self.total_samples or (fixed == self.total_samples and weighted)
                                                   or (fixed < self.total_samples and not weighted)):
                raise ValueError(f"data.total_samples: {self.total_samples} rows, but the sources' samples add up to {fixed}"
                                 + (" and weighted sources need room beside them" if weighted else
                                    " and no weighted source takes the rest"))
        return self


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


class TeacherSection(Section):
    """The teacher a `kd` or `on-policy` run learns from: a local model, or a server (for teachers too big to sit beside
    the student). Logit distillation compares token ids, so the teacher must share the student's tokenizer."""

    # Local directory or Hub id. on-policy: loaded beside the student unless a server is named; kd and servers:
    # the tokenizer checked against the student's.
    model: HubIdOrPath | None = None
    tokenizer: HubIdOrPath | None = None  # default: model
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    # A teacher behind an OpenAI-compatible vLLM server: a `distill serve` recipe (its base_url and served name),
    # or the base URLs of running servers. Requests use generation's endpoint failover and retries.
    serve: HubIdOrPath | None = None
    base_urls: list[str] = Field(default_factory=list)
    served_model_name: str | None = None  # default: the recipe's, else model
    # Logprobs per position the server returns: vLLM's default cap (--max-logprobs 20).
    top_k: int = Field(default=20, ge=1)
    engine: dict[str, Any] = Field(default_factory=dict)  # more engine settings (timeout_s, max_retries, ...)

    @property
    def remote(self) -> bool:
        return bool(self.serve or self.base_urls)


class DistillationSection(Section):
    """Knobs of the kd and on-policy losses. Each default names its source."""

    # 0 = forward KL(teacher || student), 1 = reverse KL(student || teacher), between = generalized JSD.
    # Default per method (its default_beta, students/methods/): kd 0 (Hinton et al. 2015: the student matches the
    # teacher's soft targets on the teacher's text); on-policy 1 (TRL DistillationConfig default; Thinking Machines,
    # "On-Policy Distillation", 2025, and Qwen3's on-policy stage use the reverse KL on the student's own samples).
    beta: float | None = Field(default=None, ge=0, le=1)
    # Softmax temperature of both distributions in the loss, and of on-policy sampling (TRL DistillationConfig: 1.0;
    # GKD, Agarwal et al. 2024, samples the student at temperature 1).
    temperature: float = Field(default=1.0, gt=0)
    # kd: loss = (1 - kd_weight) * NLL + kd_weight * divergence (Hinton et al. 2015 average the hard- and
    # soft-target losses; 0.5 weighs them equally).
    kd_weight: float = Field(default=0.5, ge=0, le=1)
    # Mass outside the teacher's top-k kept as one tail bucket (TRL ServerDistillationConfig.loss_add_tail default),
    # else the k tokens are renormalised.
    tail: bool = True
    # on-policy: tokens the student samples per completion (TRL DistillationConfig default: 512).
    max_completion_length: int = Field(default=512, ge=1)
    # on-policy: share of batches on the student's own samples; the rest train on the teacher's traces from
    # data.source, scored by the teacher all the same (GKD's lambda; 1.0 is TRL DistillationTrainer's pure on-policy).
    lmbda: float = Field(default=1.0, ge=0, le=1)


class StudentConfig(Section):
    name: str
    run_dir: str | None = None  # default: runs/students/<name>
    # sft: supervised fine-tuning on the teacher's text; kd: plus a KL term to the teacher's stored top-k logprobs;
    # on-policy: the student samples, the teacher scores every sampled token. Any method registered in
    # students/methods/, which also checks the settings below that depend on it.
    method: str = DEFAULT_METHOD
    model: ModelSection
    data: DataSection
    training: TrainingSection
    lora: LoraSection = Field(default_factory=LoraSection)
    teacher: TeacherSection = Field(default_factory=TeacherSection)
    distillation: DistillationSection = Field(default_factory=DistillationSection)

    @field_validator("method", mode="before")
    @classmethod
    def _registered(cls, name: Any) -> Any:
        names = method_names()
        if name not in names:  # worded as pydantic words a Literal's error, which this field was
            quoted = [repr(n) for n in names]
            expected = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return name

    @model_validator(mode="after")
    def _defaults(self) -> StudentConfig:
        if self.run_dir is None:
            self.run_dir = f"runs/students/{self.name}"
        if self.lora.quantization != "none" and not self.lora.enabled:
            raise ValueError("lora.quantization needs lora.enabled: true (QLoRA trains an adapter)")
        method = training_method(self.method)
        if self.distillation.beta is None:
            self.distillation.beta = method.default_beta
        method.check(self)
        return self
