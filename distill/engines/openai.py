"""Any OpenAI-compatible server (vLLM, SGLang, a hosted API), one or several base URLs.

Requests go to the healthy endpoint with the fewest requests in flight, within a per-endpoint limit.
Timeouts, 5xx / 429, dropped connections and empty 200s (zero bytes, no choices) are retried with
exponential backoff and full jitter; a 200 that does not fit the schema fails its samples with the
reason, at once. An endpoint that keeps failing is taken out for a cooldown (longer each time, shorter
again as it succeeds), then health-checked and put back; its requests move to the others, so nothing
is lost while one endpoint is down. While every endpoint is down they are health-checked every
`health_check_interval_s`, so a flaky lone endpoint is back within a second instead of idling the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import reprlib
import time
from dataclasses import dataclass

import aiohttp

from distill.engines.base import Completion, EngineError, Result, SamplingParams
from distill.progress import say

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
INT32_MAX = 2**31 - 1
# An endpoint's outage count (which sets its next cooldown, doubling each time) drops by one after this many
# successes: an endpoint that fails now and then is not punished with ever longer cooldowns.
OUTAGE_DECAY_SUCCESSES = 10


class RetryableError(Exception):
    def __init__(self, message: str, endpoint_fault: bool):
        super().__init__(message)
        self.endpoint_fault = endpoint_fault  # the endpoint itself is in trouble (not one bad request)


class Malformed(ValueError):
    """A 200 whose body does not fit the chat-completions schema."""


@dataclass
class Endpoint:
    base_url: str
    limit: int
    inflight: int = 0
    consecutive_failures: int = 0
    down: bool = False
    down_until: float = 0.0  # end of the cooldown
    next_check: float = 0.0  # next health check while every endpoint is down
    checking: bool = False
    outages: int = 0
    successes: int = 0  # since the outage count last dropped
    served: int = 0
    health_url: str | None = None  # the health-check URL that answered last time

    @property
    def up(self) -> bool:
        return not self.down


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
        self._checks: set[asyncio.Task] = set()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(connector=connector, headers=self.headers)
        return self._session

    async def close(self) -> None:
        for task in list(self._checks):
            task.cancel()
        if self._checks:
            await asyncio.gather(*self._checks, return_exceptions=True)
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
            self._schedule_checks()
            ready = [e for e in self.endpoints if e.up and e.inflight < e.limit]
            if ready:
                self._all_down_since = None
                best = min(ready, key=lambda e: (e.inflight / e.limit, e.served))
                best.inflight += 1
                return best
            if all(e.down for e in self.endpoints):
                if self._all_down_since is None:
                    self._all_down_since = time.monotonic()
                elif time.monotonic() - self._all_down_since > self.cfg.all_down_timeout_s:
                    raise EngineError(f"every endpoint has been down for over {self.cfg.all_down_timeout_s:.0f}s "
                                      "(engine.all_down_timeout_s); rerun the same command to resume")
            else:
                self._all_down_since = None
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout=min(0.5, self.cfg.health_check_interval_s))
                except asyncio.TimeoutError:
                    pass

    def _schedule_checks(self) -> None:
        """Health-check down endpoints: after their cooldown while others serve, and every
        `health_check_interval_s` while all are down (waiting out a cooldown then would only idle the run)."""
        now = time.monotonic()
        all_down = all(e.down for e in self.endpoints)
        for e in self.endpoints:
            if e.down and not e.checking and now >= (e.next_check if all_down else e.down_until):
                e.checking = True
                task = asyncio.get_running_loop().create_task(self._check(e))
                self._checks.add(task)
                task.add_done_callback(self._checks.discard)

    async def _check(self, endpoint: Endpoint) -> None:
        try:
            healthy = await self._healthy(endpoint)
        finally:
            endpoint.checking = False
        if healthy:
            endpoint.down = False
            endpoint.consecutive_failures = 0
            say(f"[openai] endpoint {endpoint.base_url} put back: health check passed")
        elif time.monotonic() >= endpoint.down_until:
            self._take_out(endpoint, "health check failed")
        else:
            endpoint.next_check = time.monotonic() + self.cfg.health_check_interval_s
        async with self._changed:
            self._changed.notify_all()

    async def _release(self, endpoint: Endpoint) -> None:
        endpoint.inflight -= 1
        async with self._changed:
            self._changed.notify_all()

    async def _healthy(self, endpoint: Endpoint) -> bool:
        """vLLM and SGLang answer `/health`; hosted APIs have none (404), and answer `/v1/models` instead."""
        root = endpoint.base_url.removesuffix("/v1")
        urls = [endpoint.health_url] if endpoint.health_url else [f"{root}/health", f"{endpoint.base_url}/models"]
        for url in urls:
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    if resp.status == 200:
                        endpoint.health_url = url
                        return True
                    if resp.status not in (404, 405):
                        return False
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                return False
        return False

    def _take_out(self, endpoint: Endpoint, reason: str) -> None:
        endpoint.outages += 1
        cooldown = min(self.cfg.endpoint_cooldown_s * 2 ** min(endpoint.outages - 1, 4), 120)
        now = time.monotonic()
        endpoint.down = True
        endpoint.down_until = now + cooldown
        endpoint.next_check = now + min(cooldown, self.cfg.health_check_interval_s)
        endpoint.consecutive_failures = 0
        endpoint.successes = 0
        say(f"[openai] endpoint {endpoint.base_url} taken out for {cooldown:.0f}s: {reason}")

    def _succeeded(self, endpoint: Endpoint) -> None:
        endpoint.consecutive_failures = 0
        endpoint.served += 1
        if endpoint.outages:
            endpoint.successes += 1
            if endpoint.successes >= OUTAGE_DECAY_SUCCESSES:
                endpoint.outages -= 1
                endpoint.successes = 0

    async def _post(self, endpoint: Endpoint, body: dict, path: str = "/chat/completions") -> dict:
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
        try:
            async with self.session.post(f"{endpoint.base_url}{path}", json=body, timeout=timeout) as resp:
                status, raw = resp.status, await resp.read()
        except asyncio.TimeoutError:
            raise RetryableError(f"timeout after {self.cfg.timeout_s}s", endpoint_fault=True) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RetryableError(f"connection error: {type(exc).__name__}: {exc}", endpoint_fault=True) from None
        text = raw[:300].decode("utf-8", "replace")
        if status in RETRY_STATUS:
            raise RetryableError(f"HTTP {status}: {text[:200]}", endpoint_fault=status >= 500)
        if status != 200:
            raise EngineError(f"HTTP {status} from {endpoint.base_url}: {text}")
        if not raw.strip():
            raise RetryableError("empty 200 response (zero-byte body)", endpoint_fault=False)
        try:
            data = json.loads(raw)
        except ValueError:
            raise RetryableError(f"invalid JSON in a 200 response: {text[:200]}", endpoint_fault=False) from None
        if not isinstance(data, dict):
            raise Malformed(f"the body is {describe(data)}, not an object")
        if not data.get("choices"):
            raise RetryableError("empty 200 response (no choices)", endpoint_fault=False)
        return data

    async def complete(self, messages: list[dict], params: SamplingParams) -> Result:
        def parse(data: dict) -> Result:
            result = parse_response(data)
            if all(not c.text and c.finish_reason is None and c.error is None for c in result.completions):
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
        """(parsed answer, endpoint, latency, errors of earlier tries): one request with retries and failover.

        An answer that does not fit (`parse` raising anything but RetryableError / EngineError) fails the
        request at once with the reason; the endpoint is released whatever happens.
        """
        errors: list[str] = []
        for attempt in range(self.cfg.max_retries + 1):
            endpoint = await self._pick()
            start = time.perf_counter()
            try:
                parsed = parse(await self._post(endpoint, body, path))
            except RetryableError as exc:
                failure = exc
            except EngineError:
                raise
            except (Malformed, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                raise EngineError(f"malformed 200 response from {endpoint.base_url}: {exc}") from None
            else:
                failure = None
            finally:
                await self._release(endpoint)
            if failure is None:
                self._succeeded(endpoint)
                return parsed, endpoint.base_url, time.perf_counter() - start, errors
            errors.append(f"{endpoint.base_url}: {failure}")
            if failure.endpoint_fault and endpoint.up:
                endpoint.consecutive_failures += 1
                if endpoint.consecutive_failures >= self.cfg.endpoint_failures_before_down:
                    self._take_out(endpoint, str(failure))
            if attempt < self.cfg.max_retries:
                delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** attempt)
                await asyncio.sleep(random.uniform(0, delay))  # full jitter
        raise EngineError(f"gave up after {self.cfg.max_retries + 1} tries; last: {errors[-1] if errors else '?'}")


def describe(value) -> str:
    """A value named for an error message: its JSON type and a short repr."""
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value))
    if kind is None:
        kind = "a number" if isinstance(value, (int, float)) else type(value).__name__
    return kind if value is None else f"{kind} {reprlib.repr(value)}"


def text_of(value, name: str) -> str | None:
    """A message field as text: a string, null, or OpenAI's list of parts [{"type": "text", "text": ...}] joined."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise Malformed(f"{name} holds {describe(part)}, not a text part")
            parts.append(part["text"])
        return "".join(parts)
    raise Malformed(f"{name} is {describe(value)}, not text")


