"""The trainer of `method: on-policy` (on_policy.py): the student samples completions, the teacher scores every
sampled token, and the loss is the generalized JSD between them (TRL's DistillationTrainer), per completion token.

What TRL lacks and this adds:
- a teacher behind an OpenAI-compatible vLLM server reached through distill's own engine (endpoint failover,
  retries, health checks; no vLLM install in the training environment), scored on its top-k logprobs with the
  same sparse loss as `kd`, for any beta;
- GKD's mix of on- and off-policy batches (`lmbda`): a batch that is not sampled trains on the teacher's own
  trace for its prompt, scored by the teacher all the same;
- a count of the teacher tokens spent (scored), for the report's cost column.
"""

from __future__ import annotations

import random
import warnings

import torch
from datasets import Dataset
from trl import DistillationTrainer

from distill.errors import UsageError
from distill.students.logit_teacher import ServerScorer
from distill.students.losses import NO_TOKEN, chunked_losses
from distill.students.methods.kd_trainer import prompt_of
from distill.traces import flatten_top_k

# TRL's DistillationTrainer asks the model for a property transformers has renamed; nothing for users to do.
warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)


def prompts_dataset(dataset: Dataset, source: str) -> Dataset:
    """`messages` rows -> conversational `prompt` (up to the last assistant turn) and the teacher's `completion` text."""
    def split(row):
        prompt = prompt_of(row["messages"])
        if not prompt:
            raise UsageError(f"data.source: {source}: a conversation starts with the assistant's turn: no prompt to sample from")
        return {"prompt": prompt, "completion": row["messages"][len(prompt)]["content"]}

    return dataset.map(split, remove_columns=dataset.column_names, desc="Prompts for on-policy sampling")


class OnPolicyTrainer(DistillationTrainer):
    def __init__(self, *args, lmbda: float = 1.0, scorer: ServerScorer | None = None, tail: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.lmbda, self.scorer, self.tail = lmbda, scorer, tail
        self.teacher_tokens = 0  # completion tokens the teacher scored in this run (not counting a resumed part)
        self.off_policy_batches = 0
        self._completions: list[str | None] = []
        self._off_policy = False

    # --- GKD's lambda: some batches train on the teacher's own completions -------------------------------------
    def _generate_and_score_completions(self, inputs):
        rng = random.Random(f"{self.args.seed}-{self.state.global_step}-{self._step}")
        self._off_policy = self.model.training and rng.random() >= self.lmbda
        self._completions = [x.get("completion") for x in inputs]
        output = super()._generate_and_score_completions(inputs)
        if self.model.training:
            self.teacher_tokens += int(output["num_items_in_batch"].item())
            self.off_policy_batches += self._off_policy
        return output

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, has_tool_images=False):
        if not self._off_policy:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, has_tool_images)
        if any(c is None for c in self._completions):
            raise UsageError("distillation.lmbda < 1 needs the teacher's completions: data.source rows with an assistant turn")
        eos = self.eos_token_ids[0]
        limit = self.args.max_completion_length
        encoded = self.processing_class(text=self._completions, add_special_tokens=False)["input_ids"]
        return [(list(ids) + [eos])[:limit] for ids in encoded]

    # --- a teacher behind a server ------------------------------------------------------------------------------
    def _compute_loss(self, unwrapped_student, inputs, num_items_in_batch):
        if self.scorer is None:
            return super()._compute_loss(unwrapped_student, inputs, num_items_in_batch)
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        hidden = self._get_last_hidden_state(unwrapped_student, input_ids, attention_mask, completion_ids.size(1))

        sequences, starts = [], []
        for p_ids, p_mask, c_ids, c_mask in zip(prompt_ids.tolist(), prompt_mask.tolist(), completion_ids.tolist(),
                                                completion_mask.tolist()):
            prompt = [t for t, m in zip(p_ids, p_mask) if m]
            sequences.append(prompt + [t for t, m in zip(c_ids, c_mask) if m])
            starts.append(len(prompt))
        teacher_ids = torch.full((*completion_ids.shape, self.scorer.top_k), NO_TOKEN, dtype=torch.long)
        teacher_logprobs = torch.zeros((*completion_ids.shape, self.scorer.top_k))
        for row, (ids, values) in enumerate(self.scorer.score(sequences, starts)):
            flat_ids, flat_values = flatten_top_k(ids, values)  # the trace store's padding: id -1, logprob -inf
            width = len(flat_ids) // max(len(ids), 1)
            teacher_ids[row, :len(ids), :width] = torch.tensor(flat_ids).view(len(ids), width)
            teacher_logprobs[row, :len(ids), :width] = torch.from_numpy(flat_values.astype("float32")).view(len(ids), width)

        head = unwrapped_student.get_output_embeddings()
        valid = completion_mask.bool()
        device = head.weight.device
        _, div = chunked_losses(hidden[valid].to(device), head.weight, head.bias, completion_ids[valid].to(device),
                                teacher_ids.to(device)[valid], teacher_logprobs.to(device)[valid],
                                beta=self.beta, temperature=self.temperature, tail=self.tail)
        count = valid.sum()
        denominator = num_items_in_batch if num_items_in_batch is not None else count.clamp(min=1)
        return div / denominator, torch.zeros((), device=device), count
