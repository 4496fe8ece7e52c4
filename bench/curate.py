"""Curation throughput and memory on synthetic math traces: 10k, 100k (and 1M) rows.

Each size runs in a fresh process (so peak memory is its own): synthetic traces are written with the
real trace writer (correct, wrong, truncated and unclosed responses; a third each of the prompts with
integer answers, fractions, and expressions like 12\\sqrt{5} whose wrong answers go through math-verify),
then `distill curate` runs the math path on them. Prints traces/s, the peak RSS of the whole process tree
(curate + verifier workers, sampled every 0.1 s; shared pages count once per process, so it is an upper
bound) and the CPU seconds it used: on a machine shared with other work, traces per CPU second x 2 says
what 2 free cores would do.

As from a real teacher, each prompt has k=4 samples (60% right), with different reasoning text, and a
wrong sample usually (3 in 4) gives the prompt's most common wrong answer: the scorer verifies a
repeated (answer, reference) pair once.
Targets: >= 2,000 traces/s on 2 cores, cost linear in N, 1M rows under 4 GiB.

    .venv/bin/python bench/curate.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def synthetic_traces(n: int, directory: Path) -> None:
    from distill.traces import Trace, write_traces

    rng = random.Random(0)
    batch = []
    for i in range(n):
        if i % 4 == 0:  # a new prompt: its problem, reference and most common wrong answer
            p = i // 4
            a, b = rng.randint(1, 999), rng.randint(1, 999)
            if p % 3 == 0:  # an integer answer ...
                answer, common_wrong = str(a * b), str(a * b + rng.randint(1, 9))
            elif p % 3 == 1:  # ... a fraction (compared exactly) ...
                answer, common_wrong = f"\\frac{{{a}}}{{{b + 1000}}}", f"\\frac{{{a + 1}}}{{{b + 1000}}}"
            else:  # ... or an expression: math-verify parses the wrong ones
                answer, common_wrong = f"{a}\\sqrt{{{b + 1}}}", f"{a + 1}\\sqrt{{{b + 1}}}"
        if rng.random() < 0.6:
            got = answer
        elif rng.random() < 0.75:
            got = common_wrong
        else:
            got = common_wrong.replace(str(a + 1), str(a + rng.randint(2, 9)), 1) if p % 3 else str(a * b - rng.randint(1, 9))
        work = f"We multiply {a} by {b}. " + " ".join(f"Partial product {k}: {a * k}." for k in range(1, 3 + i % 4))
        response = f"<think>\n{work}\n</think>\n\nThe answer is $\\boxed{{{got}}}$."
        finish = "stop"
        kind = rng.random()
        if kind < 0.05:
            response, finish = response[: len(response) // 2], "length"
        elif kind < 0.08:
            response = response.replace("</think>", "")
        batch.append(Trace(prompt_id=f"p{p}", source="synthetic", sample_index=i % 4, teacher="t", engine="hf",
                           prompt_messages=[{"role": "user", "content": f"What is {a} times {b}? (#{p})"}],
                           sampling={"n": 4}, response=response, finish_reason=finish, completion_tokens=60,
                           answer=answer, metadata={"difficulty": p % 3}))
        if len(batch) == 20000:
            write_traces(directory, batch)
            batch = []
    write_traces(directory, batch)


class TreeWatch:
    """Peak summed RSS and CPU seconds of this process's descendants, from /proc, sampled in a thread."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.peak_rss, self.cpu = interval, 0, {}
        self.page, self.ticks = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            stats = {}
            for entry in filter(str.isdigit, os.listdir("/proc")):
                try:
                    fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                # after "pid (name)": state ppid ... utime(12) stime(13) ... rss(22)
                stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21]))
            tree, rss = {os.getpid()}, 0
            for _ in range(4):  # curate -> forkserver -> workers: a few levels deep
                tree |= {pid for pid, (ppid, _, _) in stats.items() if ppid in tree}
            for pid in tree:
                rss += stats[pid][2] * self.page if pid in stats else 0
                if pid != os.getpid() and pid in stats:
                    self.cpu[pid] = stats[pid][1] / self.ticks
            self.peak_rss = max(self.peak_rss, rss)


def run_one(n: int) -> dict:
    from distill.cli import quiet_libraries
    from distill.curate.run import curate
    from distill.curate.config import CurateConfig

    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        synthetic_traces(n, run / "traces")
        cfg = CurateConfig.model_validate({"name": "bench", "run_dir": str(run),
                                             "prompts": {"source": str(ROOT / "configs" / "toy-world.yaml")}})
        with TreeWatch() as watch:
            start, cpu_start = time.perf_counter(), sum(os.times()[:2])
            out = curate(cfg)
            seconds, cpu = time.perf_counter() - start, sum(os.times()[:2]) - cpu_start + sum(watch.cpu.values())
        summary = json.loads((out / "curation.json").read_text())
    return {"n": n, "seconds": seconds, "traces_per_s": n / seconds, "peak_mib": watch.peak_rss / 2**20,
            "cpu_s": cpu, "accepted": summary["accepted"]}


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
              f"peak {r['peak_mib']:7,.0f} MiB  cpu {r['cpu_s']:7.1f} s ({2 * r['n'] / r['cpu_s']:6,.0f} traces/s on 2 free cores)  "
              f"accepted {r['accepted']:,}", flush=True)
    if len(rows) > 1:
        print(f"time per trace, largest / smallest: {rows[-1]['seconds'] / rows[-1]['n'] / (rows[0]['seconds'] / rows[0]['n']):.2f}x "
              "(1.00 = linear)")


if __name__ == "__main__":
    main()
