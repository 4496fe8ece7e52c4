"""transformers `generate`, for CPUs and tiny models: one request at a time, n samples per request."""

from __future__ import annotations

import asyncio
import time

import torch

from distill.engines.base import Completion, Result, SamplingParams


class HFEngine:
    name = "hf"

    def __init__(self, cfg):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from distill.hub import loading

        self.model = cfg.model
        with loading("engine.model", cfg.model):  # offline and not in the cache: one line, not a traceback
            self.tokenizer = AutoTokenizer.from_pretrained(cfg.model)
            self.lm = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32).eval()
        eos = self.lm.generation_config.eos_token_id
        self.eos_ids = set([eos] if isinstance(eos, int) else (eos or []))
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        pass

    async def complete(self, messages: list[dict], params: SamplingParams) -> Result:
        async with self._lock:  # one generate at a time: the CPU is the limit
            return await asyncio.to_thread(self._generate, messages, params)

    @torch.inference_mode()
    def _generate(self, messages: list[dict], params: SamplingParams) -> Result:
        start = time.perf_counter()
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        generator_seed = params.seed if params.seed is not None else torch.seed()
        torch.manual_seed(generator_seed)
        out = self.lm.generate(
            **enc, do_sample=params.temperature > 0, temperature=params.temperature or None,
            top_p=params.top_p if params.temperature > 0 else None, max_new_tokens=params.max_tokens,
            num_return_sequences=params.n, pad_token_id=self.tokenizer.pad_token_id,
            output_logits=bool(params.top_logprobs), return_dict_in_generate=True,
        )
        new = out.sequences[:, enc["input_ids"].shape[1]:]
        completions = []
        for row_index, row in enumerate(new):
            tokens = row.tolist()
            stop = next((i for i, t in enumerate(tokens) if t in self.eos_ids), None)
            kept = tokens if stop is None else tokens[:stop]
            ids = values = sampled = None
            if params.top_logprobs:  # the model's own distribution (raw logits), not the sampling-processed one
                sampled = tokens[: len(kept) + (stop is not None)]
                steps = [torch.log_softmax(logits[row_index].float(), -1).topk(params.top_logprobs)
                         for logits in out.logits[: len(sampled)]]
                ids = [s.indices.tolist() for s in steps]
                values = [s.values.tolist() for s in steps]
            completions.append(Completion(
                text=self.tokenizer.decode(kept, skip_special_tokens=True),
                finish_reason="stop" if stop is not None else "length",
                completion_tokens=len(kept) + (stop is not None),
                token_ids=sampled, top_logprob_ids=ids, top_logprobs=values,
            ))
        return Result(completions, prompt_tokens=int(enc["input_ids"].shape[1]), endpoint="local",
                      latency_s=time.perf_counter() - start)
