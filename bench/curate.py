"""Curation throughput and memory on synthetic math traces: 10k, 100k (and 1M) rows.

Each size runs in a fresh process (so peak memory is its own): synthetic traces are written with the
real trace writer (correct, wrong, truncated and unclosed responses; a third each integer answers,
fractions, and expressions like 12\\sqrt{5} whose wrong answers go through math-verify), then
`distill curate` runs the math path on them. Prints traces/s and peak RSS (process + verifier workers).
Targets: >= 2,000 traces/s on 2 cores, cost linear in N, 1M rows under 4 GiB.

    .venv/bin/python bench/curate.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def synthetic_traces(n: int, directory: Path) -> None:
    from distill.traces import ShardWriter, Trace

    rng = random.Random(0)
    writer = ShardWriter(directory)
    batch = []
    for i in range(n):
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        right = rng.random() < 0.6
        if i % 3 == 0:  # an integer answer ...
            answer = str(a * b)
            got = answer if right else str(a * b + rng.randint(1, 9))
        elif i % 3 == 1:  # ... a fraction (compared exactly) ...
            answer = f"\\frac{{{a}}}{{{b + 1000}}}"
            got = answer if right else f"\\frac{{{a + 1}}}{{{b + 1000}}}"
        else:  # ... or an expression: math-verify parses the wrong ones
            answer = f"{a}\\sqrt{{{b + 1}}}"
            got = answer if right else f"{a + 1}\\sqrt{{{b + 1}}}"
        work = f"We multiply {a} by {b}. " + " ".join(f"Partial product {k}: {a * k}." for k in range(1, 6))
        response = f"<think>\n{work}\n</think>\n\nThe answer is $\\boxed{{{got}}}$."
        finish = "stop"
        kind = rng.random()
        if kind < 0.05:
            response, finish = response[: len(response) // 2], "length"
        elif kind < 0.08:
            response = response.replace("</think>", "")
        prompt_id = f"p{i // 4}"
        batch.append(Trace(prompt_id=prompt_id, source="synthetic", sample_index=i % 4, teacher="t", engine="hf",
                           prompt_messages=[{"role": "user", "content": f"What is {a} times {b}? (#{i // 4})"}],
                           sampling={"n": 4}, response=response, finish_reason=finish, completion_tokens=60,
                           answer=answer, metadata={"difficulty": i % 3}))
        if len(batch) == 20000:
            writer.write(batch)
            batch = []
    writer.write(batch)


def run_one(n: int) -> dict:
    from distill.cli import quiet_libraries
    from distill.curate.run import curate
    from distill.teacher.config import GenerateConfig

    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        synthetic_traces(n, run / "traces")
        cfg = GenerateConfig.model_validate({"name": "bench", "run_dir": str(run),
                                             "prompts": {"source": str(ROOT / "configs" / "toy-world.yaml")}})
        start = time.perf_counter()
        out = curate(cfg)
        seconds = time.perf_counter() - start
        summary = json.loads((out / "curation.json").read_text())
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"n": n, "seconds": seconds, "traces_per_s": n / seconds, "peak_mib": peak_kb / 1024,
            "accepted": summary["accepted"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{r['n']:>9,} traces  {r['seconds']:7.1f} s  {r['traces_per_s']:7,.0f} traces/s  "
              f"peak {r['peak_mib']:7,.0f} MiB  accepted {r['accepted']:,}", flush=True)
    if len(rows) > 1:
        print(f"time per trace, largest / smallest: {rows[-1]['seconds'] / rows[-1]['n'] / (rows[0]['seconds'] / rows[0]['n']):.2f}x "
              "(1.00 = linear)")


if __name__ == "__main__":
    main()
