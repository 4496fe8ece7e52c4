"""A FAKE OpenAI-compatible server (what a hosted API looks like from here), with injectable faults.

Used only for the retry/backoff/endpoint logic of the openai engine and for answers a real server
would not give on purpose (malformed bodies); the real vLLM server is tested in test_vllm_server.py.
"""

from __future__ import annotations

import asyncio
import json
import threading

from aiohttp import web


class FakeOpenAIServer:
    """`faults`: a list consumed one per request, each one of
    'ok', '500', 'empty' ({"choices": []}), 'drop' (connection closed), 'short' (one choice fewer),
    'zero' (a zero-byte 200), a dict (sent as the JSON body of a 200) or bytes (sent as the raw body of a 200).
    `first_per_prompt`: a fault for the first request of each distinct prompt text, before `faults` apply.
    `delay_s`: how long every chat answer waits.
    `health`: serve vLLM's `/health`; hosted APIs have none, only `/v1/models` (which needs `api_key` when set).
    """

    def __init__(self, faults: list | None = None, first_per_prompt=None, health: bool = True,
                 api_key: str | None = None, delay_s: float = 0.0):
        self.faults = list(faults or [])
        self.first_per_prompt = first_per_prompt
        self.health = health
        self.api_key = api_key
        self.delay_s = delay_s  # every chat answer waits this long (a slow server, for runs that overlap)
        self.requests: list[dict] = []
        self.health_checks: list[str] = []
        self.seen_prompts: set[str] = set()
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await asyncio.sleep(self.delay_s)
        self.requests.append(body)
        prompt = json.dumps(body["messages"])
        if self.first_per_prompt is not None and prompt not in self.seen_prompts:
            self.seen_prompts.add(prompt)
            fault = self.first_per_prompt
        else:
            fault = self.faults.pop(0) if self.faults else "ok"
        if isinstance(fault, dict):
            return web.json_response(fault)
        if isinstance(fault, bytes):
            return web.Response(status=200, body=fault, content_type="application/json")
        if fault == "zero":
            return web.Response(status=200, body=b"", content_type="application/json")
        if fault == "500":
            return web.Response(status=500, text="internal error")
        if fault == "empty":
            return web.json_response({"choices": []})
        if fault == "drop":
            request.transport.close()
            return web.Response(status=500)
        n = body["n"] - (1 if fault == "short" else 0)
        answer = body["messages"][-1]["content"][:12]
        choices = [{"index": i, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": f"<think>\nsample {i}\n</think>\n\n{answer}"}}
                   for i in range(n)]
        return web.json_response({"choices": choices, "usage": {"prompt_tokens": 10, "completion_tokens": 5 * n}})

    async def _health(self, request: web.Request) -> web.Response:
        self.health_checks.append("/health")
        return web.Response(text="ok")

    async def _models(self, request: web.Request) -> web.Response:
        self.health_checks.append("/v1/models")
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        if self.health:
            app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"
