"""How far one training run per student can be trusted: the demo's two students over several data-order seeds.

Trains the curated and the unfiltered toy student on a demo's traces once per `data.shuffle_seed` (both at
once, one core each), evaluates each on the toy suite, and prints per seed: both pass@1 and the paired
difference with its 95% CI, then the mean difference over seeds. The README's seed table comes from it.

    .venv/bin/python bench/seeds.py [--traces runs/teacher/toy] [--seeds 0,1,2] [--steps 2200] [--out /tmp/seeds]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from distill.eval.metrics import paired_bootstrap  # noqa: E402

STUDENTS = ("curated", "unfiltered")


def distill(*args: str, threads: int = 1) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, "-m", "distill", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait(proc: subprocess.Popen, what: str) -> None:
    if proc.wait() != 0:
        sys.exit(f"{what} failed:\n{proc.stderr.read()[-2000:]}")


def per_problem(eval_dir: Path) -> dict[str, float]:
    results = json.loads((eval_dir / "results.json").read_text())
    return next(iter(results["benchmarks"].values()))["per_problem"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", default="runs/teacher/toy", help="a demo's teacher run (curated/ and unfiltered/)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=2200)
    parser.add_argument("--eval-samples", type=int, default=8)
    parser.add_argument("--eval-limit", type=int, default=None, help="held-out problems (default: all)")
    parser.add_argument("--out", default="/tmp/distill-seeds")
    args = parser.parse_args()
    out, traces = Path(args.out), Path(args.traces)
    missing = [s for s in STUDENTS if not (traces / s).is_dir()]
    if missing:
        sys.exit(f"{traces}: no {', '.join(missing)}/ (run `make demo` first, or point --traces at a demo's teacher run)")

    diffs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        runs = {s: out / f"{s}-s{seed}" for s in STUDENTS}
        procs = {s: distill("train", "students/toy-student.yaml", f"name={s}-s{seed}", f"run_dir={runs[s]}",
                            f"data.source={traces / s}", f"data.shuffle_seed={seed}",
                            f"training.max_steps={args.steps}") for s in STUDENTS}
        for s, proc in procs.items():
            wait(proc, f"training {s} (seed {seed})")
        scores = {}
        for s in STUDENTS:
            extra = [f"benchmarks.0.limit={args.eval_limit}"] if args.eval_limit else []
            wait(distill("eval", "eval/suites/toy.yaml", f"model={runs[s] / 'model'}", f"model.label={s}-s{seed}",
                         "model.role=student", f"output_dir={out / 'eval'}", "model.engine=hf",
                         f"benchmarks.0.samples={args.eval_samples}", *extra, threads=2), f"eval {s} (seed {seed})")
            scores[s] = per_problem(out / "eval" / f"{s}-s{seed}")
        problems = sorted(set(scores["curated"]) & set(scores["unfiltered"]))
        a, b = [scores["curated"][p] for p in problems], [scores["unfiltered"][p] for p in problems]
        d = paired_bootstrap(a, b)
        diffs.append(100 * d.mean)
        print(f"seed {seed}: curated {100 * sum(a) / len(a):.1f}  unfiltered {100 * sum(b) / len(b):.1f}  "
              f"difference {100 * d.mean:+.1f} [{100 * d.ci95[0]:+.1f}, {100 * d.ci95[1]:+.1f}]  "
              f"({len(problems)} problems)", flush=True)
    print(f"mean difference over {len(diffs)} seed(s): {sum(diffs) / len(diffs):+.1f} points "
          f"(smallest {min(diffs):+.1f}, largest {max(diffs):+.1f})")


if __name__ == "__main__":
    main()
