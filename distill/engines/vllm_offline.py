"""vLLM's offline engine in-process (a single node with GPUs): all requests of a call batched by vLLM."""

from __future__ import annotations

import asyncio
import time

from distill.engines.base import Completion, Result, SamplingParams
from distill.errors import UsageError


class VLLMEngine:
    """Concurrent `complete` calls are gathered into one `LLM.chat` batch, as vLLM wants them."""

    name = "vllm"

    def __init__(self, cfg):
        try:
            from vllm import LLM
        except ImportError:
            raise UsageError("engine.kind vllm: vLLM is not installed here (pip install 'distill[gpu]')") from None
        from distill.hub import loading, require_cached

        self.model = cfg.model
        require_cached("engine.model", cfg.model)  # before vLLM starts its workers
        with loading("engine.model", cfg.model):
            self.llm = LLM(model=cfg.model, **cfg.vllm_args)
        self._pending: list[tuple[list[dict], SamplingParams, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None

    async def close(self) -> None:
        pass

    async def complete(self, messages: list[dict], params: SamplingParams) -> Result:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((messages, params, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(0.05)  # let the other in-flight requests join this batch
            batch, self._pending = self._pending, []
            try:
                results = await asyncio.to_thread(self._generate, [(m, p) for m, p, _ in batch])
            except Exception as exc:  # the whole batch failed: each request records the reason
                for _, _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, _, future), result in zip(batch, results):
                future.set_result(result)

    def _generate(self, batch: list[tuple[list[dict], SamplingParams]]) -> list[Result]:
        from vllm import SamplingParams as VLLMSampling

        start = time.perf_counter()
        sampling = [VLLMSampling(n=p.n, temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_tokens,
                                 seed=p.seed, logprobs=p.top_logprobs or None) for _, p in batch]
        outputs = self.llm.chat([m for m, _ in batch], sampling, use_tqdm=False)
        latency = time.perf_counter() - start
        results = []
        for output, (_, params) in zip(outputs, batch):
            completions = []
            for sample in output.outputs:
                ids = values = sampled = None
                if params.top_logprobs and sample.logprobs:
                    ranked = [sorted(step.items(), key=lambda kv: -kv[1].logprob)[: params.top_logprobs]
                              for step in sample.logprobs]
                    ids = [[token for token, _ in step] for step in ranked]
                    values = [[lp.logprob for _, lp in step] for step in ranked]
                    sampled = list(sample.token_ids)
                completions.append(Completion(sample.text, sample.finish_reason, len(sample.token_ids), sampled, ids, values))
            results.append(Result(completions, prompt_tokens=len(output.prompt_token_ids), endpoint="local",
                                  latency_s=latency))
        return results
