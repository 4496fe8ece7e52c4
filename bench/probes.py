"""Hostile-but-fair inputs through the real CLI, each outcome classified (issue 13).

    .venv/bin/python bench/probes.py              # every probe, then a summary table
    .venv/bin/python bench/probes.py --only serve # the probes whose id holds `serve`
    .venv/bin/python bench/probes.py --list       # the probes, without running them

Each probe runs `python -m distill ...` in its own temporary directory and is put in one category:

    one clear line       refused (non-zero exit), no traceback, one `error: ...` line naming what it should
    handled correctly    a probe whose right outcome is success, and its post-check holds
    vague or wrong line  one line, but without what it should name, a wrong exit code (usage and config
                         errors exit 2), or a refusal where success was right
    traceback            "Traceback" in the output
    silent wrong result  exit 0 where it should have refused, or a post-check fails
    data lost            an input file or an earlier output changed or vanished (hashed before and after)
    hung                 no answer within the probe's time limit

Nothing here trains or evaluates a model: train probes stop before a model loads (or at the lock, with the
toy world's smallest base), and `make demo` is not run. The exit status is 0 whatever the outcomes.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
if VENV.is_dir() and Path(sys.prefix).resolve() != VENV.resolve() and not os.environ.get("PROBES_REEXEC"):
    os.environ["PROBES_REEXEC"] = "1"  # pyarrow, yaml and aiohttp (the fake server) come from the project's venv
    os.execv(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), *sys.argv])

import pyarrow.parquet as pq  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from support.fake_openai import FakeOpenAIServer  # noqa: E402

PYTHON = str(VENV / "bin" / "python") if VENV.is_dir() else sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "PYTHONUNBUFFERED": "1"}
ENV.pop("PROBES_REEXEC", None)
WORLD = ROOT / "runs" / "toy" / "world"
TOY_BASE = WORLD / "bases" / "qwen2-h64-l2"  # the smallest toy base: a train probe that gets past its checks stops soon
EVAL_RUNS = ROOT / "runs" / "eval"
AS_ROOT = os.geteuid() == 0

CATEGORIES = ["one clear line", "handled correctly", "vague or wrong line", "traceback", "silent wrong result",
              "data lost", "hung"]


# ----------------------------------------------------------------------------------------------------------------
# The probe, its context and its result


@dataclass
class Ctx:
    dir: Path
    vars: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class Result:
    rc: int | None  # None: timed out
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Probe:
    id: str
    build: Callable[[Ctx], list[str]]  # writes the probe's files into ctx.dir; returns the arguments after `distill`
    expect: str = "refuse"  # refuse | succeed | either (either: refusing with one clear line or succeeding are both right)
    exit_code: int | None = 2  # refuse: the exit status it must have (None: any non-zero)
    # The error line must hold each of these; "a|b" is one of a or b; {name} is filled from ctx.vars.
    needle: tuple[str, ...] = ()
    post: Callable[[Ctx, Result], str | None] | None = None  # None when it holds, else what is wrong
    may_change: tuple[str, ...] = ()  # globs (relative to ctx.dir) of files the run may rewrite or remove
    timeout: float = 120
    skip: str | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def write_yaml(path: Path, data: Any) -> Path:
    return write(path, yaml.safe_dump(data, sort_keys=False))


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def snapshot(root: Path, may_change: tuple[str, ...]) -> dict[str, str]:
    """sha256 of every file under root (a link: its target), except the ones a probe may change."""
    hashes = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if any(fnmatch.fnmatch(rel, pattern) for pattern in may_change):
                continue
            if path.is_symlink():
                hashes[rel] = "link:" + os.readlink(path)
            else:
                try:
                    hashes[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError as exc:
                    hashes[rel] = f"unreadable: {exc.strerror}"
    return hashes


def lost_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [f"{rel} {'removed' if rel not in after else 'changed'}" for rel, digest in before.items()
            if after.get(rel) != digest]


def run_cli(ctx: Ctx, args: list[str], timeout: float) -> Result:
    started = time.time()
    try:
        proc = subprocess.run([PYTHON, "-m", "distill", *args], cwd=ctx.dir, env={**ENV, **ctx.vars.get("env", {})},
                              capture_output=True, timeout=timeout)
        return Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"),
                      time.time() - started)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace")
        err = (exc.stderr or b"").decode(errors="replace")
        return Result(None, out, err, time.time() - started)


ARGPARSE_ERROR = ": error: "  # argparse: "usage: ..." then "distill verify-code: error: ..."


def error_line(result: Result) -> tuple[str | None, str]:
    """(the one error line, or None; why not) from stderr: exactly one line starting `error:` (or argparse's
    `distill ...: error:`), and nothing after it."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")
              or (line.startswith("distill") and ARGPARSE_ERROR in line)]
    if not errors:
        last = lines[-1] if lines else (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        return None, f"no error line; last: {last}"
    if len(errors) > 1:
        return None, f"{len(errors)} error lines; first: {lines[errors[0]]}"
    if errors[0] != len(lines) - 1:
        return None, f"more lines after the error line ({lines[errors[0]]}): {lines[-1]}"
    return lines[errors[0]], ""


def needles_missing(line: str, needles: tuple[str, ...], values: dict[str, Any]) -> list[str]:
    missing = []
    for needle in needles:
        options = [option.format(**values) for option in needle.split("|")]
        if not any(option in line for option in options):
            missing.append(" or ".join(repr(o) for o in options))
    return missing


def last_line(result: Result) -> str:
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def classify(probe: Probe, ctx: Ctx, result: Result, lost: list[str]) -> tuple[str, str]:
    if lost:
        return "data lost", "; ".join(lost[:3]) + f" (exit {result.rc}: {last_line(result)})"
    if "Traceback" in result.stderr or "Traceback" in result.stdout:
        return "traceback", f"exit {result.rc}: {last_line(result)}"
    if result.rc is None:
        return "hung", f"no exit within {probe.timeout:.0f}s; last: {last_line(result)}"
    problem = probe.post(ctx, result) if probe.post else None
    if result.rc == 0:
        if probe.expect == "refuse":
            return "silent wrong result", f"exit 0, expected a refusal; last: {last_line(result)}"
        if problem:
            return "silent wrong result", problem
        return "handled correctly", f"exit 0: {last_line(result)}"
    line, why = error_line(result)
    if line is None:
        return "vague or wrong line", f"exit {result.rc}, {why}"
    if probe.expect == "succeed":
        return "vague or wrong line", f"refused where success was right (exit {result.rc}): {line}"
    if probe.exit_code is not None and result.rc != probe.exit_code:
        return "vague or wrong line", f"exit {result.rc}, expected {probe.exit_code}: {line}"
    missing = needles_missing(line, probe.needle, ctx.vars)
    if missing:
        return "vague or wrong line", f"does not name {', '.join(missing)}: {line}"
    if problem:
        return "silent wrong result", f"{problem} ({line})"
    return "one clear line", line


def run_probe(probe: Probe, base: Path, keep: bool) -> tuple[str, str, float]:
    ctx = Ctx(Path(tempfile.mkdtemp(prefix="probe-", dir=base)))  # not the id: needles must not match the path
    try:
        try:
            args = probe.build(ctx)
        except Exception as exc:  # the harness's own setup: said as such, never counted as a finding
            return "setup failed", f"{type(exc).__name__}: {exc}", 0.0
        before = snapshot(ctx.dir, probe.may_change)
        result = run_cli(ctx, args, probe.timeout)
        after = snapshot(ctx.dir, probe.may_change)
        category, detail = classify(probe, ctx, result, lost_files(before, after))
        return category, detail, result.seconds
    finally:
        for cleanup in reversed(ctx.cleanups):
            try:
                cleanup()
            except Exception:
                pass
        if not keep:
            shutil.rmtree(ctx.dir, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# Helpers the probes share: a fake OpenAI server, a lock holder, a sleeping bystander, generated runs


def start_server(ctx: Ctx, faults: list | None = None, first_per_prompt=None) -> str:
    server = FakeOpenAIServer(faults=faults, first_per_prompt=first_per_prompt)
    server.__enter__()
    ctx.cleanups.append(lambda: server.__exit__(None, None, None))
    ctx.vars["server"] = server
    return server.base_url


HOLDER = ("import sys, time\nfrom distill import locks\nlocks.acquire(sys.argv[1], sys.argv[2])\n"
          "print('held', flush=True)\ntime.sleep(300)\n")


def hold_lock(ctx: Ctx, directory: Path, stage: str) -> int:
    """Another process holding `directory` as a running `distill <stage>` would; its PID goes in ctx.vars['pid']."""
    proc = subprocess.Popen([PYTHON, "-c", HOLDER, str(directory), stage], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ctx.cleanups.append(lambda: (proc.kill(), proc.wait()))
    line = proc.stdout.readline()
    if line.strip() != "held":
        raise RuntimeError(f"lock holder did not start: {proc.stderr.read()[-300:]}")
    ctx.vars["pid"] = proc.pid
    return proc.pid


def bystander(ctx: Ctx) -> subprocess.Popen:
    """An unrelated `sleep 300`, leading its own process group (as a server started by `distill serve` would)."""
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    ctx.cleanups.append(lambda: (proc.kill(), proc.wait()))
    ctx.vars["sleeper"] = proc
    ctx.vars["sleep_pid"] = proc.pid
    return proc


def sleeper_alive(ctx: Ctx, result: Result) -> str | None:
    return None if ctx.vars["sleeper"].poll() is None else "the unrelated sleep process was killed"


def engine(url: str, **extra) -> dict:
    """An openai engine that gives up fast: retries in milliseconds, never waits out an outage."""
    return {"kind": "openai", "model": "fake-teacher", "base_urls": [url], "max_retries": 1, "backoff_base_s": 0.01,
            "backoff_max_s": 0.05, "timeout_s": 10, "endpoint_failures_before_down": 1000, "all_down_timeout_s": 5,
            "health_check_interval_s": 0.2, "vllm_extensions": False, **extra}


PROMPTS = [{"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 3)]
N_SAMPLES = 2


def generate_config(ctx: Ctx, url: str | None = None, prompts: Path | None = None, **extra) -> dict:
    if prompts is None:
        prompts = write(ctx.dir / "prompts.jsonl", jsonl(PROMPTS))
    cfg = {"name": "probe", "run_dir": str(ctx.dir / "run"), "prompts": {"source": str(prompts)},
           "engine": engine(url or f"http://127.0.0.1:{free_port()}/v1"),
           "sampling": {"n": N_SAMPLES, "max_tokens": 64, "seed": 0}, "flush_every": 4,
           "curate": {"workers": 1, "decontamination": {"enabled": False}}}
    return with_extra(cfg, extra)


def with_extra(cfg: dict, extra: dict) -> dict:
    """`cfg` with `extra` laid over it: `section__key` sets cfg[section][key]."""
    for key, value in extra.items():
        section, _, sub = key.partition("__")
        if sub:
            cfg.setdefault(section, {})[sub] = value
        else:
            cfg[key] = value
    return cfg


_GENERATED: dict[str, Path] = {}


def generated_run(answers: bool) -> Path:
    """A finished generation run (2 prompts x 2 samples from the fake server), made once and copied per probe."""
    key = "answers" if answers else "no-answers"
    if key not in _GENERATED:
        home = Path(tempfile.mkdtemp(prefix=f"fixture-{key}-", dir=BASE))
        ctx = Ctx(home)
        try:
            url = start_server(ctx)
            rows = PROMPTS if answers else [{k: v for k, v in p.items() if k != "answer"} for p in PROMPTS]
            prompts = write(home / "prompts.jsonl", jsonl(rows))
            cfg = generate_config(ctx, url, prompts)
            # Relative paths (every probe runs in its own directory): a copy resumes with the same fingerprint.
            cfg.update(run_dir="run", prompts={**cfg["prompts"], "source": "prompts.jsonl"})
            if not answers:
                cfg["prompts"]["fields"] = {"id": "id", "problem": "problem"}
            write_yaml(home / "run.yaml", cfg)
            result = run_cli(ctx, ["generate", "run.yaml"], 120)
            if result.rc != 0:
                raise RuntimeError(f"fixture generation failed: {last_line(result)}")
        finally:
            for cleanup in ctx.cleanups:
                cleanup()
        _GENERATED[key] = home
    return _GENERATED[key]


def copy_run(ctx: Ctx, answers: bool = True, **extra) -> dict:
    """The fixture run copied into ctx.dir (run/, prompts.jsonl) and its config, pointing there, as run.yaml."""
    home = generated_run(answers)
    shutil.copytree(home / "run", ctx.dir / "run", symlinks=True)
    shutil.copy(home / "prompts.jsonl", ctx.dir / "prompts.jsonl")
    cfg = yaml.safe_load((home / "run.yaml").read_text())  # its paths are relative: the same in the copy
    write_yaml(ctx.dir / "run.yaml", with_extra(cfg, extra))
    return cfg


def shards(run: Path) -> list[Path]:
    return sorted((run / "traces").glob("shard-*.parquet"))


def trace_rows(run: Path) -> list[dict]:
    rows = []
    for path in shards(run):
        rows += pq.read_table(path, columns=["prompt_id", "sample_index", "status", "error", "response",
                                             "prompt_tokens", "completion_tokens"]).to_pylist()
    return rows


def latest(run: Path) -> dict[tuple, dict]:
    """(prompt, sample) -> the row that counts: a success over a failed try."""
    best: dict[tuple, dict] = {}
    for row in trace_rows(run):
        key = (row["prompt_id"], row["sample_index"])
        if key not in best or (best[key]["status"] != "ok" and row["status"] == "ok"):
            best[key] = row
    return best


def traces_truthful(ctx: Ctx, result: Result, failures_allowed: bool = False) -> str | None:
    """Every (prompt, sample) stored, each failure with its reason, token counts sane, exit 0 only with none failed
    (unless `failures_allowed`: max_failed_fraction lets them through)."""
    rows = latest(ctx.dir / "run")
    want = {(p["id"], i) for p in PROMPTS for i in range(N_SAMPLES)}
    if set(rows) != want:
        return f"traces hold {len(rows)} of {len(want)} (prompt, sample) pairs"
    failed = [r for r in rows.values() if r["status"] != "ok"]
    if any(not r["error"] for r in failed):
        return "a failed sample has no error"
    for r in rows.values():
        for key in ("prompt_tokens", "completion_tokens"):
            if r[key] is not None and not (0 <= r[key] < 2**31 - 1):
                return f"{key} stored as {r[key]}"
        if r["status"] == "ok" and not isinstance(r["response"], str):
            return f"an ok sample has response {r['response']!r}"
    if result.rc == 0 and failed and not failures_allowed:
        return f"exit 0 with {len(failed)} of {len(rows)} samples failed ({failed[0]['error'][:80]})"
    if result.rc != 0 and not failed:
        return f"exit {result.rc} with every sample ok"
    return None


def all_ok(ctx: Ctx, result: Result) -> str | None:
    problem = traces_truthful(ctx, result)
    if problem:
        return problem
    failed = [r for r in latest(ctx.dir / "run").values() if r["status"] != "ok"]
    return f"{len(failed)} samples failed ({failed[0]['error'][:80]})" if failed else None


# ----------------------------------------------------------------------------------------------------------------
# Config files of every stage


def base_generate(ctx: Ctx) -> dict:
    return generate_config(ctx)


def base_student(ctx: Ctx) -> dict:
    sft = write(ctx.dir / "sft.jsonl", jsonl(SFT_ROWS))
    model = str(TOY_BASE) if TOY_BASE.is_dir() else "probe-org/no-such-model"
    return {"name": "probe-student", "run_dir": str(ctx.dir / "student"),
            "model": {"name_or_path": model, "dtype": "float32"}, "data": {"source": str(sft)},
            "training": {"max_length": 128, "max_steps": 1, "per_device_train_batch_size": 2, "learning_rate": 1e-3,
                         "bf16": False, "gradient_checkpointing": False, "logging_steps": 1, "save_steps": 1}}


def base_suite(ctx: Ctx) -> dict:
    return {"name": "probe", "benchmarks": [{"name": "toy", "task": "distill_toy", "samples": 1, "limit": 1}],
            "model": {"name_or_path": "probe-org/no-such-model", "engine": "hf"}, "tasks_dir": str(ROOT / "eval" / "tasks"),
            "runs_dir": str(ctx.dir / "eval")}


def base_report(ctx: Ctx) -> dict:
    return {"run_dir": str(ctx.dir / "report"), "teacher": {"eval_dir": str(ctx.dir / "no-teacher")},
            "students": [{"eval_dir": str(ctx.dir / "no-student")}]}


def base_serve(ctx: Ctx) -> dict:
    # No python there: a recipe that passes its checks stops at once instead of starting a server.
    return {"name": "probe", "model": str(ctx.dir / "no-model"), "python": str(ctx.dir / "no-python"),
            "port": free_port(), "run_dir": str(ctx.dir / "serve"), "startup_timeout_s": 5}


def base_demo(ctx: Ctx) -> dict:
    # Nothing it names exists: a config that passes its checks fails at the first stage, in seconds.
    return {"world": str(ctx.dir / "no-world.yaml"), "teacher": str(ctx.dir / "no-teacher"),
            "second_teacher": str(ctx.dir / "no-teacher-2"), "runs_dir": str(ctx.dir / "out"), "steps": 1}


@dataclass
class Stage:
    command: str
    base: Callable[[Ctx], dict]
    required: str  # the key an empty config lacks
    misspelt: tuple[tuple[str, ...], Any]  # (path with a misspelt last key, value)
    wrong_type: tuple[tuple[str, ...], Any]
    negative: tuple[tuple[str, ...], Any]
    timeout: float = 60


STAGES = [
    Stage("generate", base_generate, "name", (("sampling", "temprature"), 0.6), (("sampling", "n"), "four"),
          (("sampling", "n"), -1)),
    Stage("curate", base_generate, "name", (("curate", "verifer"), "math"), (("curate", "min_tokens"), "few"),
          (("curate", "selection", "max_per_prompt"), -2)),
    Stage("train", base_student, "name", (("training", "learning_rat"), 1e-4), (("training", "max_length"), "long"),
          (("training", "per_device_train_batch_size"), -2), timeout=180),
    Stage("eval", base_suite, "name", (("protocol", "temprature"), 0.6), (("model", "num_concurrent"), "many"),
          (("benchmarks", 0, "samples"), -4), timeout=90),
    Stage("report", base_report, "run_dir", (("teacher", "eval_dirr"), "x"), (("bootstrap", "resamples"), "many"),
          (("bootstrap", "resamples"), -5)),
    Stage("serve", base_serve, "name", (("startup_timout_s",), 5), (("port",), "http"), (("engine_nice",), -1)),
    Stage("demo", base_demo, "-", (("eval_limt",), 5), (("prompts",), "many"), (("steps",), -1)),
]


def set_path(data: dict, path: tuple, value: Any) -> dict:
    node = data
    for part in path[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[path[-1]] = value
    return data


def dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def config_probes() -> list[Probe]:
    probes = []
    for s in STAGES:
        cmd, t = s.command, s.timeout

        def with_file(content_of, s=s):
            def build(ctx: Ctx) -> list[str]:
                content = content_of(ctx, s)
                write(ctx.dir / "config.yaml", content if isinstance(content, (str, bytes)) else yaml.safe_dump(content))
                return [s.command, "config.yaml"]
            return build

        def overrides(*items, s=s):
            def build(ctx: Ctx) -> list[str]:
                write_yaml(ctx.dir / "config.yaml", s.base(ctx))
                return [s.command, "config.yaml", *items]
            return build

        def missing(ctx, s=s):
            return [s.command, "missing.yaml"]

        def directory(ctx, s=s):
            (ctx.dir / "config.yaml").mkdir()
            return [s.command, "config.yaml"]

        def unreadable(ctx, s=s):
            write_yaml(ctx.dir / "config.yaml", s.base(ctx)).chmod(0)
            return [s.command, "config.yaml"]

        def non_utf8(ctx, s=s):
            text = yaml.safe_dump(s.base(ctx), sort_keys=False).encode()
            return b"# probe\n# caf\xe9 latin-1\n" + text

        def unknown(ctx, s=s):
            return {**s.base(ctx), "bogus_key": 1}

        def keyed(which, s=s):
            def content(ctx, s=s):
                path, value = getattr(s, which)
                return set_path(s.base(ctx), path, value)
            return content

        probes += [
            Probe(f"config-{cmd}-missing-file", missing, needle=("missing.yaml",), timeout=t),
            Probe(f"config-{cmd}-directory", directory, needle=("config.yaml", "director|not a file|not a regular file"),
                  timeout=t),
            Probe(f"config-{cmd}-empty-file", with_file(lambda ctx, s: ""), needle=(s.required,), timeout=t,
                  skip="an empty demo config is valid (every key has a default): it would run the whole demo"
                  if cmd == "demo" else None),
            Probe(f"config-{cmd}-non-utf8", with_file(non_utf8), needle=("config.yaml", "UTF-8|utf-8"), timeout=t),
            Probe(f"config-{cmd}-invalid-yaml", with_file(lambda ctx, s: "name: probe\n\tbad: [1\n"),
                  needle=("config.yaml:2",), timeout=t),
            Probe(f"config-{cmd}-top-level-list", with_file(lambda ctx, s: "- name: probe\n- x\n"),
                  needle=("config.yaml", "mapping"), timeout=t),
            Probe(f"config-{cmd}-unknown-key", with_file(unknown), needle=("bogus_key",), timeout=t),
            Probe(f"config-{cmd}-misspelt-key", with_file(keyed("misspelt")), needle=(dotted(s.misspelt[0]),),
                  timeout=t),
            Probe(f"config-{cmd}-wrong-type", with_file(keyed("wrong_type")), needle=(dotted(s.wrong_type[0]),),
                  timeout=t),
            Probe(f"config-{cmd}-negative-count", with_file(keyed("negative")), needle=(dotted(s.negative[0]),),
                  timeout=t),
            Probe(f"config-{cmd}-override-no-equals", overrides("a.b"), needle=("override", "a.b"), timeout=t),
            Probe(f"config-{cmd}-override-no-key", overrides("=x"), needle=("override", "=x"), timeout=t),
            Probe(f"config-{cmd}-override-empty-part", overrides("a..b=1"), needle=("override", "a..b"), timeout=t),
            Probe(f"config-{cmd}-unreadable", unreadable, needle=("config.yaml",), timeout=t,
                  skip="running as root: a mode-000 file is still readable" if AS_ROOT else None),
        ]
    # A few overrides with a bad key or value, as typed on a command line.
    probes += [
        Probe("config-generate-override-unknown-key", lambda ctx: [
            "generate", str(write_yaml(ctx.dir / "config.yaml", base_generate(ctx)).name), "sampling.bogus=1"],
            needle=("sampling.bogus",)),
        Probe("config-generate-override-negative", lambda ctx: [
            "generate", str(write_yaml(ctx.dir / "config.yaml", base_generate(ctx)).name), "engine.max_concurrency=-3"],
            needle=("engine.max_concurrency",)),
        Probe("config-eval-override-benchmark-out-of-range", lambda ctx: [
            "eval", str(write_yaml(ctx.dir / "config.yaml", base_suite(ctx)).name), "benchmarks.3.limit=5"],
            needle=("benchmarks.3",), timeout=90),
        Probe("config-serve-negative-port", lambda ctx: [
            "serve", str(write_yaml(ctx.dir / "config.yaml", {**base_serve(ctx), "port": -1}).name)],
            needle=("port",)),
    ]
    return probes


# ----------------------------------------------------------------------------------------------------------------
# Prompt files for generate


def prompt_file_probe(pid: str, content: bytes | str, needle: tuple[str, ...], fields: dict | None = None) -> Probe:
    def build(ctx: Ctx) -> list[str]:
        prompts = write(ctx.dir / "prompts.jsonl", content)
        cfg = generate_config(ctx, prompts=prompts)
        if fields:
            cfg["prompts"]["fields"] = fields
        write_yaml(ctx.dir / "run.yaml", cfg)
        return ["generate", "run.yaml"]
    return Probe(pid, build, needle=needle)


def prompt_probes() -> list[Probe]:
    good = [json.dumps(p) for p in PROMPTS] + [json.dumps({"id": "p3", "problem": "What is 3 + 3?", "answer": "6"})]
    line3 = "prompts.jsonl:3|line 3"
    line2 = "prompts.jsonl:2|line 2"
    probes = [
        prompt_file_probe("prompts-malformed-line-3", "\n".join([good[0], good[1], '{"id": "p3", "problem": ']) + "\n",
                          (line3,)),
        prompt_file_probe("prompts-non-utf8-line-2", (good[0] + "\n").encode()
                          + b'{"id": "p2", "problem": "caf\xe9?", "answer": "1"}\n' + (good[2] + "\n").encode(),
                          (line2, "UTF-8|utf-8")),
        prompt_file_probe("prompts-no-id-field", jsonl([{"problem": p["problem"], "answer": p["answer"]} for p in PROMPTS]),
                          ("id",)),
        prompt_file_probe("prompts-line-2-without-problem",
                          "\n".join([good[0], json.dumps({"id": "p2", "answer": "4"}), good[2]]) + "\n", (line2,)),
        prompt_file_probe("prompts-line-2-problem-is-a-number",
                          "\n".join([good[0], json.dumps({"id": "p2", "problem": 5, "answer": "4"}), good[2]]) + "\n",
                          (line2,)),
        prompt_file_probe("prompts-line-2-is-a-list", "\n".join([good[0], "[1, 2]", good[2]]) + "\n", (line2,)),
        prompt_file_probe("prompts-duplicate-id-line-3",
                          "\n".join([good[0], good[1], json.dumps({"id": "p1", "problem": "Other?", "answer": "0"})]) + "\n",
                          ("duplicate", line3)),
        prompt_file_probe("prompts-empty-file", "", ("prompts.jsonl", "empty|no rows|no prompts")),
        prompt_file_probe("prompts-blank-lines-only", "\n\n\n", ("prompts.jsonl", "empty|no rows|no prompts")),
        prompt_file_probe("prompts-field-mapping-to-missing-column", jsonl(PROMPTS), ("question",),
                          fields={"id": "id", "problem": "question"}),
        Probe("prompts-source-missing", lambda ctx: [
            "generate", write_yaml(ctx.dir / "run.yaml", {**generate_config(ctx), "prompts": {
                "source": str(ctx.dir / "nope.jsonl")}}).name], needle=("prompts.source", "nope.jsonl")),
        Probe("prompts-source-empty-directory", lambda ctx: [
            "generate", write_yaml(ctx.dir / "run.yaml", {**generate_config(ctx), "prompts": {
                "source": str((ctx.dir / "empty").mkdir() or ctx.dir / "empty")}}).name], needle=("prompts.source",)),
        Probe("prompts-limit-zero", lambda ctx: [
            "generate", write_yaml(ctx.dir / "run.yaml", generate_config(ctx)).name, "prompts.limit=0"],
            needle=("prompts.limit",)),
    ]

    def edited(ctx: Ctx) -> list[str]:
        copy_run(ctx)
        rows = [json.loads(line) for line in (ctx.dir / "prompts.jsonl").read_text().splitlines()]
        rows[0]["problem"] = "What is 7 + 7?"  # same id, new text
        write(ctx.dir / "prompts.jsonl", jsonl(rows))
        ctx.vars["server_url"] = start_server(ctx)
        return ["generate", "run.yaml", f"engine.base_urls=[{ctx.vars['server_url']}]"]

    def no_manifest(ctx: Ctx) -> list[str]:
        copy_run(ctx)
        (ctx.dir / "run" / "manifest.json").unlink()
        return ["generate", "run.yaml", f"engine.base_urls=[{start_server(ctx)}]", "sampling.n=3"]

    def other_temperature(ctx: Ctx) -> list[str]:
        copy_run(ctx)
        return ["generate", "run.yaml", f"engine.base_urls=[{start_server(ctx)}]", "sampling.temperature=1.0"]

    def resume_ok(ctx: Ctx) -> list[str]:
        copy_run(ctx)
        return ["generate", "run.yaml", f"engine.base_urls=[{start_server(ctx)}]"]

    def repair(ctx: Ctx) -> list[str]:
        copy_run(ctx)
        shard = shards(ctx.dir / "run")[0]
        shard.write_bytes(shard.read_bytes()[:100])
        ctx.vars["damaged"] = shard.name
        return ["generate", "run.yaml", f"engine.base_urls=[{start_server(ctx)}]", "repair=true"]

    def repaired(ctx: Ctx, result: Result) -> str | None:
        kept = list((ctx.dir / "run" / "traces" / "damaged").glob("*"))
        if not kept:
            return "the damaged shard was not kept in traces/damaged/"
        return traces_truthful(ctx, result)

    def lock_held(ctx: Ctx) -> list[str]:
        write_yaml(ctx.dir / "run.yaml", generate_config(ctx, start_server(ctx)))
        hold_lock(ctx, ctx.dir / "run", "generate")
        return ["generate", "run.yaml"]

    def nothing_requested(ctx: Ctx, result: Result) -> str | None:
        server = ctx.vars.get("server")
        return f"{len(server.requests)} requests sent before refusing" if server and server.requests else None

    def intact_resume(ctx: Ctx, result: Result) -> str | None:
        return traces_truthful(ctx, result) or nothing_requested(ctx, result)

    resume_files = ("run/manifest.json", "run/config.yaml", "run/generate_summary.json", "run/log.txt")
    probes += [
        Probe("resume-prompt-edited-in-place", edited, needle=("edited|differently|changed",), post=nothing_requested,
              may_change=resume_files),
        Probe("resume-shards-without-manifest", no_manifest, needle=("manifest",), post=nothing_requested,
              may_change=resume_files),
        Probe("resume-other-temperature", other_temperature, needle=("temperature",), post=nothing_requested,
              may_change=resume_files),
        Probe("resume-unchanged-is-a-no-op", resume_ok, expect="succeed", post=intact_resume, may_change=resume_files),
        Probe("generate-repair-damaged-shard", repair, expect="succeed", post=repaired,
              may_change=resume_files + ("run/traces/shard-*",)),
        Probe("generate-two-at-once", lock_held, exit_code=None, needle=("{pid}", "run")),
    ]
    return probes


# ----------------------------------------------------------------------------------------------------------------
# Generation faults from a fake server


def choices(message: dict | None = None, n: int = N_SAMPLES, **choice) -> list:
    body = {"index": 0, "finish_reason": "stop", **choice}
    if message is not None:
        body["message"] = message
    return [{**body, "index": i} for i in range(n)]


USAGE = {"prompt_tokens": 10, "completion_tokens": 5}
ANSWER = "<think>\nok\n</think>\n\n\\boxed{2}"


def fault_probe(pid: str, fault, expect: str = "refuse", first_per_prompt=None, post=traces_truthful,
                exit_code: int | None = 1, needle: tuple[str, ...] = ("failed",), **extra) -> Probe:
    def build(ctx: Ctx) -> list[str]:
        faults = [fault] * 200 if fault is not None else None
        url = start_server(ctx, faults=faults, first_per_prompt=first_per_prompt)
        write_yaml(ctx.dir / "run.yaml", generate_config(ctx, url, **extra))
        return ["generate", "run.yaml"]
    return Probe(pid, build, expect=expect, exit_code=exit_code, needle=needle, post=post)


def joined_parts(ctx: Ctx, result: Result) -> str | None:
    problem = all_ok(ctx, result)
    if problem:
        return problem
    responses = {r["response"] for r in latest(ctx.dir / "run").values()}
    return None if responses == {"<think>\nok\n</think>\n\nThe answer is 2."} else f"responses stored as {responses}"


def fault_probes() -> list[Probe]:
    parts = [{"type": "text", "text": "<think>\nok\n</think>\n\n"}, {"type": "text", "text": "The answer is 2."}]
    return [
        fault_probe("fault-content-null", {"choices": choices({"role": "assistant", "content": None}), "usage": USAGE}),
        fault_probe("fault-content-number", {"choices": choices({"role": "assistant", "content": 42}), "usage": USAGE}),
        fault_probe("fault-content-dict", {"choices": choices({"role": "assistant", "content": {"x": 1}}),
                                           "usage": USAGE}),
        fault_probe("fault-content-list-of-parts", {"choices": choices({"role": "assistant", "content": parts}),
                                                    "usage": USAGE}, expect="succeed", post=joined_parts),
        fault_probe("fault-usage-as-strings", {"choices": choices({"role": "assistant", "content": ANSWER}),
                                               "usage": {"prompt_tokens": "10", "completion_tokens": "5"}},
                    expect="either"),
        fault_probe("fault-usage-beyond-int32", {"choices": choices({"role": "assistant", "content": ANSWER}),
                                                 "usage": {"prompt_tokens": 2**40, "completion_tokens": 2**35}},
                    expect="either"),
        fault_probe("fault-usage-negative", {"choices": choices({"role": "assistant", "content": ANSWER}),
                                             "usage": {"prompt_tokens": -5, "completion_tokens": -1}}, expect="either"),
        fault_probe("fault-missing-choices", {"usage": USAGE}),
        fault_probe("fault-choices-not-a-list", {"choices": "oops", "usage": USAGE}),
        fault_probe("fault-choice-without-message", {"choices": choices(None), "usage": USAGE}),
        fault_probe("fault-choice-is-a-string", {"choices": ["hello", "world"], "usage": USAGE}),
        fault_probe("fault-finish-reason-number", {"choices": choices({"role": "assistant", "content": ANSWER},
                                                                       finish_reason=7), "usage": USAGE},
                    expect="either"),
        fault_probe("fault-zero-byte-always", "zero"),
        fault_probe("fault-zero-byte-first-then-ok", None, expect="succeed", first_per_prompt="zero", post=all_ok),
        fault_probe("fault-body-not-json", b"<html>bad gateway</html>"),
        fault_probe("fault-body-json-array", b"[1, 2, 3]"),
        fault_probe("fault-body-json-null", b"null"),
        fault_probe("fault-one-choice-short", "short"),
        fault_probe("fault-500-always", "500"),
        fault_probe("fault-content-null-allowed-by-fraction", None, expect="succeed",
                    first_per_prompt={"choices": choices({"role": "assistant", "content": None}), "usage": USAGE},
                    post=lambda ctx, r: traces_truthful(ctx, r, failures_allowed=True), max_failed_fraction=1.0),
        fault_down_probe(),
    ]


def fault_down_probe() -> Probe:
    def build(ctx: Ctx) -> list[str]:
        write_yaml(ctx.dir / "run.yaml", generate_config(ctx))  # a closed port: every request refused
        return ["generate", "run.yaml"]
    return Probe("fault-server-down", build, exit_code=1, needle=("failed",), post=traces_truthful)


# ----------------------------------------------------------------------------------------------------------------
# curate


def curate_probe(pid: str, damage: Callable[[Ctx], None] | None = None, answers: bool = True, expect: str = "refuse",
                 exit_code: int | None = 2, needle: tuple[str, ...] = (), post=None, lock: bool = False,
                 **extra) -> Probe:
    def build(ctx: Ctx) -> list[str]:
        copy_run(ctx, answers, **extra)
        ctx.vars["shard"] = shards(ctx.dir / "run")[0].name
        if damage:
            damage(ctx)
        if lock:
            hold_lock(ctx, ctx.dir / "run" / "curated", "curate")
        return ["curate", "run.yaml"]
    return Probe(pid, build, expect=expect, exit_code=exit_code, needle=needle, post=post)


def first_shard(ctx: Ctx) -> Path:
    return ctx.dir / "run" / "traces" / ctx.vars["shard"]


def truncate(ctx: Ctx) -> None:
    data = first_shard(ctx).read_bytes()
    first_shard(ctx).write_bytes(data[: len(data) // 2])


def drop_column(name: str) -> Callable[[Ctx], None]:
    def damage(ctx: Ctx) -> None:
        table = pq.read_table(first_shard(ctx))
        pq.write_table(table.drop_columns([name]), first_shard(ctx))
    return damage


def curation(ctx: Ctx) -> dict:
    return json.loads((ctx.dir / "run" / "curated" / "curation.json").read_text())


def curated_all(ctx: Ctx, result: Result) -> str | None:
    try:
        summary = curation(ctx)
    except (OSError, ValueError) as exc:
        return f"no curation.json: {exc}"
    want = len(PROMPTS) * N_SAMPLES
    return None if summary.get("traces") == want else f"curation.json counts {summary.get('traces')} traces of {want}"


def no_reference(ctx: Ctx, result: Result) -> str | None:
    problem = curated_all(ctx, result)
    if problem:
        return problem
    summary = curation(ctx)
    if summary["accepted"]:
        return f"{summary['accepted']} traces without a reference answer accepted"
    return None if "no reference" in summary["rejected_by_reason"] else \
        f"rejected for {summary['rejected_by_reason']}, not 'no reference'"


def unverified_counted(ctx: Ctx, result: Result) -> str | None:
    problem = curated_all(ctx, result)
    if problem:
        return problem
    summary = curation(ctx)
    if summary.get("accepted_unverified") != summary["accepted"] or not summary["accepted"]:
        return f"accepted {summary['accepted']}, counted unverified {summary.get('accepted_unverified')}"
    return None


def curate_probes() -> list[Probe]:
    shard = "{shard}"

    def not_parquet(ctx: Ctx) -> None:
        write(ctx.dir / "run" / "traces" / "shard-000099.parquet", "not a parquet file\n")
        ctx.vars["shard"] = "shard-000099.parquet"

    def no_traces(ctx: Ctx) -> list[str]:
        prompts = write(ctx.dir / "prompts.jsonl", jsonl(PROMPTS))
        write_yaml(ctx.dir / "run.yaml", generate_config(ctx, prompts=prompts))
        return ["curate", "run.yaml"]

    def other_output(ctx: Ctx) -> None:
        write(ctx.dir / "run" / "mydata" / "notes.txt", "my own notes\n")

    return [
        curate_probe("curate-baseline", expect="succeed", post=curated_all),
        Probe("curate-traces-missing", no_traces, needle=("traces",)),
        curate_probe("curate-shard-truncated", truncate, exit_code=None, needle=(shard,)),
        curate_probe("curate-shard-zero-bytes", lambda ctx: first_shard(ctx).write_bytes(b""), exit_code=None,
                     needle=(shard,)),
        curate_probe("curate-shard-not-parquet", not_parquet, exit_code=None, needle=(shard,)),
        curate_probe("curate-shard-without-prompt_id", drop_column("prompt_id"), exit_code=None,
                     needle=(shard, "prompt_id")),
        curate_probe("curate-shard-without-status", drop_column("status"), exit_code=None, needle=(shard, "status")),
        curate_probe("curate-shard-without-response", drop_column("response"), exit_code=None,
                     needle=(shard, "response")),
        curate_probe("curate-output-is-traces", curate__output="traces", needle=("curate.output",)),
        curate_probe("curate-output-is-dotdot", curate__output="..", needle=("curate.output",)),
        curate_probe("curate-output-is-absolute", curate__output="/tmp/probe-curated", needle=("curate.output",)),
        curate_probe("curate-output-is-empty", curate__output="", needle=("curate.output",)),
        curate_probe("curate-output-holds-other-files", other_output, curate__output="mydata",
                     needle=("curate.output",)),
        curate_probe("curate-no-answer-verifier-math", answers=False, expect="succeed", post=no_reference,
                     curate__verifier="math"),
        curate_probe("curate-no-answer-verifier-auto", answers=False, expect="succeed", post=no_reference,
                     curate__verifier="auto"),
        curate_probe("curate-no-answer-accept-unverified", answers=False, expect="succeed", post=unverified_counted,
                     curate__verifier="math", curate__accept_unverified=True),
        curate_probe("curate-two-at-once", exit_code=None, needle=("{pid}",), lock=True),
    ]


# ----------------------------------------------------------------------------------------------------------------
# verify-code and score


PASSING = {"code": "print(int(input()) * 2)", "tests": [{"input": "2\n", "output": "4\n", "testtype": "stdin"}]}


def verdict_lines(ctx: Ctx, result: Result, out: str | None = None) -> list[dict]:
    text = (ctx.dir / out).read_text() if out else result.stdout
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def bad_item_verdict(ctx: Ctx, result: Result) -> str | None:
    """Three lines, the middle one bad: three verdicts, the middle an error, the others passed."""
    try:
        verdicts = verdict_lines(ctx, result)
    except ValueError as exc:
        return f"stdout is not JSON verdicts: {exc}"
    if len(verdicts) != 3:
        return f"{len(verdicts)} verdicts for 3 lines"
    if verdicts[1].get("passed") or verdicts[1].get("status") != "error":
        return f"line 2 (bad item) got {verdicts[1]}"
    if not (verdicts[0].get("passed") and verdicts[2].get("passed")):
        return f"the good lines got {verdicts[0]}, {verdicts[2]}"
    return None


def verify_probe(pid: str, middle: Any, expect: str = "refuse", needle: tuple[str, ...] = (), post=None,
                 flags: Callable[[Ctx], list[str]] | None = None, exit_code: int | None = 2) -> Probe:
    def build(ctx: Ctx) -> list[str]:
        lines = [json.dumps(PASSING).encode(), middle if isinstance(middle, bytes) else json.dumps(middle).encode(),
                 json.dumps(PASSING).encode()]
        write(ctx.dir / "in.jsonl", b"\n".join(lines) + b"\n")
        return ["verify-code", "in.jsonl", *(flags(ctx) if flags else [])]
    return Probe(pid, build, expect=expect, needle=needle, post=post, exit_code=exit_code, timeout=90)


def out_link(kind: str) -> Callable[[Ctx], list[str]]:
    def flags(ctx: Ctx) -> list[str]:
        if kind == "same":
            return ["--out", "in.jsonl"]
        if kind == "symlink":
            os.symlink("in.jsonl", ctx.dir / "out.jsonl")
        elif kind == "hardlink":
            os.link(ctx.dir / "in.jsonl", ctx.dir / "out.jsonl")
        elif kind == "dotted":
            (ctx.dir / "sub").mkdir()
            return ["--out", "sub/../in.jsonl"]
        elif kind == "directory":
            (ctx.dir / "out.jsonl").mkdir()
        return ["--out", "out.jsonl"]
    return flags


def verify_probes() -> list[Probe]:
    test = PASSING["tests"][0]
    return [
        verify_probe("verify-baseline", PASSING, expect="succeed",
                     post=lambda ctx, r: None if [v.get("passed") for v in verdict_lines(ctx, r)] == [True] * 3
                     else f"verdicts {verdict_lines(ctx, r)}"),
        verify_probe("verify-non-utf8-line-2", b'{"code": "print(\'caf\xe9\')", "tests": []}', needle=("in.jsonl:2",)),
        verify_probe("verify-bad-json-line-2", b'{"code": "print(1)", "tests": [', needle=("in.jsonl:2",)),
        verify_probe("verify-line-2-is-a-list", [1, 2], needle=("in.jsonl:2",)),
        verify_probe("verify-line-2-without-tests", {"code": "print(1)"}, needle=("in.jsonl:2", "tests")),
        verify_probe("verify-code-as-integer", {"code": 5, "tests": [test]}, expect="succeed", post=bad_item_verdict),
        verify_probe("verify-tests-are-integers", {"code": "print(1)", "tests": [1, 2]}, expect="succeed",
                     post=bad_item_verdict),
        verify_probe("verify-mixed-test-types", {"code": "print(4)", "tests": [test, "assert True", 3]},
                     expect="succeed", post=bad_item_verdict),
        verify_probe("verify-tests-a-dict", {"code": "print(4)", "tests": {"input": "2\n"}}, expect="succeed",
                     post=bad_item_verdict),
        verify_probe("verify-starter-code-number", {"code": "print(4)", "tests": [test], "starter_code": 7},
                     expect="succeed", post=bad_item_verdict),
        verify_probe("verify-out-is-input", PASSING, needle=("--out",), flags=out_link("same")),
        verify_probe("verify-out-symlink-to-input", PASSING, needle=("--out",), flags=out_link("symlink")),
        verify_probe("verify-out-hardlink-to-input", PASSING, needle=("--out",), flags=out_link("hardlink")),
        verify_probe("verify-out-dotted-path-to-input", PASSING, needle=("--out",), flags=out_link("dotted")),
        verify_probe("verify-out-is-a-directory", PASSING, needle=("--out|out.jsonl",), flags=out_link("directory")),
        verify_probe("verify-timeout-zero", PASSING, needle=("--timeout",), flags=lambda ctx: ["--timeout", "0"]),
        verify_probe("verify-timeout-negative", PASSING, needle=("--timeout",), flags=lambda ctx: ["--timeout", "-1"]),
        verify_probe("verify-timeout-nan", PASSING, needle=("--timeout",), flags=lambda ctx: ["--timeout", "nan"]),
        verify_probe("verify-timeout-not-a-number", PASSING, needle=("--timeout",),
                     flags=lambda ctx: ["--timeout", "ten"]),
        verify_probe("verify-memory-negative", PASSING, needle=("--memory-mb",), flags=lambda ctx: ["--memory-mb", "-1"]),
        verify_probe("verify-memory-zero", PASSING, needle=("--memory-mb",), flags=lambda ctx: ["--memory-mb", "0"]),
        Probe("verify-input-missing", lambda ctx: ["verify-code", "nope.jsonl"], needle=("nope.jsonl",)),
        Probe("verify-input-is-a-directory", lambda ctx: ["verify-code", str((ctx.dir / "d").mkdir() or "d")],
              needle=("d:", "director|not a file|not a regular file")),
    ]


GOOD_SCORE = [{"response": "<think>\nx\n</think>\n\n\\boxed{4}", "answer": "4"},
              {"response": "<think>\ny\n</think>\n\n\\boxed{5}", "answer": "6"},
              {"response": ["<think>\nz\n</think>\n\n\\boxed{9}", "<think>\nz\n</think>\n\n9"], "answer": 9}]


def scored(ctx: Ctx, result: Result, out: str = "in.verdicts.jsonl") -> str | None:
    path = ctx.dir / out
    if not path.is_file():
        return f"no {out}"
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return None if len(lines) == len(GOOD_SCORE) else f"{len(lines)} verdict lines for {len(GOOD_SCORE)} inputs"


def score_probe(pid: str, lines: list[bytes] | None = None, args: Callable[[Ctx], list[str]] | None = None,
                expect: str = "refuse", needle: tuple[str, ...] = (), post=None) -> Probe:
    def build(ctx: Ctx) -> list[str]:
        content = b"\n".join(lines) + b"\n" if lines is not None else jsonl(GOOD_SCORE).encode()
        write(ctx.dir / "in.jsonl", content if lines != [] else b"")
        return ["score", "in.jsonl", *(args(ctx) if args else [])]
    return Probe(pid, build, expect=expect, needle=needle, post=post, timeout=90)


def score_probes() -> list[Probe]:
    good = [json.dumps(row).encode() for row in GOOD_SCORE]
    return [
        score_probe("score-baseline", expect="succeed", post=scored),
        score_probe("score-workers-zero", args=lambda ctx: ["--workers", "0"], needle=("--workers",)),
        score_probe("score-workers-negative", args=lambda ctx: ["--workers", "-1"], needle=("--workers",)),
        score_probe("score-out-is-input", args=out_link("same"), needle=("--out",)),
        score_probe("score-out-symlink-to-input", args=out_link("symlink"), needle=("--out",)),
        score_probe("score-out-hardlink-to-input", args=out_link("hardlink"), needle=("--out",)),
        score_probe("score-out-is-a-directory", args=out_link("directory"), needle=("--out|out.jsonl",)),
        score_probe("score-bad-json-line-3", [good[0], good[1], b'{"response": "x", '], needle=("in.jsonl:3",)),
        score_probe("score-non-utf8-line-2", [good[0], b'{"response": "caf\xe9", "answer": "1"}', good[2]],
                    needle=("in.jsonl:2",)),
        score_probe("score-line-2-without-answer", [good[0], b'{"response": "x"}', good[2]],
                    needle=("in.jsonl:2", "answer")),
        score_probe("score-line-2-response-number", [good[0], b'{"response": 5, "answer": "5"}', good[2]],
                    needle=("in.jsonl:2", "response")),
        score_probe("score-line-2-answer-bool", [good[0], b'{"response": "x", "answer": true}', good[2]],
                    needle=("in.jsonl:2", "answer")),
        score_probe("score-line-2-is-a-list", [good[0], b"[1, 2]", good[2]], needle=("in.jsonl:2",)),
        score_probe("score-empty-file", [], needle=("in.jsonl",)),
        Probe("score-input-missing", lambda ctx: ["score", "nope.jsonl"], needle=("nope.jsonl",)),
        Probe("score-input-is-a-directory", lambda ctx: ["score", str((ctx.dir / "d").mkdir() or "d")],
              needle=("d:", "director|not a file|not a regular file")),
    ]


# ----------------------------------------------------------------------------------------------------------------
# serve


def serve_probe(pid: str, pid_file: Callable[[Ctx], str | bytes | None], expect: str = "refuse",
                needle: tuple[str, ...] = ("probe.pid",), post=None, extra: tuple[str, ...] = ("--stop",),
                env: dict | None = None, may_change: tuple[str, ...] = (), **overrides) -> Probe:
    def build(ctx: Ctx) -> list[str]:
        write_yaml(ctx.dir / "serve.yaml", {**base_serve(ctx), **overrides})
        content = pid_file(ctx)
        if content is not None:
            write(ctx.dir / "serve" / "probe.pid", content)
        if env is not None:
            ctx.vars["env"] = env
        return ["serve", "serve.yaml", *extra]
    return Probe(pid, build, expect=expect, needle=needle, post=post, timeout=60, may_change=may_change)


def proc_start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def serve_probes() -> list[Probe]:
    def sleeper_record(**change):
        def content(ctx: Ctx) -> str:
            pid = bystander(ctx).pid
            record = {"pid": pid, "start_time": proc_start_time(pid), "cmdline": ["vllm", "serve", "probe"], **change}
            return json.dumps(record) + "\n"
        return content

    def bare_sleeper(ctx: Ctx) -> str:
        return f"{bystander(ctx).pid}\n"

    unset = {k: v for k, v in ENV.items() if k != "PROBE_KEY_UNSET"}
    STALE = ("serve/probe.pid",)  # a PID file naming another process is stale: removing it is documented
    return [
        serve_probe("serve-stop-no-pid-file", lambda ctx: None, expect="succeed"),
        serve_probe("serve-stop-garbage-pid-file", lambda ctx: "not a pid at all\n"),
        serve_probe("serve-stop-empty-pid-file", lambda ctx: ""),
        serve_probe("serve-stop-non-utf8-pid-file", lambda ctx: b"\xff\xfe\x00garbage"),
        serve_probe("serve-stop-pid-zero", lambda ctx: json.dumps({"pid": 0, "start_time": 1, "cmdline": ["x"]})),
        serve_probe("serve-stop-pid-negative", lambda ctx: json.dumps({"pid": -1, "start_time": 1, "cmdline": ["x"]})),
        serve_probe("serve-stop-bare-pid-of-unrelated", bare_sleeper, post=sleeper_alive),
        serve_probe("serve-stop-record-of-unrelated-other-cmdline", sleeper_record(), expect="either",
                    post=sleeper_alive, may_change=STALE),
        serve_probe("serve-stop-record-of-unrelated-other-start", sleeper_record(start_time=1, cmdline=["sleep", "300"]),
                    expect="either", post=sleeper_alive, may_change=STALE),
        serve_probe("serve-bind-all-without-key", lambda ctx: None, extra=(), needle=("0.0.0.0", "api_key_env|API key"),
                    host="0.0.0.0"),
        serve_probe("serve-bind-all-key-env-unset", lambda ctx: None, extra=(), needle=("PROBE_KEY_UNSET",),
                    host="0.0.0.0", api_key_env="PROBE_KEY_UNSET", env=unset),
        serve_probe("serve-bind-ipv6-any-without-key", lambda ctx: None, extra=(), needle=("::", "api_key_env|API key"),
                    host="::"),
        serve_probe("serve-python-missing", lambda ctx: None, extra=(), needle=("python",)),
    ]


# ----------------------------------------------------------------------------------------------------------------
# train


SFT_ROWS = [{"messages": [{"role": "user", "content": f"{i}+{i}="}, {"role": "assistant", "content": f"{2 * i}"}]}
            for i in range(10)]
NO_WORLD = None if TOY_BASE.is_dir() else f"no toy world at {WORLD} (distill toy-world configs/toy-world.yaml)"


def train_probe(pid: str, data: bytes | str | None = None, needle: tuple[str, ...] = (), lock: bool = False,
                exit_code: int | None = 2, extra: tuple[str, ...] = (), **training) -> Probe:
    def build(ctx: Ctx) -> list[str]:
        cfg = base_student(ctx)
        if data is not None:
            write(ctx.dir / "sft.jsonl", data)
        cfg["training"].update(training)
        write_yaml(ctx.dir / "student.yaml", cfg)
        if lock:
            hold_lock(ctx, ctx.dir / "student", "train")
        return ["train", "student.yaml", *extra]
    return Probe(pid, build, needle=needle, exit_code=exit_code, timeout=240, skip=NO_WORLD)


def train_probes() -> list[Probe]:
    rows = [json.dumps(r) for r in SFT_ROWS]
    bad6 = "\n".join(rows[:5] + ['{"messages": [{"role": "user", "content": "x"}'] + rows[6:]) + "\n"
    role6 = "\n".join(rows[:5] + [json.dumps({"messages": [{"content": "x"}, {"role": "assistant", "content": "y"}]})]
                      + rows[6:]) + "\n"
    no_assistant6 = "\n".join(rows[:5] + [json.dumps({"messages": [{"role": "user", "content": "x"}]})] + rows[6:]) + "\n"
    latin3 = ("\n".join(rows[:2]) + "\n").encode() + \
        b'{"messages": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "1"}]}\n' + \
        ("\n".join(rows[3:]) + "\n").encode()
    return [
        train_probe("train-sft-bad-json-line-6", bad6, needle=("sft.jsonl:6",)),
        train_probe("train-sft-bad-role-line-6", role6, needle=("sft.jsonl:6",)),
        train_probe("train-sft-no-assistant-line-6", no_assistant6, needle=("sft.jsonl:6",)),
        train_probe("train-sft-non-utf8-line-3", latin3, needle=("sft.jsonl:3", "UTF-8|utf-8")),
        train_probe("train-sft-empty-file", "", needle=("sft.jsonl", "empty|no rows|no data|no examples")),
        train_probe("train-sft-no-messages-column", jsonl([{"text": "hello"}] * 3), needle=("messages",)),
        train_probe("train-liger-not-installed", use_liger_kernel=True, needle=("liger",)),
        train_probe("train-two-at-once", lock=True, exit_code=None, needle=("{pid}",)),
        Probe("train-model-missing", lambda ctx: ["train", write_yaml(ctx.dir / "student.yaml", set_path(
            base_student(ctx), ("model", "name_or_path"), str(ctx.dir / "no-model"))).name],
            needle=("model.name_or_path",), timeout=240),
    ]


# ----------------------------------------------------------------------------------------------------------------
# report and eval


EVAL_TEACHER, EVAL_STUDENT = EVAL_RUNS / "toy-teacher", EVAL_RUNS / "toy-student-curated"
NO_EVAL_RUNS = None if (EVAL_TEACHER / "results.json").is_file() and (EVAL_STUDENT / "results.json").is_file() else \
    f"no eval runs to report on in {EVAL_RUNS} (make demo writes them)"


def report_inputs(ctx: Ctx, **extra) -> dict:
    shutil.copytree(EVAL_TEACHER, ctx.dir / "evals" / "teacher")
    shutil.copytree(EVAL_STUDENT, ctx.dir / "evals" / "student")
    cfg = {"run_dir": str(ctx.dir / "report"), "teacher": {"eval_dir": str(ctx.dir / "evals" / "teacher")},
           "students": [{"eval_dir": str(ctx.dir / "evals" / "student")}], "bootstrap": {"resamples": 200}, **extra}
    write_yaml(ctx.dir / "report.yaml", cfg)
    return cfg


def report_probe(pid: str, prepare: Callable[[Ctx], None] | None = None, expect: str = "refuse",
                 needle: tuple[str, ...] = ("run_dir",), post=None, exit_code: int | None = 2, **extra) -> Probe:
    def build(ctx: Ctx) -> list[str]:
        report_inputs(ctx, **{k: (v.format(dir=ctx.dir) if isinstance(v, str) else v) for k, v in extra.items()})
        if prepare:
            prepare(ctx)
        return ["report", "report.yaml"]
    return Probe(pid, build, expect=expect, needle=needle, post=post, exit_code=exit_code, timeout=120,
                 skip=NO_EVAL_RUNS)


def report_probes() -> list[Probe]:
    def my_files(ctx: Ctx) -> None:
        write(ctx.dir / "mine" / "thesis.tex", "six years of work\n")

    def bad_results(ctx: Ctx) -> None:
        write(ctx.dir / "evals" / "teacher" / "results.json", "{not json")

    def locked(ctx: Ctx) -> None:
        hold_lock(ctx, ctx.dir / "report", "report")

    return [
        report_probe("report-baseline", expect="succeed",
                     post=lambda ctx, r: None if (ctx.dir / "report" / "report.html").is_file() else "no report.html"),
        report_probe("report-out-dir-holds-other-files", my_files, run_dir="{dir}/mine"),
        report_probe("report-out-dir-is-an-eval-run", run_dir="{dir}/evals/teacher"),
        report_probe("report-out-dir-is-cwd", run_dir="."),
        report_probe("report-teacher-results-not-json", bad_results, needle=("results.json",)),
        report_probe("report-teacher-dir-missing", needle=("no-such-eval",), teacher={"eval_dir": "no-such-eval"}),
        report_probe("report-two-at-once", locked, exit_code=None, needle=("{pid}",)),
    ]


def eval_probes() -> list[Probe]:
    def suite(change: Callable[[Ctx, dict], None]) -> Callable[[Ctx], list[str]]:
        def build(ctx: Ctx) -> list[str]:
            cfg = base_suite(ctx)
            change(ctx, cfg)
            write_yaml(ctx.dir / "suite.yaml", cfg)
            return ["eval", "suite.yaml"]
        return build

    def bench(**kv):
        return lambda ctx, cfg: cfg["benchmarks"][0].update(kv)

    def bad_task(ctx: Ctx, cfg: dict) -> None:
        write(ctx.dir / "task.yaml", b"task: probe\ndataset_path: caf\xe9\n")
        cfg["benchmarks"][0]["task"] = str(ctx.dir / "task.yaml")

    def model_dir_without_config(ctx: Ctx, cfg: dict) -> None:
        (ctx.dir / "model").mkdir()
        cfg["model"]["name_or_path"] = str(ctx.dir / "model")

    return [
        Probe("eval-unknown-task", suite(bench(task="no_such_task")), needle=("no_such_task",), timeout=90),
        Probe("eval-code-task-without-unsafe-code", suite(bench(task="distill_humaneval")), needle=("unsafe_code",),
              timeout=90),
        Probe("eval-data-files-missing", suite(bench(data_files="nope.jsonl")), needle=("nope.jsonl",), timeout=90),
        Probe("eval-task-yaml-non-utf8", suite(bad_task), needle=("task.yaml",), timeout=90),
        Probe("eval-no-benchmarks", suite(lambda ctx, cfg: cfg.update(benchmarks=[])), needle=("benchmarks",),
              timeout=90),
        Probe("eval-duplicate-benchmark-names",
              suite(lambda ctx, cfg: cfg["benchmarks"].append(dict(cfg["benchmarks"][0]))), needle=("toy",), timeout=90),
        Probe("eval-openai-without-base-url", suite(lambda ctx, cfg: cfg["model"].update(engine="openai")),
              needle=("base_url",), timeout=90),
        Probe("eval-model-dir-without-config", suite(model_dir_without_config), needle=("config.json",), timeout=90),
    ]


# ----------------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------------
# mix, prompts, plan and the curation judge (the data recipe and the plan: issues 15 and 16)


def base_mix(ctx: Ctx) -> dict:
    a = write(ctx.dir / "a.jsonl", jsonl(SFT_ROWS))
    b = write(ctx.dir / "b.jsonl", jsonl(SFT_ROWS[:4]))
    return {"name": "probe-mix", "run_dir": str(ctx.dir / "mix"),
            "data": {"sources": [{"name": "a", "source": str(a), "weight": 0.6}, {"name": "b", "source": str(b), "weight": 0.4}]}}


POOL_ROWS = [{"id": f"q{i}", "problem": f"Find the sum of {i} and {i + 1}.", "answer": str(2 * i + 1)} for i in range(6)]


def base_pool(ctx: Ctx) -> dict:
    src = write(ctx.dir / "src.jsonl", jsonl(POOL_ROWS))
    return {"name": "probe-pool", "run_dir": str(ctx.dir / "pool"),
            "sources": [{"name": "a", "source": str(src), "fields": {"id": "id", "problem": "problem", "answer": "answer"}}]}


STAGES += [
    Stage("mix", base_mix, "name", (("data", "sources", 0, "wieght"), 0.5), (("shard_rows",), "many"),
          (("data", "sources", 1, "samples"), -3), timeout=90),
    Stage("prompts", base_pool, "name", (("near", "threshhold"), 0.7), (("near", "threshold"), "high"),
          (("sources", 0, "limit"), -1), timeout=90),
    Stage("plan", base_student, "student recipe", (("training", "learning_rat"), 1e-4), (("training", "max_length"), "long"),
          (("training", "per_device_train_batch_size"), -2), timeout=120),
]


def config_file(command: str, base: Callable[[Ctx], dict], *args: str, **changes) -> Callable[[Ctx], list[str]]:
    """Build: `base`'s config with `changes` (dotted path "a.b.0.c" -> value; None removes the key) as config.yaml."""
    def build(ctx: Ctx) -> list[str]:
        cfg = base(ctx)
        for dotted_path, value in changes.items():
            path = tuple(int(p) if p.isdigit() else p for p in dotted_path.split("."))
            if value is None:
                node = cfg
                for part in path[:-1]:
                    node = node[part]
                node.pop(path[-1], None)
            else:
                set_path(cfg, path, value)
        write_yaml(ctx.dir / "config.yaml", cfg)
        return [command, "config.yaml", *args]
    return build


def mixed_rows(ctx: Ctx, result: Result) -> str | None:
    try:
        summary = json.loads((ctx.dir / "mix" / "mixture.json").read_text())
    except (OSError, ValueError) as exc:
        return f"no mixture.json: {exc}"
    rows = {s["name"]: s["rows"] for s in summary["sources"]}
    # The largest 60/40 mix that repeats no row: b's 4 rows are 40% of 10.
    return None if rows == {"a": 6, "b": 4} else f"mixture.json counts {rows}, expected a 6, b 4"


def pooled_rows(ctx: Ctx, result: Result) -> str | None:
    path = ctx.dir / "pool" / "prompts.jsonl"
    if not path.is_file():
        return "no prompts.jsonl"
    kept = [json.loads(line) for line in path.read_text().splitlines()]
    return None if len(kept) == len(POOL_ROWS) else f"prompts.jsonl holds {len(kept)} of {len(POOL_ROWS)} distinct problems"


def judged_all(ctx: Ctx, result: Result) -> str | None:
    """The fake server's answers hold no `Score: N`: every trace is rejected by the judge, with that reason."""
    problem = curated_all(ctx, result)
    if problem:
        return problem
    summary = curation(ctx)
    reasons = summary["rejected_by_reason"]
    if summary["accepted"] or not any(r.startswith("judge") for r in reasons):
        return f"accepted {summary['accepted']}, rejected for {reasons}: not the judge's unreadable answers"
    return None


def solved_run(**curate) -> Callable[[Ctx], list[str]]:
    """Build: a generation whose traces are right (the fake server echoes the prompt's start, here a boxed answer),
    so that curation gets past the verifier to what `curate` sets."""
    def build(ctx: Ctx) -> list[str]:
        url = start_server(ctx)
        prompts = write(ctx.dir / "prompts.jsonl", jsonl([{"id": f"s{i}", "problem": f"\\boxed{{{i}}} is it?",
                                                           "answer": str(i)} for i in range(1, 3)]))
        cfg = generate_config(ctx, url, prompts)
        write_yaml(ctx.dir / "run.yaml", cfg)
        done = run_cli(ctx, ["generate", "run.yaml"], 120)
        if done.rc != 0:
            raise RuntimeError(f"generation for the probe failed: {last_line(done)}")
        cfg["curate"].update(curate)
        write_yaml(ctx.dir / "run.yaml", cfg)
        return ["curate", "run.yaml"]
    return build


def recipe_probes() -> list[Probe]:
    def source_dir_as_out(ctx: Ctx) -> list[str]:
        cfg = base_mix(ctx)
        cfg["run_dir"] = str(ctx.dir)  # the directory that holds the sources (and this config)
        write_yaml(ctx.dir / "config.yaml", cfg)
        return ["mix", "config.yaml"]

    def pool_into_sources(ctx: Ctx) -> list[str]:
        cfg = base_pool(ctx)
        cfg["run_dir"] = str(ctx.dir)
        write_yaml(ctx.dir / "config.yaml", cfg)
        return ["prompts", "config.yaml"]

    def locked(command: str, base: Callable[[Ctx], dict], stage: str) -> Callable[[Ctx], list[str]]:
        def build(ctx: Ctx) -> list[str]:
            cfg = base(ctx)
            write_yaml(ctx.dir / "config.yaml", cfg)
            hold_lock(ctx, Path(cfg["run_dir"]), stage)
            return [command, "config.yaml"]
        return build

    def pool_file(content: bytes | str, **fields) -> Callable[[Ctx], list[str]]:
        def build(ctx: Ctx) -> list[str]:
            cfg = base_pool(ctx)
            write(ctx.dir / "src.jsonl", content)
            cfg["sources"][0]["fields"].update(fields)
            write_yaml(ctx.dir / "config.yaml", cfg)
            return ["prompts", "config.yaml"]
        return build

    def damaged_mixture(ctx: Ctx) -> list[str]:
        mixed = ctx.dir / "mixed"
        write(mixed / "train.jsonl", jsonl([{**r, "source": "a"} for r in SFT_ROWS]))
        write(mixed / "mixture.json", '{"name": "x", "sources": "not a list"}\n')
        cfg = base_student(ctx)
        cfg["data"] = {"source": str(mixed)}
        write_yaml(ctx.dir / "student.yaml", cfg)
        return ["train", "student.yaml"]

    def judge(**extra):
        def build(ctx: Ctx) -> list[str]:
            url = start_server(ctx) if extra.pop("served", True) else f"http://127.0.0.1:{free_port()}/v1"
            judge_cfg = {"enabled": True, "model": "fake-judge", "base_urls": [url],
                         "engine": {"max_retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5,
                                    "all_down_timeout_s": 3, "health_check_interval_s": 0.2}}
            copy_run(ctx, False, curate__verifier="none", curate__judge=judge_cfg)
            return ["curate", "run.yaml"]
        return build

    def mix_over_its_input(ctx: Ctx) -> list[str]:
        cfg = base_mix(ctx)
        write_yaml(ctx.dir / "first.yaml", cfg)
        if run_cli(ctx, ["mix", "first.yaml"], 90).rc != 0:
            raise RuntimeError("the first mix failed")
        cfg["data"]["sources"][0]["source"] = cfg["run_dir"]  # reads the first mix, writes where it lies
        write_yaml(ctx.dir / "config.yaml", cfg)
        return ["mix", "config.yaml"]

    def pool_over_its_input(ctx: Ctx) -> list[str]:
        cfg = base_pool(ctx)
        write_yaml(ctx.dir / "first.yaml", cfg)
        if run_cli(ctx, ["prompts", "first.yaml"], 90).rc != 0:
            raise RuntimeError("the first pool failed")
        cfg["sources"][0]["source"] = str(Path(cfg["run_dir"]) / "prompts.jsonl")
        write_yaml(ctx.dir / "config.yaml", cfg)
        return ["prompts", "config.yaml"]

    rows = [json.dumps(r) for r in POOL_ROWS]
    bad_line_3 = "\n".join(rows[:2] + ['{"id": "q9", "problem": '] + rows[2:]) + "\n"
    latin_line_2 = (rows[0] + "\n").encode() + b'{"id": "q8", "problem": "caf\xe9", "answer": "1"}\n'
    repeated_id = jsonl(POOL_ROWS + [{**POOL_ROWS[0], "problem": "Another problem, same id."}])
    no_messages = lambda ctx: write(ctx.dir / "b.jsonl", jsonl([{"text": "hello"}] * 3))  # noqa: E731

    def with_prepare(prepare, build):
        def both(ctx: Ctx) -> list[str]:
            args = build(ctx)
            prepare(ctx)
            return args
        return both

    return [
        Probe("mix-baseline", config_file("mix", base_mix), expect="succeed", post=mixed_rows, timeout=90),
        Probe("mix-all-zero-weights", config_file("mix", base_mix, **{"data.sources.0.weight": 0, "data.sources.1.weight": 0}),
              needle=("weight",), timeout=90),
        Probe("mix-weight-and-samples", config_file("mix", base_mix, **{"data.sources.0.samples": 3}),
              needle=("data.sources.0",), timeout=90),
        Probe("mix-source-missing", config_file("mix", base_mix, **{"data.sources.1.source": "no-such.jsonl"}),
              needle=("no-such.jsonl",), timeout=90),
        Probe("mix-source-without-messages", with_prepare(no_messages, config_file("mix", base_mix)),
              needle=("messages",), timeout=90),
        Probe("mix-one-source-only", config_file("mix", base_mix, **{"data.sources": None, "data.source": "a.jsonl"}),
              needle=("data",), timeout=90),
        Probe("mix-run-dir-holds-its-sources", source_dir_as_out, needle=("run_dir",), timeout=90),
        Probe("mix-run-dir-is-an-earlier-mix-it-reads", mix_over_its_input, needle=("run_dir", "data.sources.0.source"),
              timeout=90),
        Probe("mix-two-at-once", locked("mix", base_mix, "mix"), exit_code=None, needle=("{pid}",), timeout=90),
        Probe("train-damaged-mixture-json", damaged_mixture, needle=("mixture.json",), timeout=240, skip=NO_WORLD),
        Probe("pool-baseline", config_file("prompts", base_pool), expect="succeed", post=pooled_rows, timeout=90),
        Probe("pool-source-missing", config_file("prompts", base_pool, **{"sources.0.source": "no-such.jsonl"}),
              needle=("no-such.jsonl",), timeout=90),
        Probe("pool-bad-json-line-3", pool_file(bad_line_3), needle=("src.jsonl", "3"), timeout=90),
        Probe("pool-non-utf8-line-2", pool_file(latin_line_2), needle=("src.jsonl", "UTF-8|utf-8"), timeout=90),
        Probe("pool-repeated-id", pool_file(repeated_id), needle=("sources.0.fields.id",), timeout=90),
        Probe("pool-unmapped-column", pool_file(jsonl(POOL_ROWS), problem="question"), needle=("question",), timeout=90),
        Probe("pool-unknown-schema-field", config_file("prompts", base_pool, **{"sources.0.fields.solution": "answer"}),
              needle=("sources.0.fields",), timeout=90),
        Probe("pool-run-dir-holds-its-sources", pool_into_sources, needle=("run_dir",), timeout=90),
        Probe("pool-run-dir-is-the-pool-it-reads", pool_over_its_input, needle=("run_dir", "sources.0.source"), timeout=90),
        Probe("pool-two-at-once", locked("prompts", base_pool, "prompts"), exit_code=None, needle=("{pid}",), timeout=90),
        Probe("plan-student-baseline", config_file("plan", base_student), expect="succeed", timeout=120, skip=NO_WORLD),
        Probe("plan-unknown-gpu", config_file("plan", base_student, "--gpu", "X900"), needle=("X900",), timeout=120),
        Probe("plan-zero-nodes", config_file("plan", base_student, "--nodes", "0"), needle=("nodes",), timeout=120),
        Probe("plan-neither-kind", lambda ctx: ["plan", write_yaml(ctx.dir / "config.yaml", {"name": "x"}).name],
              needle=("student recipe", "generation run"), timeout=120),
        # A plan may come before its prompts exist (distill prompts writes them later): priced per prompt, it says so.
        Probe("plan-generation-prompts-not-made-yet", config_file("plan", base_generate, **{"prompts.source": "later.jsonl"}),
              expect="succeed", post=lambda ctx, result: None if "--prompts" in result.stdout + result.stderr else
              "does not say how to give the prompt count", timeout=120),
        curate_probe("curate-judge-without-model", curate__judge={"enabled": True, "base_urls": ["http://127.0.0.1:9/v1"]},
                     needle=("curate.judge.model",)),
        curate_probe("curate-judge-without-endpoint", curate__judge={"enabled": True, "model": "judge"},
                     needle=("curate.judge.base_urls",)),
        curate_probe("curate-judge-rubric-without-response", needle=("curate.judge.rubric",),
                     curate__judge={"enabled": True, "model": "judge", "base_urls": ["http://127.0.0.1:9/v1"],
                                    "rubric": "Grade this."}),
        curate_probe("curate-judge-threshold-out-of-range", needle=("curate.judge.threshold",),
                     curate__judge={"enabled": True, "model": "judge", "base_urls": ["http://127.0.0.1:9/v1"],
                                    "threshold": 11}),
        Probe("curate-judge-unreadable-answers", judge(), expect="succeed", post=judged_all, timeout=120),
        Probe("curate-judge-server-down", judge(served=False), exit_code=None, needle=("curate.judge",), timeout=120),
        curate_probe("curate-pass-rate-band-inverted", curate__selection={"pass_rate": {"min": 0.9, "max": 0.1}},
                     needle=("curate.selection.pass_rate",)),
        curate_probe("curate-subset-zero-count", curate__selection={"subset": {"count": 0}},
                     needle=("curate.selection.subset.count",)),
        curate_probe("curate-student-filter-path-missing", needle=("curate.selection.student.model", "no-student"),
                     curate__selection={"student": {"model": "./no-student", "k": 1, "max_tokens": 8}}),
        Probe("curate-student-filter-hub-model-offline", solved_run(selection={"student": {
            "model": "probe-org/no-such-model", "k": 1, "max_tokens": 8}}), exit_code=None,
            needle=("probe-org/no-such-model",), timeout=180),
    ]


def all_probes() -> list[Probe]:
    probes = (config_probes() + prompt_probes() + fault_probes() + curate_probes() + verify_probes() + score_probes()
              + serve_probes() + train_probes() + report_probes() + eval_probes() + recipe_probes())
    probes.append(Probe("demo-make-demo-leaves-checkout-clean", lambda ctx: [], skip="not run: the demo takes ~19 min"))
    ids = [p.id for p in probes]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    return probes


BASE = Path(tempfile.gettempdir())


def main(argv: list[str] | None = None) -> int:
    global BASE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the probes whose id holds this substring")
    parser.add_argument("--list", action="store_true", help="list the probes and exit")
    parser.add_argument("--keep", action="store_true", help="keep each probe's temporary directory")
    args = parser.parse_args(argv)
    probes = [p for p in all_probes() if not args.only or args.only in p.id]
    if args.list:
        for p in probes:
            print(f"{p.id:<52} {p.expect:<8} {'skip: ' + p.skip if p.skip else ''}")
        return 0
    BASE = Path(tempfile.mkdtemp(prefix="distill-probes-"))
    counts: Counter = Counter()
    rows: list[tuple[str, str, str]] = []
    started = time.time()
    width = max(len(p.id) for p in probes) if probes else 10
    try:
        for p in probes:
            if p.skip:
                category, detail, seconds = "skipped", p.skip, 0.0
            else:
                category, detail, seconds = run_probe(p, BASE, args.keep)
            counts[category] += 1
            rows.append((p.id, category, detail))
            print(f"{p.id:<{width}}  {category:<20} {seconds:5.1f}s  {detail[:220]}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(BASE, ignore_errors=True)
    ran = sum(v for k, v in counts.items() if k not in ("skipped", "setup failed"))
    print(f"\n{'outcome':<22}{'probes':>7}")
    for category in CATEGORIES + ["setup failed", "skipped"]:
        if counts[category] or category in CATEGORIES:
            print(f"{category:<22}{counts[category]:>7}")
    print(f"{'total run':<22}{ran:>7}")
    print(f"{'total':<22}{len(probes):>7}   ({time.time() - started:.0f}s; probe directories under {BASE}"
          f"{', kept' if args.keep else ', removed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
