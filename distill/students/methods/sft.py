"""`method: sft`: supervised fine-tuning on the teacher's text (the R1-Distill recipe), TRL's SFTTrainer."""

from __future__ import annotations

from distill.students.arguments import trainer_args
from distill.students.methods.base import Method


def sft_args(cfg, setup, on_gpu: bool, **overrides):
    """SFTConfig for the StudentConfig `cfg` and the student's chat setup; `overrides` replace SFT's own settings."""
    from trl import SFTConfig  # deferred: every student config loads the method registry, which stays free of trl

    t = cfg.training
    known = dict(
        max_length=t.max_length,
        packing=t.packing,
        assistant_only_loss=t.assistant_only_loss,
        chat_template_path=setup.chat_template_path,
        eos_token=setup.eos_token,
        dataset_num_proc=t.dataset_num_proc,
    )
    known.update(overrides)
    return trainer_args(SFTConfig, cfg, on_gpu, known)


class SFT(Method):
    name = "sft"

    def fingerprint(self, cfg) -> dict:
        return {}  # the method was not part of it before kd and on-policy: SFT runs of that time still resume

    def training_arguments(self, cfg, setup, on_gpu: bool):
        return sft_args(cfg, setup, on_gpu)

    def build_trainer(self, cfg, setup, dataset, teacher, common: dict):
        from trl import SFTTrainer  # deferred: trl

        return SFTTrainer(train_dataset=dataset, **common)
