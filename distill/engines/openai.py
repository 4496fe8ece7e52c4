"""Any OpenAI-compatible server (vLLM, SGLang, a hosted API), one or several base URLs.

Requests go to the healthy endpoint with the fewest requests in flight, within a per-endpoint limit.
Timeouts, 5xx / 429, dropped connections and empty 200s are retried with exponential backoff and full
jitter. An endpoint that keeps failing is taken out for a cooldown, then health-checked and put back;
its requests move to the others, so nothing is lost while one endpoint is down.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass

import aiohttp

from distill.engines.base import Completion, EngineError, Result, SamplingParams
from distill.progress import say

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class RetryableError(Exception):
    def __init__(self, message: str, endpoint_fault: bool):
        super().__init__(message)
        self.endpoint_fault = endpoint_fault  # the endpoint itself is in trouble (not one bad request)


@dataclass
class Endpoint:
    base_url: str
    limit: int
    inflight: int = 0
    consecutive_failures: int = 0
    down_until: float = 0.0
    outages: int = 0
    served: int = 0

    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until


class OpenAIEngine:
    name = "openai"

    def __init__(self, cfg):
        self.cfg = cfg
        self.model = cfg.model
        self.endpoints = [Endpoint(url.rstrip("/"), cfg.per_endpoint_concurrency) for url in cfg.base_urls]
        api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session: aiohttp.ClientSession | None = None
        self._changed = asyncio.Condition()
        self._all_down_since: float | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(connector=connector, headers=self.headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def payload(self, messages: list[dict], params: SamplingParams) -> dict:
        body = {
            "model": self.model, "messages": messages, "n": params.n, "temperature": params.temperature,
            "top_p": params.top_p, "max_tokens": params.max_tokens,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.top_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = params.top_logprobs
            if self.cfg.vllm_extensions:
                body["return_tokens_as_token_ids"] = True
        if self.cfg.vllm_extensions:
            body["return_token_ids"] = True  # exact per-sample token counts
        return body

    async def _pick(self) -> Endpoint:
        """The up endpoint with the most free capacity; waits while all are full or down."""
        while True:
            up = [e for e in self.endpoints if e.up and e.inflight < e.limit]
            if any(e.up for e in self.endpoints):
                self._all_down_since = None
            if up:
                best = min(up, key=lambda e: (e.inflight / e.limit, e.served))
                best.inflight += 1
                return best
            down = [e for e in self.endpoints if not e.up]
            if down and all(not e.up for e in self.endpoints):
                if self._all_down_since is None:
                    self._all_down_since = time.monotonic()
                elif time.monotonic() - self._all_down_since > self.cfg.all_down_timeout_s:
                    raise EngineError(f"every endpoint has been down for over {self.cfg.all_down_timeout_s:.0f}s "
                                      "(engine.all_down_timeout_s); rerun the same command to resume")
                wake = min(e.down_until for e in down) - time.monotonic()
                await asyncio.sleep(max(0.05, wake))
                for e in down:
                    if e.up and not await self._healthy(e):
                        self._take_out(e, "health check failed")
                continue
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout=0.5)
                except asyncio.TimeoutError:
                    pass

    async def _release(self, endpoint: Endpoint) -> None:
        endpoint.inflight -= 1
        async with self._changed:
            self._changed.notify_all()

    async def _healthy(self, endpoint: Endpoint) -> bool:
        root = endpoint.base_url.removesuffix("/v1")
        try:
            async with self.session.get(f"{root}/health", timeout=aiohttp.ClientTimeout(total=5)) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return False

    def _take_out(self, endpoint: Endpoint, reason: str) -> None:
        endpoint.outages += 1
        cooldown = min(self.cfg.endpoint_cooldown_s * 2 ** min(endpoint.outages - 1, 4), 120)
        endpoint.down_until = time.monotonic() + cooldown
        endpoint.consecutive_failures = 0
        say(f"[openai] endpoint {endpoint.base_url} taken out for {cooldown:.0f}s: {reason}")

    async def _post(self, endpoint: Endpoint, body: dict, path: str = "/chat/completions") -> dict:
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
        try:
            async with self.session.post(f"{endpoint.base_url}{path}", json=body, timeout=timeout) as resp:
                text = await resp.text()
                if resp.status in RETRY_STATUS:
                    raise RetryableError(f"HTTP {resp.status}: {text[:200]}", endpoint_fault=resp.status >= 500)
                if resp.status != 200:
                    raise EngineError(f"HTTP {resp.status} from {endpoint.base_url}: {text[:300]}")
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    raise RetryableError(f"invalid JSON in a 200 response: {text[:200]}", endpoint_fault=False) from None
        except asyncio.TimeoutError:
            raise RetryableError(f"timeout after {self.cfg.timeout_s}s", endpoint_fault=True) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RetryableError(f"connection error: {type(exc).__name__}: {exc}", endpoint_fault=True) from None
        if not data.get("choices"):
            raise RetryableError("empty 200 response (no choices)", endpoint_fault=False)
        return data

    async def complete(self, messages: list[dict], params: SamplingParams) -> Result:
        def parse(data: dict) -> Result:
            result = parse_response(data, params.n)
            if all(not c.text for c in result.completions) and all(c.finish_reason is None for c in result.completions):
                raise RetryableError("empty 200 response (no text, no finish reason)", endpoint_fault=False)
            return result

        result, endpoint, latency, errors = await self._request(self.payload(messages, params), "/chat/completions", parse)
        result.endpoint, result.latency_s, result.errors = endpoint, latency, errors
        return result

    async def score(self, token_ids: list[int], start: int, top_k: int) -> tuple[list[list[int]], list[list[float]]]:
        """The model's top-k (ids, logprobs) at every position of `token_ids` from `start` on, predicting that
        position's token: vLLM's `prompt_logprobs` on /completions, nothing generated (one token, discarded)."""
        body = {"model": self.model, "prompt": token_ids, "max_tokens": 1, "temperature": 1.0, "prompt_logprobs": top_k}

        def parse(data: dict):
            positions = (data["choices"][0].get("prompt_logprobs") or [])
            if len(positions) != len(token_ids):
                raise EngineError(f"prompt_logprobs for {len(positions)} of {len(token_ids)} tokens "
                                  "(is the server vLLM, started with --max-logprobs >= top_k?)")
            return parse_prompt_logprobs(positions[start:], top_k)

        result, *_ = await self._request(body, "/completions", parse)
        return result

    async def _request(self, body: dict, path: str, parse):
        """(parsed answer, endpoint, latency, errors of earlier tries): one request with retries and failover."""
        errors: list[str] = []
        for attempt in range(self.cfg.max_retries + 1):
            endpoint = await self._pick()
            start = time.perf_counter()
            try:
                parsed = parse(await self._post(endpoint, body, path))
            except RetryableError as exc:
                errors.append(f"{endpoint.base_url}: {exc}")
                if exc.endpoint_fault:
                    endpoint.consecutive_failures += 1
                    if endpoint.consecutive_failures >= self.cfg.endpoint_failures_before_down:
                        self._take_out(endpoint, str(exc))
                await self._release(endpoint)
                if attempt < self.cfg.max_retries:
                    delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** attempt)
                    await asyncio.sleep(random.uniform(0, delay))  # full jitter
                continue
            except EngineError:
                await self._release(endpoint)
                raise
            endpoint.consecutive_failures = 0
            endpoint.served += 1
            await self._release(endpoint)
            return parsed, endpoint.base_url, time.perf_counter() - start, errors
        raise EngineError(f"gave up after {self.cfg.max_retries + 1} tries; last: {errors[-1] if errors else '?'}")


def merged_content(message: dict) -> str:
    """The message's text with its reasoning in front, in `<think>` tags: servers with a reasoning parser
    (vLLM --reasoning-parser, hosted R1 APIs) return the thinking apart from the content."""
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    return f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else content


def parse_response(data: dict, n: int) -> Result:
    """Chat-completions JSON -> Result, in choice order. Missing choices become failures upstream."""
    choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
    completions = []
    for choice in choices:
        content = merged_content(choice.get("message") or {})
        sampled, ids, logprobs = parse_logprobs(choice.get("logprobs"))
        token_ids = choice.get("token_ids")
        completions.append(Completion(
            text=content, finish_reason=choice.get("finish_reason"),
            completion_tokens=len(token_ids) if token_ids is not None else None,
            token_ids=sampled, top_logprob_ids=ids, top_logprobs=logprobs,
        ))
    usage = data.get("usage") or {}
    total = usage.get("completion_tokens")
    if total is not None and any(c.completion_tokens is None for c in completions):
        # The API reports one total for all n samples; share it by text length.
        chars = sum(len(c.text) for c in completions) or 1
        for c in completions:
            c.completion_tokens = round(total * len(c.text) / chars)
    return Result(completions=completions, prompt_tokens=usage.get("prompt_tokens"))


def parse_logprobs(logprobs: dict | None) -> tuple[list[int] | None, list[list[int]] | None, list[list[float]] | None]:
    """(sampled token ids, top-k ids per token, their logprobs) from a chat choice's `logprobs`."""
    if not logprobs or not logprobs.get("content"):
        return None, None, None
    sampled, ids, values = [], [], []
    for token in logprobs["content"]:
        top = token.get("top_logprobs") or []
        sampled.append(token_id(token.get("token", "")))
        ids.append([token_id(t["token"]) for t in top])
        values.append([float(t["logprob"]) for t in top])
    return sampled, ids, values


def parse_prompt_logprobs(positions: list[dict | None], top_k: int) -> tuple[list[list[int]], list[list[float]]]:
    """vLLM's prompt_logprobs ({token id: {logprob, rank}} per position, the actual token added when outside the
    top k) -> the top-k ids and logprobs per position, by rank."""
    ids, values = [], []
    for position in positions:
        ranked = sorted((position or {}).items(), key=lambda item: item[1].get("rank") or 0)
        ranked = [(int(token), entry) for token, entry in ranked if (entry.get("rank") or top_k + 1) <= top_k][:top_k]
        ids.append([token for token, _ in ranked])
        values.append([float(entry["logprob"]) for _, entry in ranked])
    return ids, values


def token_id(token: str) -> int:
    """vLLM's `return_tokens_as_token_ids` names tokens `token_id:N`; other servers give text (-1)."""
    return int(token.split(":", 1)[1]) if token.startswith("token_id:") else -1
