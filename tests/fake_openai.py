"""A FAKE OpenAI-compatible server (what a hosted API looks like from here), with injectable faults.

Used only for the retry/backoff/endpoint logic of the openai engine, which a healthy real server
cannot be made to exercise; the real vLLM server is tested in test_vllm_server.py.
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class FakeOpenAIServer:
    """`faults`: a list consumed one per request: 'ok', '500', 'empty', 'drop', 'short' (one choice fewer)."""

    def __init__(self, faults: list[str] | None = None):
        self.faults = list(faults or [])
        self.requests: list[dict] = []
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        fault = self.faults.pop(0) if self.faults else "ok"
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
        return web.Response(text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
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
