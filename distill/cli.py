"""`distill <stage> CONFIG [key=value ...]`: one command per pipeline stage."""

from __future__ import annotations

import argparse
import os
import sys

from distill.errors import DistillError, UsageError

# CPU-friendly, offline-first defaults; an explicit environment setting wins.
for _key, _value in (("TRL_EXPERIMENTAL_SILENCE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_key, _value)


def cmd_train(args) -> None:
    from distill.config import load_config
    from distill.students.config import StudentConfig
    from distill.students.train import train

    train(load_config(args.config, StudentConfig, args.overrides))


def cmd_generate(args) -> None:
    from distill.config import load_config
    from distill.curate.config import CurateConfig
    from distill.teacher.generate import generate

    generate(load_config(args.config, CurateConfig, args.overrides))  # the whole run file: its curate section too


def cmd_eval(args) -> None:
    from distill.config import load_config
    from distill.eval.config import SuiteConfig
    from distill.eval.run import evaluate

    # `model=PATH` is the short form of `model.name_or_path=PATH`, so that it combines with other model.* keys.
    overrides = [f"model.name_or_path={o.partition('=')[2]}" if o.startswith("model=") else o for o in args.overrides]
    evaluate(load_config(args.config, SuiteConfig, overrides))


def cmd_demo(args) -> None:
    from distill.config import load_config
    from distill.demo import DemoConfig, demo

    demo(load_config(args.config, DemoConfig, args.overrides))


def cmd_serve(args) -> None:
    from distill.config import load_config
    from distill.engines.serve import ServeConfig, start, stop

    cfg = load_config(args.config, ServeConfig, args.overrides)
    if args.stop:
        if not stop(cfg):
            print(f"[serve {cfg.name}] no server running (no {cfg.pid_file})")
        return
    pid = start(cfg)
    if args.foreground:
        import os

        try:
            os.waitpid(pid, 0)
        finally:
            stop(cfg)


def cmd_verify_code(args) -> None:
    import json
    import math

    from distill.io import atomic_write_text, check_output_path, text_lines
    from distill.verify.code import status_and_detail, verify_code
    from distill.verify.sandbox import LocalSandbox, SandboxSettings

    for flag, value in (("--timeout", args.timeout), ("--memory-mb", args.memory_mb)):
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag} must be above 0, got {value}")
    if args.out:
        check_output_path(args.out, args.input)
    items = []  # every line is checked before any program runs
    for number, line in text_lines(args.input):
        if line.strip():
            try:
                item = json.loads(line)
                items.append((item, item["code"], item["tests"]))
            except (ValueError, KeyError, TypeError):
                raise UsageError(f"{args.input}:{number}: expected a JSON object with 'code' and 'tests'") from None
    settings = SandboxSettings(allow_weak=args.allow_weak_sandbox, timeout_s=args.timeout, memory_mb=args.memory_mb)
    sandbox, limits = LocalSandbox(allow_weak=settings.allow_weak), settings.limits()
    lines = []
    for item, code, tests in items:
        verdict = verify_code(code, tests, item.get("starter_code"), item.get("entry_point"), sandbox, limits)
        status, detail = status_and_detail(verdict)
        record = {"correct": verdict.correct, "reason": verdict.reason, "passed": verdict.correct, "status": status,
                  "detail": detail}
        lines.append(json.dumps(record) + "\n")
        if not args.out:
            sys.stdout.write(lines[-1])
            sys.stdout.flush()
    if args.out:
        atomic_write_text(args.out, "".join(lines))


def cmd_score(args) -> None:
    from distill.eval.score import run_score

    run_score(args.input, args.out, args.response_key, args.answer_key, args.reasoning, args.answer_kind, args.workers)


def cmd_curate(args) -> None:
    from distill.config import load_config
    from distill.curate.config import CurateConfig
    from distill.curate.run import curate

    curate(load_config(args.config, CurateConfig, args.overrides))


def cmd_mix(args) -> None:
    from distill.students.mixture import run_mix_command

    run_mix_command(args.config, args.overrides)


def cmd_prompts(args) -> None:
    from distill.teacher.pool import run_prompts_command

    run_prompts_command(args.config, args.overrides)


def cmd_plan(args) -> None:
    from distill.plan import run_plan_command

    run_plan_command(args.config, args.overrides, args)


def cmd_preflight(args) -> None:
    from distill.preflight import preflight
    from distill.preflight.options import PreflightOptions

    local = {}
    for item in args.local or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--local {item!r}: expected NAME=FILE, e.g. aime24=data/aime24.jsonl")
        local[name] = path
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    options = PreflightOptions(models=args.models, data=args.data, suite=args.suite, local=local, steps=args.steps,
                               out=args.out)
    preflight(args.config, args.overrides, options)


def cmd_report(args) -> None:
    from distill.config import load_config
    from distill.report import ReportConfig, build_report

    build_report(load_config(args.config, ReportConfig, args.overrides))


def cmd_toy_world(args) -> None:
    from distill.config import load_config
    from distill.progress import say
    from distill.toy.world import ToyWorldConfig, build_world

    cfg = load_config(args.config, ToyWorldConfig, args.overrides)
    build_world(cfg, log=say)


def cmd_toy_teacher(args) -> None:
    from distill.config import load_config, parse_overrides
    from distill.toy.teacher import build_teacher
    from distill.toy.world import ToyWorldConfig

    world_overrides = [o for o in args.overrides if not o.startswith("recipe.")]
    recipe_overrides = [o.removeprefix("recipe.") for o in args.overrides if o.startswith("recipe.")]
    parse_overrides(recipe_overrides)
    build_teacher(load_config(args.config, ToyWorldConfig, world_overrides), recipe_overrides)


def cmd_toy_check(args) -> None:
    from pathlib import Path

    from distill.config import load_config
    from distill.io import read_jsonl
    from distill.progress import say
    from distill.toy.check import check_model
    from distill.toy.world import ToyWorldConfig, build_world

    if not (Path(args.model) / "config.json").is_file():
        raise UsageError(f"{args.model}: not a model directory (no config.json)")
    cfg = load_config(args.world, ToyWorldConfig)
    world = build_world(cfg, log=say)
    test = read_jsonl(world / "prompts" / "test.jsonl")
    result = check_model(args.model, test, k=args.samples, temperature=cfg.check_temperature, top_p=cfg.check_top_p,
                         seed=cfg.seed)
    say(f"[toy-check] {args.model}: pass@1 {result.pass_at_1:.3f} (T={cfg.check_temperature}, k={args.samples}, "
        f"{result.problems} held-out problems), greedy {result.greedy:.3f}, stopped at EOS {result.stopped:.1%}")


COMMANDS = {
    "generate": (cmd_generate, "sample k traces per prompt from the teacher (resumable)", "teacher/runs/<run>.yaml"),
    "curate": (cmd_curate, "verify, filter, dedup and decontaminate traces into the SFT set", "teacher/runs/<run>.yaml"),
    "train": (cmd_train, "train a student with TRL: sft, kd on stored logprobs, or on-policy from a teacher", "students/<run>.yaml"),
    "mix": (cmd_mix, "write a weighted mixture of several SFT sources as one dataset, reused by several students",
            "students/mixtures/<mix>.yaml"),
    "prompts": (cmd_prompts, "merge prompt pools into one, deduplicated across sources (exact and MinHash)",
                "teacher/pools/<pool>.yaml"),
    "plan": (cmd_plan, "what a training or generation run will cost before it starts: memory per GPU, GPU-hours",
             "students/<run>.yaml"),
    "eval": (cmd_eval, "evaluate one model on a benchmark suite (lm-eval, R1 protocol): model=PATH", "eval/suites/r1.yaml"),
    "report": (cmd_report, "turn eval, curation and training runs into report.md and report.html", "eval/report.yaml"),
    "demo": (cmd_demo, "the whole toy pipeline: teacher, curation, students (sft, on-policy), eval, report", "configs/demo.yaml"),
    "toy-world": (cmd_toy_world, "build the toy world: task data, tokenizer, tiny base models", "configs/toy-world.yaml"),
    "toy-teacher": (cmd_toy_teacher, "build the toy world and train the toy teacher with the students stage "
                    "(overrides prefixed recipe. go to the teacher's student recipe)", "configs/toy-world.yaml"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill", description="Distil a reasoning teacher into small students.")
    sub = parser.add_subparsers(dest="command", metavar="STAGE")
    for name, (func, help_text, example) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("config", metavar="CONFIG", help=f"YAML config, e.g. {example}")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. training.max_steps=10")
        p.set_defaults(func=func)
        if name == "plan":
            from distill.plan import add_arguments

            add_arguments(p)
    serve = sub.add_parser("serve", help="start the teacher's vLLM server and wait until it answers",
                           description="start the teacher's vLLM server and wait until it answers")
    serve.add_argument("config", metavar="CONFIG", help="serving recipe, e.g. teacher/deepseek-r1-8xh200.yaml")
    serve.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    serve.add_argument("--stop", action="store_true", help="stop the server this recipe started")
    serve.add_argument("--foreground", action="store_true", help="stay attached; stop the server on exit")
    serve.set_defaults(func=cmd_serve)
    verify = sub.add_parser("verify-code", help="run code against tests in the sandbox: one JSON verdict per input line")
    verify.add_argument("input", metavar="INPUT.jsonl", help='lines of {"code": ..., "tests": [...]}')
    verify.add_argument("--out", help="write verdicts here instead of stdout")
    verify.add_argument("--timeout", type=float, default=10.0, help="wall-clock seconds per program run")
    verify.add_argument("--memory-mb", type=int, default=1024)
    verify.add_argument("--allow-weak-sandbox", action="store_true",
                        help="run without namespaces (no network isolation) where they are unavailable")
    verify.set_defaults(func=cmd_verify_code)
    scorer = sub.add_parser("score", help="re-score saved generations (math): pass@1 with its CI, per-line verdicts",
                            description="re-score saved generations (math): pass@1 with its CI, per-line verdicts")
    scorer.add_argument("input", metavar="INPUT.jsonl", help='lines of {"response": str or [str, ...], "answer": str}')
    scorer.add_argument("--out", help="verdicts JSONL (default: <input stem>.verdicts.jsonl beside the input)")
    scorer.add_argument("--response-key", default="response",
                        help="field of the response(s) (default: response, else responses)")
    scorer.add_argument("--answer-key", default="answer", help="field of the reference answer")
    scorer.add_argument("--reasoning", action=argparse.BooleanOptionalAction, default=None,
                        help="score the text after the last </think> (default: on when any response opens or closes one)")
    scorer.add_argument("--answer-kind", choices=["auto", "integer", "choice", "math"], default="auto")
    scorer.add_argument("--workers", type=int, default=None,
                        help="scoring processes (default: all cores; 1: score in this process)")
    scorer.set_defaults(func=cmd_score)
    pre = sub.add_parser("preflight", help="check a recipe on this CPU in minutes: real tokenizers, one rendered example, "
                         "a few steps on a two-layer model of its architecture, eval on one problem per benchmark",
                         description="check a student recipe, a generation run or an eval suite on this CPU before "
                         "spending GPU money: the real code path, real tokenizers and templates, models shrunk to two layers")
    pre.add_argument("config", metavar="CONFIG", help="students/*.yaml, teacher/runs/*.yaml or eval/suites/*.yaml")
    pre.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of the recipe")
    pre.add_argument("--models", help="a local mirror of model repos (DIR/<org>/<name>/ with tokenizer files and "
                     "config.json) used before the Hub")
    pre.add_argument("--data", help="rows for a student recipe whose data is not made yet (default: stand-in rows)")
    pre.add_argument("--suite", default="eval/suites/r1.yaml", help="the eval suite a student's result goes through")
    pre.add_argument("--local", action="append", metavar="NAME=FILE",
                     help="a benchmark's local copy instead of its Hub dataset (repeatable)")
    pre.add_argument("--steps", type=int, default=2, help="training steps (default: 2)")
    pre.add_argument("--out", default="runs/preflight", help="where the shrunk models and runs go")
    pre.set_defaults(func=cmd_preflight)
    check = sub.add_parser("toy-check", help="sampled pass@1 of a model on the toy world's held-out problems")
    check.add_argument("model", metavar="MODEL_DIR")
    check.add_argument("--world", default="configs/toy-world.yaml", help="toy world config")
    check.add_argument("--samples", type=int, default=4, help="samples per problem")
    check.set_defaults(func=cmd_toy_check)
    return parser


def quiet_libraries() -> None:
    """Our own progress lines replace the libraries' per-map and per-shard progress bars."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits 2 on usage errors by itself
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        quiet_libraries()
        args.func(args)
    except DistillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
