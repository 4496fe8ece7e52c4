"""Throughput of `distill generate` vs a plain async OpenAI-client loop, against the same server.

Both send the same prompts with the same concurrency, n and max_tokens, in the same process; the
figure is completion tokens per second and their ratio (target: distill / plain >= 0.95).
Without --base-url it starts the toy teacher on the vLLM CPU build (teacher/toy-cpu.yaml).

    .venv/bin/python bench/generate.py [--prompts 64] [--n 4] [--concurrency 16] [--max-tokens 128] [--base-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from distill.cli import quiet_libraries  # noqa: E402
from distill.config import load_config  # noqa: E402
from distill.curate.config import CurateConfig  # noqa: E402
from distill.teacher.generate import generate  # noqa: E402
from distill.teacher.prompts import load_prompts  # noqa: E402
from distill.engines.serve import ServeConfig, start, stop  # noqa: E402
from distill.toy.world import ToyWorldConfig, build_world  # noqa: E402


async def plain_loop(base_url: str, model: str, messages: list[list[dict]], n: int, max_tokens: int,
                     concurrency: int) -> tuple[int, float]:
    """The baseline a user would write: one aiohttp session, a semaphore, one request per prompt."""
    limit = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(session, msgs):
        nonlocal tokens
        async with limit:
            body = {"model": model, "messages": msgs, "n": n, "temperature": 0.6, "top_p": 0.95, "max_tokens": max_tokens}
            async with session.post(f"{base_url}/chat/completions", json=body) as resp:
                data = await resp.json()
                tokens += data["usage"]["completion_tokens"]

    start_time = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(one(session, m) for m in messages))
    return tokens, time.perf_counter() - start_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default="toy/teacher")
    args = parser.parse_args()
    quiet_libraries()
    serve_cfg = None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = build_world(load_config(ROOT / "configs" / "toy-world.yaml", ToyWorldConfig, ["train_problems=2000"]),
                            tmp / "world", log=lambda *_: None)
        base_url = args.base_url
        if base_url is None:
            serve_cfg = load_config(ROOT / "teacher" / "toy-cpu.yaml", ServeConfig, [f"run_dir={tmp / 'serve'}"])
            start(serve_cfg)
            base_url = serve_cfg.base_url
        try:
            cfg = load_config(ROOT / "teacher" / "runs" / "toy.yaml", CurateConfig, [
                f"prompts.source={world / 'prompts' / 'train.jsonl'}", f"prompts.limit={args.prompts}",
                f"engine.base_urls=[{base_url}]", f"engine.model={args.model}",
                f"engine.max_concurrency={args.concurrency}", f"engine.per_endpoint_concurrency={args.concurrency}",
                f"sampling.n={args.n}", f"sampling.max_tokens={args.max_tokens}", "sampling.seed=null",
                "engine.vllm_extensions=false", f"run_dir={tmp / 'gen'}"])
            messages = [p.messages(cfg.prompts.template, None) for p in load_prompts(cfg.prompts)]
            asyncio.run(plain_loop(base_url, args.model, messages[:8], args.n, args.max_tokens, args.concurrency))  # warm-up
            # plain, distill, plain: the baseline is the mean of the runs either side (server drift cancels).
            before = asyncio.run(plain_loop(base_url, args.model, messages, args.n, args.max_tokens, args.concurrency))
            start_time = time.perf_counter()
            generate(cfg)
            distill_s = time.perf_counter() - start_time
            after = asyncio.run(plain_loop(base_url, args.model, messages, args.n, args.max_tokens, args.concurrency))
            plain_tokens, plain_s = before[0] + after[0], before[1] + after[1]
            summary = json.loads((tmp / "gen" / "generate_summary.json").read_text())
            distill_tokens = summary["completion_tokens"]
        finally:
            if serve_cfg is not None:
                stop(serve_cfg)
    plain_rate, distill_rate = plain_tokens / plain_s, distill_tokens / distill_s
    print(f"\n{args.prompts} prompts x n={args.n}, max_tokens {args.max_tokens}, concurrency {args.concurrency}, {base_url}")
    print(f"{'client':<24} {'tokens':>8} {'seconds':>8} {'tokens/s':>9}")
    print(f"{'plain aiohttp loop':<24} {plain_tokens:>8} {plain_s:>8.1f} {plain_rate:>9.0f}")
    print(f"{'distill generate':<24} {distill_tokens:>8} {distill_s:>8.1f} {distill_rate:>9.0f}"
          f"   (sampling loop alone: {summary['tokens_per_second']:.0f} tokens/s)")
    print(f"distill / plain: {distill_rate / plain_rate:.2f} end to end (loading prompts, shards, summary included); "
          f"{summary['tokens_per_second'] / plain_rate:.2f} for the sampling loop")


if __name__ == "__main__":
    main()
