"""`method: on-policy`: the student samples, the teacher (local, or behind a vLLM server) scores every sampled token,
and the loss is the generalized JSD between them (the trainer: on_policy_trainer.py, over TRL's DistillationTrainer)."""

from __future__ import annotations

from pathlib import Path

from distill.students.arguments import trainer_args
from distill.students.methods.base import DistillationMethod


class OnPolicy(DistillationMethod):
    name = "on-policy"
    learns_from_teacher_text = False  # the student's own samples (the teacher's traces only for GKD's off-policy share)
    teacher_scores_samples = True
    materialises_logits = True
    default_beta = 1.0  # reverse KL: TRL DistillationConfig's default; Thinking Machines 2025, Qwen3's on-policy stage

    def training_arguments(self, cfg, setup, on_gpu: bool):
        from trl import DistillationConfig  # deferred: trl

        d = cfg.distillation
        return trainer_args(DistillationConfig, cfg, on_gpu, dict(
            beta=d.beta, temperature=d.temperature, max_completion_length=d.max_completion_length))

    def load_teacher(self, cfg, student_tokenizer, setup):
        from distill.students import logit_teacher  # deferred: transformers

        return logit_teacher.resolve(cfg, student_tokenizer, setup.eos_token or student_tokenizer.eos_token, live=True)

    def training_dataset(self, cfg, setup, rows, tokenizer, data_label: str):
        from distill.students.methods.on_policy_trainer import prompts_dataset  # deferred: trl

        return prompts_dataset(rows, data_label)

    def build_trainer(self, cfg, setup, dataset, teacher, common: dict):
        from distill.students.methods.on_policy_trainer import OnPolicyTrainer  # deferred: trl

        tokenizer = common["processing_class"]
        if setup.chat_template_path:  # DistillationTrainer renders prompts with the tokenizer's own template
            tokenizer.chat_template = Path(setup.chat_template_path).read_text(encoding="utf-8")
        if setup.eos_token:
            tokenizer.eos_token = setup.eos_token  # sampling stops at the end of the turn
        tokenizer.padding_side = "left"
        d = cfg.distillation
        return OnPolicyTrainer(teacher_model=teacher.model, train_dataset=dataset, lmbda=d.lmbda, scorer=teacher.scorer,
                               tail=d.tail, **common)

    def summary_fields(self, cfg, trainer) -> dict:
        return {"teacher": cfg.teacher.served_model_name or cfg.teacher.model or cfg.teacher.serve,
                "teacher_tokens_scored": trainer.teacher_tokens, "off_policy_batches": trainer.off_policy_batches}

    def close(self, trainer) -> None:
        if trainer.scorer is not None:
            trainer.scorer.close()
