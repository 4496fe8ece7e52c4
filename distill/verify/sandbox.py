"""Run untrusted (model-written) programs: own network, PID, IPC and mount namespaces, an unprivileged
user, CPU-time / memory / process-count / file-size limits, a wall-clock timeout that kills the whole
namespace, a throwaway working directory and a clean environment.

Without namespaces the sandbox refuses, unless `allow_weak=True` (rlimits, timeout and a private
directory only; the program can then reach the network). `Sandbox` is the seam for a remote backend.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from distill.errors import DistillError

NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    processes: int = 64
    file_mb: int = 16
    open_files: int = 64
    output_bytes: int = 1 << 20  # stdout/stderr kept (the rest is cut)


DEFAULT_LIMITS = Limits()


@dataclass
class RunResult:
    status: str  # ok (exit 0) | error (non-zero exit) | timeout
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float


class Sandbox(Protocol):
    def run(self, files: dict[str, str], argv: list[str], stdin: str = "", limits: Limits = DEFAULT_LIMITS) -> RunResult: ...


class SandboxUnavailable(DistillError):
    """Namespaces cannot be created here; the message says what to do."""


@lru_cache(maxsize=1)
def namespace_prefix() -> tuple[str, ...] | None:
    """The `unshare` prefix that works on this machine (root, or a user namespace), or None."""
    unshare = shutil.which("unshare")
    setpriv = shutil.which("setpriv")
    if not unshare:
        return None
    common = ("--net", "--pid", "--ipc", "--uts", "--mount", "--fork", "--kill-child", "--mount-proc")
    candidates = []
    if os.geteuid() == 0 and setpriv:
        # Root: namespaces, then drop to nobody, who can neither write our files nor signal our processes.
        candidates.append((unshare, *common, setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"))
    candidates.append((unshare, "--user", "--map-root-user", *common, "--"))
    for prefix in candidates:
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.SubprocessError):
            continue
    return None


def _limit_child(limits: Limits):
    def apply() -> None:
        os.setsid()  # its own process group: the timeout kills all of it
        mb = 1 << 20
        for name, value in ((resource.RLIMIT_CPU, limits.cpu_s), (resource.RLIMIT_AS, limits.memory_mb * mb),
                            (resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_FSIZE, limits.file_mb * mb),
                            (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(name, (value, value))
    return apply


class LocalSandbox:
    def __init__(self, allow_weak: bool = False):
        self.prefix = namespace_prefix()
        if self.prefix is None and not allow_weak:
            raise SandboxUnavailable(
                "sandbox: cannot create network/PID namespaces here (unshare failed), so model-written code "
                "would run with network access; refusing. Run where namespaces work (root or user namespaces), "
                "or allow the weaker mode explicitly (curation.sandbox.allow_weak: true / --allow-weak-sandbox)")
        self.weak = self.prefix is None

    def run(self, files: dict[str, str], argv: list[str], stdin: str = "", limits: Limits = DEFAULT_LIMITS) -> RunResult:
        workdir = tempfile.mkdtemp(prefix="distill-sandbox-")
        try:
            for name, content in files.items():
                with open(os.path.join(workdir, name), "w", encoding="utf-8") as f:
                    f.write(content)
            if not self.weak:
                os.chown(workdir, NOBODY, NOBODY) if os.geteuid() == 0 else None
                for name in files:
                    os.chown(os.path.join(workdir, name), NOBODY, NOBODY) if os.geteuid() == 0 else None
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
                   "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
            command = [*(self.prefix or ()), *argv]
            start = time.perf_counter()
            proc = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, preexec_fn=_limit_child(limits))
            try:
                out, err = proc.communicate(stdin.encode(), timeout=limits.wall_s)
                status = "ok" if proc.returncode == 0 else "error"
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                out, err = proc.communicate()
                status = "timeout"
            finally:
                _kill_group(proc)  # background children that outlived the main program
            return RunResult(status, proc.returncode if status != "timeout" else None,
                             out[: limits.output_bytes].decode(errors="replace"),
                             err[: limits.output_bytes].decode(errors="replace"), time.perf_counter() - start)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def python_argv() -> list[str]:
    """The interpreter for sandboxed programs: isolated mode (no user site, no PYTHON* variables)."""
    return [sys.executable, "-I", "main.py"]
