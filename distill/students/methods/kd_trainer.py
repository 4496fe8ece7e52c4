"""The trainer of `method: kd` (kd.py): SFT on the teacher's traces plus a divergence to the teacher's top-k logprobs
stored with them.

TRL trains on teacher logits computed live (GKD) or fetched per batch from a server; neither reads logprobs stored
at generation time, which cost nothing more to use once the traces exist. So the student is trained on the
teacher's exact sampled tokens (the logprobs are conditional on them, not on a re-tokenisation of the text),
after the student's own chat template renders the prompt.
"""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset
from trl import SFTTrainer

from distill.errors import UsageError
from distill.students.losses import NO_TOKEN, chunked_losses
from distill.traces import LOGPROB_COLUMNS, top_k_arrays

NO_LOGPROBS = ("carry no teacher logprobs: generate with sampling.top_logprobs=20 and curate with "
               "curate.keep_logprobs=true")


def prompt_of(messages: list[dict]) -> list[dict]:
    """The conversation up to its last assistant turn: what the student is asked."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last]


def tokenize_kd(dataset: Dataset, tokenizer, chat_template: str | None, eos_id: int, max_length: int, source: str) -> Dataset:
    """Rows of (messages + stored logprobs) -> input_ids, labels (-100 on the prompt), and per position the teacher's
    top-k ids and logprobs for the token at that position (NO_TOKEN rows where there are none: the prompt, an
    appended EOS)."""
    missing = [i for i, row in enumerate(dataset.select_columns(LOGPROB_COLUMNS)) if not row["token_ids"] or not row["logprob_ids"]]
    if missing:
        raise UsageError(f"data.source: {source}: {len(missing)} of {len(dataset)} rows (first: row {missing[0]}) {NO_LOGPROBS}")

    def encode(row):
        prompt_ids = tokenizer.apply_chat_template(prompt_of(row["messages"]), chat_template=chat_template,
                                                   add_generation_prompt=True, tokenize=True, return_dict=False)
        prompt_ids = list(prompt_ids["input_ids"] if isinstance(prompt_ids, dict) else prompt_ids)
        sampled, top_ids, top_logprobs = top_k_arrays(row["token_ids"], row["logprob_ids"], row["logprobs"])
        k = top_ids.shape[1]
        completion = sampled.tolist()
        if completion[-1] != eos_id:  # the teacher's own end of turn is another token, or was not returned
            completion.append(eos_id)
            top_ids = np.concatenate([top_ids, np.full((1, k), NO_TOKEN)])
            top_logprobs = np.concatenate([top_logprobs, np.zeros((1, k), np.float32)])
        input_ids = (prompt_ids + completion)[:max_length]
        labels = ([-100] * len(prompt_ids) + completion)[:max_length]
        ids = np.concatenate([np.full((len(prompt_ids), k), NO_TOKEN), top_ids])[:max_length]
        values = np.concatenate([np.zeros((len(prompt_ids), k), np.float32), top_logprobs])[:max_length]
        return {"input_ids": input_ids, "labels": labels, "teacher_ids": ids.tolist(), "teacher_logprobs": values.tolist()}

    encoded = dataset.map(encode, remove_columns=dataset.column_names, desc="Tokenizing for kd")
    return encoded.filter(lambda row: any(label != -100 for label in row["labels"]), desc="Dropping rows without completion")


class KDCollator:
    """Right-pads a batch of tokenized kd rows."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(r["input_ids"]) for r in rows)
        k = len(rows[0]["teacher_ids"][0])

        def padded(key, fill, shape_tail=()):
            out = torch.full((len(rows), length, *shape_tail), fill, dtype=torch.float32 if key == "teacher_logprobs" else torch.long)
            for i, r in enumerate(rows):
                out[i, :len(r[key])] = torch.tensor(r[key], dtype=out.dtype)
            return out

        input_ids = padded("input_ids", self.pad_id)
        attention_mask = torch.zeros_like(input_ids)
        for i, r in enumerate(rows):
            attention_mask[i, :len(r["input_ids"])] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": padded("labels", -100),
                "teacher_ids": padded("teacher_ids", NO_TOKEN, (k,)), "teacher_logprobs": padded("teacher_logprobs", 0.0, (k,))}


class KDTrainer(SFTTrainer):
    """SFTTrainer whose loss is (1 - kd_weight) * NLL + kd_weight * divergence to the stored top-k, per completion token."""

    def __init__(self, *args, kd_weight: float, beta: float, temperature: float, tail: bool, **kwargs):
        self.kd_weight, self.beta, self.temperature, self.tail = kd_weight, beta, temperature, tail
        super().__init__(*args, **kwargs)

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["input_ids", "labels", "teacher_ids", "teacher_logprobs"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        labels, teacher_ids, teacher_logprobs = inputs["labels"], inputs["teacher_ids"], inputs["teacher_logprobs"]
        # Through the (DDP / FSDP) wrapper, with the logits of one position only: the loss projects its own chunks.
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], logits_to_keep=1,
                        output_hidden_states=True, use_cache=False)
        hidden = outputs.hidden_states[-1][:, :-1]
        targets = labels[:, 1:]
        valid = targets != -100
        head = self.accelerator.unwrap_model(model).get_output_embeddings()
        nll, div = chunked_losses(hidden[valid], head.weight, head.bias, targets[valid], teacher_ids[:, 1:][valid],
                                  teacher_logprobs[:, 1:][valid], beta=self.beta, temperature=self.temperature, tail=self.tail)
        count = valid.sum()
        denominator = torch.as_tensor(num_items_in_batch if num_items_in_batch is not None else count).clamp(min=1)
        loss = ((1 - self.kd_weight) * nll + self.kd_weight * div) / denominator
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        gathered = self.accelerator.gather_for_metrics(torch.stack([nll.detach(), div.detach(), count.float()])).view(-1, 3).sum(0)
        tokens = gathered[2].clamp(min=1)
        self._metrics[mode]["nll"].append((gathered[0] / tokens).item())
        self._metrics[mode]["kd_divergence"].append((gathered[1] / tokens).item())
        if mode == "train":
            self._total_train_tokens += int(self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item())
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss
