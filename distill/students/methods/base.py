"""What a training method is: the settings it accepts, the rows and trainer it builds, what it needs of the teacher, and
what it adds to the run's summary. A method pairs TRL's config class with its trainer, as TRL does (SFTConfig and
SFTTrainer); `distill train` runs every method the same way around it (students/train.py).

Methods take the run's StudentConfig (`cfg`) as it is; they do not import it, because the config asks them which
methods exist and what each refuses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Method(ABC):
    """One value of `method:` in a student recipe. Subclass, set `name`, and register an instance
    (students/methods/__init__.py)."""

    name: str
    # What readers of a run ask of its method (the plan, the report, the demo):
    needs_teacher = False  # the recipe names a teacher (teacher.model, its tokenizer, or a server)
    learns_from_teacher_text = True  # trains on the teacher's traces: the report counts their generation as its cost
    teacher_scores_samples = False  # the teacher scores tokens the student samples (summary: teacher_tokens_scored)
    next_token_loss = True  # the trainer's own next-token loss, which liger's fused kernel computes: the plan suggests liger
    materialises_logits = False  # the plan counts the full logits in memory (TRL's trainer is not known to avoid them)
    default_beta = 1.0  # distillation.beta when the recipe leaves it out
    data_columns: tuple[str, ...] = ()  # columns loaded beside `messages`

    def check(self, cfg) -> None:
        """Raise ValueError (the config's one-line error) for settings this method cannot train with."""
        return None  # every setting is fine by default

    def fingerprint(self, cfg) -> dict:
        """What of this method may not change when a run resumes, beside the settings every method shares."""
        return {"method": self.name}

    @abstractmethod
    def training_arguments(self, cfg, setup, on_gpu: bool):
        """The trainer's TrainingArguments (a TRL config: students/arguments.py has the shared part); `setup` is the
        student's chat.ChatSetup."""

    def load_teacher(self, cfg, student_tokenizer, setup):
        """The teacher this method learns from (a logit_teacher.Teacher), or None; `setup`: the student's ChatSetup."""
        return None

    def training_dataset(self, cfg, setup, rows, tokenizer, data_label: str):
        """The rows as this method's trainer takes them (`rows`: `messages` and `data_columns`; `data_label` names
        them in errors)."""
        return rows

    @abstractmethod
    def build_trainer(self, cfg, setup, dataset, teacher, common: dict):
        """The trainer, from `training_dataset`'s rows, the teacher and `common` (model, args, processing_class,
        peft_config, callbacks: what every trainer takes)."""

    def summary_fields(self, cfg, trainer) -> dict:
        """The TrainSummary fields this method fills beside the shared ones."""
        return {}

    def close(self, trainer) -> None:
        """Let go of what the trainer holds outside the process once training is over (a teacher server's client)."""
        return None  # most trainers hold nothing outside the process


def require_teacher(method: Method, cfg) -> None:
    t = cfg.teacher
    if not (t.model or t.tokenizer or t.remote):
        raise ValueError(f"method {method.name}: teacher.model is required (a local teacher, or its tokenizer when the "
                         "teacher is a server or its logprobs are stored)")


def refuse_packing(method: Method, cfg) -> None:
    if cfg.training.packing:
        raise ValueError(f"method {method.name}: training.packing must be false (the teacher's logprobs are per trace)")


class DistillationMethod(Method):
    """A method that learns from the teacher's distribution, token by token: it needs the teacher (its tokenizer at
    least, which must be the student's), trains on unpacked traces, and resumes only with the same teacher and
    distillation settings."""

    needs_teacher = True
    next_token_loss = False

    def check(self, cfg) -> None:
        require_teacher(self, cfg)
        refuse_packing(self, cfg)

    def fingerprint(self, cfg) -> dict:
        # where the teacher is served may change between a crash and the resume; who it is may not
        return dict(method=self.name, distillation=cfg.distillation.model_dump(mode="json"),
                    teacher=cfg.teacher.model_dump(mode="json", include={"model", "tokenizer", "served_model_name", "top_k"}))
