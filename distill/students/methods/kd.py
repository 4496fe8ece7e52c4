"""`method: kd`: SFT on the teacher's traces plus a divergence to the teacher's top-k logprobs stored with them
(the loss and trainer: kd_trainer.py). The teacher is not run: only its tokenizer is checked against the student's."""

from __future__ import annotations

from pathlib import Path

from distill.students.methods.base import DistillationMethod, refuse_packing, require_teacher
from distill.students.methods.sft import sft_args
from distill.traces import LOGPROB_COLUMNS


class KD(DistillationMethod):
    name = "kd"
    default_beta = 0.0  # forward KL: Hinton et al. 2015, the student matches the teacher's soft targets on its text
    data_columns = tuple(LOGPROB_COLUMNS)

    def check(self, cfg) -> None:
        require_teacher(self, cfg)
        if cfg.teacher.remote:
            raise ValueError("method kd: learns from the logprobs stored with the traces; teacher.serve / "
                             "teacher.base_urls are for on-policy")
        if cfg.training.use_liger_kernel:
            raise ValueError("method kd: training.use_liger_kernel must be false (kd computes its own loss from the hidden "
                             "states, which liger's fused loss does not return)")
        refuse_packing(self, cfg)

    def training_arguments(self, cfg, setup, on_gpu: bool):
        # rows come tokenized, with the teacher's logprobs beside them (training_dataset)
        return sft_args(cfg, setup, on_gpu, assistant_only_loss=False, dataset_kwargs={"skip_prepare_dataset": True},
                        remove_unused_columns=False)

    def load_teacher(self, cfg, student_tokenizer, setup):
        from distill.students import logit_teacher  # deferred: transformers

        return logit_teacher.resolve(cfg, student_tokenizer, setup.eos_token or student_tokenizer.eos_token, live=False)

    def training_dataset(self, cfg, setup, rows, tokenizer, data_label: str):
        from distill.students.methods.kd_trainer import tokenize_kd  # deferred: trl

        chat_template = Path(setup.chat_template_path).read_text(encoding="utf-8") if setup.chat_template_path else None
        eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token if not setup.eos_token else setup.eos_token)
        return tokenize_kd(rows, tokenizer, chat_template, eos_id, cfg.training.max_length, data_label)

    def build_trainer(self, cfg, setup, dataset, teacher, common: dict):
        from distill.students.methods.kd_trainer import KDCollator, KDTrainer  # deferred: trl

        d = cfg.distillation
        return KDTrainer(train_dataset=dataset, data_collator=KDCollator(common["processing_class"].pad_token_id),
                         kd_weight=d.kd_weight, beta=d.beta, temperature=d.temperature, tail=d.tail, **common)

    def summary_fields(self, cfg, trainer) -> dict:
        return {"teacher": cfg.teacher.model or cfg.teacher.tokenizer}
