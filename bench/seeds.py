"""How far one training run per student can be trusted: a pair of the demo's students over several seeds.

--pair curated (default): the curated and the unfiltered toy student, trained on a demo's traces once per
`data.shuffle_seed`. --pair on-policy: the demo's curated student continued on-policy and by SFT (the control),
once per `training.seed` (the student's sampling and data order). Both runs of a seed train at once, one core
each; each is evaluated on the toy suite. Prints per seed both pass@1 and the paired difference with its 95% CI,
then the mean difference over seeds. The README's seed figures come from it.

    .venv/bin/python bench/seeds.py [--pair curated|on-policy] [--traces runs/teacher/toy] [--seeds 0,1,2] [--out /tmp/seeds]
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

PAIRS = {
    # name: recipe, data directory under --traces, what the seed sets
    "curated": {"curated": ("students/toy-student.yaml", "curated", "data.shuffle_seed"),
                "unfiltered": ("students/toy-student.yaml", "unfiltered", "data.shuffle_seed")},
    "on-policy": {"on-policy": ("students/toy-student-on-policy.yaml", "unfiltered", "training.seed"),
                  "sft-control": ("students/toy-student-sft-control.yaml", "curated", "training.seed")},
}


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
    parser.add_argument("--pair", choices=sorted(PAIRS), default="curated")
    parser.add_argument("--traces", default="runs/teacher/toy", help="a demo's teacher run (curated/ and unfiltered/)")
    parser.add_argument("--start", default="runs/students/toy-student-curated/model",
                        help="--pair on-policy: the student both continue from (the demo's curated student)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=None, help="default: the recipes' max_steps")
    parser.add_argument("--eval-samples", type=int, default=8)
    parser.add_argument("--eval-limit", type=int, default=None, help="held-out problems (default: all)")
    parser.add_argument("--out", default="/tmp/distill-seeds")
    args = parser.parse_args()
    out, traces = Path(args.out), Path(args.traces)
    students = PAIRS[args.pair]
    missing = sorted({d for _, d, _ in students.values() if not (traces / d).is_dir()})
    if missing:
        sys.exit(f"{traces}: no {', '.join(missing)}/ (run `make demo` first, or point --traces at a demo's teacher run)")
    if args.pair == "on-policy" and not Path(args.start).is_dir():
        sys.exit(f"{args.start}: no such model (run `make demo` first, or point --start at the student to continue)")

    diffs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        runs = {s: out / f"{s}-s{seed}" for s in students}
        procs = {}
        for s, (recipe, data, seed_key) in students.items():
            extra = [f"training.max_steps={args.steps}"] if args.steps else []
            extra += [f"model.name_or_path={args.start}"] if args.pair == "on-policy" else []
            procs[s] = distill("train", recipe, f"name={s}-s{seed}", f"run_dir={runs[s]}", f"data.source={traces / data}",
                               f"{seed_key}={seed}", *extra)
        for s, proc in procs.items():
            wait(proc, f"training {s} (seed {seed})")
        scores = {}
        for s in students:
            extra = [f"benchmarks.0.limit={args.eval_limit}"] if args.eval_limit else []
            wait(distill("eval", "eval/suites/toy.yaml", f"model={runs[s] / 'model'}", f"model.label={s}-s{seed}",
                         "model.role=student", f"runs_dir={out / 'eval'}", "model.engine=hf",
                         f"benchmarks.0.samples={args.eval_samples}", *extra, threads=2), f"eval {s} (seed {seed})")
            scores[s] = per_problem(out / "eval" / f"{s}-s{seed}")
        first, second = students
        problems = sorted(set(scores[first]) & set(scores[second]))
        a, b = [scores[first][p] for p in problems], [scores[second][p] for p in problems]
        d = paired_bootstrap(a, b)
        diffs.append(100 * d.mean)
        print(f"seed {seed}: {first} {100 * sum(a) / len(a):.1f}  {second} {100 * sum(b) / len(b):.1f}  "
              f"difference {100 * d.mean:+.1f} [{100 * d.ci95[0]:+.1f}, {100 * d.ci95[1]:+.1f}]  "
              f"({len(problems)} problems)", flush=True)
    print(f"mean difference over {len(diffs)} seed(s): {sum(diffs) / len(diffs):+.1f} points "
          f"(smallest {min(diffs):+.1f}, largest {max(diffs):+.1f})")


if __name__ == "__main__":
    main()