def merged_content(message: dict) -> str:
    """The message's text with its reasoning in front, in `<think>` tags: servers with a reasoning parser
    (vLLM --reasoning-parser, hosted R1 APIs) return the thinking apart from the content."""
    content = text_of(message.get("content"), "message.content") or ""
    key = "reasoning_content" if message.get("reasoning_content") is not None else "reasoning"
    reasoning = text_of(message.get(key), f"message.{key}")
    return f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else content


def count(usage: dict, key: str) -> int | None:
    value = usage.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT32_MAX:
        raise Malformed(f"usage.{key} is {describe(value)}, not a token count")
    return value


def parse_choice(choice, position: int) -> tuple[int, Completion]:
    """(index, Completion) of one chat choice; Malformed when it does not fit."""
    if not isinstance(choice, dict):
        raise Malformed(f"{describe(choice)}, not an object")
    index = choice.get("index", position)
    if isinstance(index, bool) or not isinstance(index, int):
        raise Malformed(f"index is {describe(index)}, not an integer")
    message = choice.get("message")
    if not isinstance(message, dict):
        raise Malformed(f"message is {describe(message)}, not an object")
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise Malformed(f"finish_reason is {describe(finish)}, not text")
    text = merged_content(message)
    if message.get("content") is None and not text and finish is not None:
        raise Malformed("message.content is null")
    token_ids = choice.get("token_ids")
    if token_ids is not None and not (isinstance(token_ids, list) and all(type(t) is int for t in token_ids)):
        raise Malformed(f"token_ids is {describe(token_ids)}, not a list of integers")
    sampled, ids, logprobs = parse_logprobs(choice.get("logprobs"))
    return index, Completion(text=text, finish_reason=finish,
                             completion_tokens=len(token_ids) if token_ids is not None else None,
                             token_ids=sampled, top_logprob_ids=ids, top_logprobs=logprobs)


