"""`distill serve --stop` signals only the server its recipe started (issue 13, item 7).

A real unrelated process (`sleep`) stands in for whatever took the PID recorded in the PID file."""

import json
import subprocess
import time

import pytest

from support import ROOT, run_cli
from distill.errors import UsageError
from distill.engines.serve import ServeConfig, identity, running, stop, write_pid_file

RECIPE = ROOT / "teacher" / "toy-cpu.yaml"


@pytest.fixture
def sleeper():
    """An unrelated process in its own session (as a server would be: its own process group)."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    while not identity(proc.pid)["cmdline"]:  # mid-exec for a moment after Popen returns
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait()


def alive(proc) -> bool:
    time.sleep(0.2)
    return proc.poll() is None


def config(tmp_path) -> ServeConfig:
    return ServeConfig(name="toy-cpu", model="toy/teacher", run_dir=str(tmp_path))


def test_a_bare_pid_of_an_unrelated_process_is_not_signalled(tmp_path, sleeper):
    (tmp_path / "toy-cpu.pid").write_text(str(sleeper.pid))  # the PID file as distill wrote it before
    done = run_cli("serve", RECIPE, f"run_dir={tmp_path}", "--stop", timeout=60)
    assert alive(sleeper)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "bare PID" in done.stderr


@pytest.mark.parametrize("differs", ["start_time", "cmdline", "boot_id"])
def test_a_pid_reused_by_an_unrelated_process_is_refused_and_the_stale_file_removed(tmp_path, sleeper, differs):
    record = {"pid": sleeper.pid, **identity(sleeper.pid)}
    record[differs] = {"start_time": record["start_time"] - 100, "boot_id": "another-boot",
                       "cmdline": ["vllm", "serve", "toy/teacher"]}[differs]
    pid_file = tmp_path / "toy-cpu.pid"
    pid_file.write_text(json.dumps(record))
    done = run_cli("serve", RECIPE, f"run_dir={tmp_path}", "--stop", timeout=60)
    assert alive(sleeper)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert f"pid {sleeper.pid} is not the server this recipe started" in done.stdout and "not signalled" in done.stdout
    assert not pid_file.exists()


@pytest.mark.parametrize("text", ["", "garbage\n", "{\"pid\": \"12\"}", "[1, 2]", "-5", "\xff\xfe"])
def test_a_garbage_pid_file_is_a_one_line_error(tmp_path, text):
    (tmp_path / "toy-cpu.pid").write_bytes(text.encode("latin-1"))
    done = run_cli("serve", RECIPE, f"run_dir={tmp_path}", "--stop", timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "toy-cpu.pid" in done.stderr
    with pytest.raises(UsageError, match="toy-cpu.pid"):
        stop(config(tmp_path))


def test_the_process_this_recipe_started_is_stopped(tmp_path):
    cfg = config(tmp_path)
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)  # what start() does, recorded as start() does
    write_pid_file(cfg, proc.pid)
    record = json.loads(cfg.pid_file.read_text())
    assert record["pid"] == proc.pid and record["cmdline"] == ["sleep", "60"] and record["start_time"] > 0
    assert running(cfg) == proc.pid
    assert stop(cfg, grace_s=5)
    assert proc.wait(timeout=10) != 0 and not cfg.pid_file.exists()


def test_a_server_that_exited_leaves_no_pid_file_behind(tmp_path):
    cfg = config(tmp_path)
    proc = subprocess.Popen(["true"])
    record = {"pid": proc.pid, **identity(proc.pid)} if identity(proc.pid) else {"pid": proc.pid, "start_time": 1,
                                                                                  "cmdline": ["true"]}
    proc.wait()
    cfg.pid_file.write_text(json.dumps(record))
    assert not stop(cfg) and not cfg.pid_file.exists()


def test_start_refuses_while_the_recorded_server_still_runs(tmp_path, sleeper):
    from distill.engines.serve import start

    cfg = config(tmp_path)
    write_pid_file(cfg, sleeper.pid)
    with pytest.raises(UsageError, match=f"already running .pid {sleeper.pid}"):
        start(cfg)
    assert alive(sleeper)


def test_the_pid_file_records_the_started_program_not_the_moment_mid_exec(tmp_path):
    """Popen returns while the child is still inside exec: its command line reads empty for a moment."""
    cfg = config(tmp_path)
    for _ in range(100):
        proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
        try:
            write_pid_file(cfg, proc.pid)
            assert json.loads(cfg.pid_file.read_text())["cmdline"] == ["sleep", "60"]
            assert running(cfg) == proc.pid
        finally:
            proc.kill()
            proc.wait()