def parse_response(data: dict) -> Result:
    """Chat-completions JSON -> Result, in choice order. A malformed choice becomes that sample's failure
    (Completion.error) and leaves its siblings alone; malformed choices or usage as a whole raise Malformed.
    Missing choices become failures upstream."""
    choices = data["choices"]
    if not isinstance(choices, list):
        raise Malformed(f"choices is {describe(choices)}, not a list")
    usage = data.get("usage") or {}
    if not isinstance(usage, dict):
        raise Malformed(f"usage is {describe(usage)}, not an object")
    prompt_tokens, total = count(usage, "prompt_tokens"), count(usage, "completion_tokens")
    indexed = []
    for position, choice in enumerate(choices):
        try:
            indexed.append(parse_choice(choice, position))
        except (Malformed, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            indexed.append((position, Completion(text="", finish_reason=None, error=f"malformed choice {position}: {exc}")))
    completions = [c for _, c in sorted(indexed, key=lambda pair: pair[0])]
    good = [c for c in completions if c.error is None]
    if total is not None and any(c.completion_tokens is None for c in good):
        # The API reports one total for all n samples; share it by text length.
        chars = sum(len(c.text) for c in good) or 1
        for c in good:
            c.completion_tokens = round(total * len(c.text) / chars)
    return Result(completions=completions, prompt_tokens=prompt_tokens)


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
