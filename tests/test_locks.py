"""One writer per run directory: a second process stops at once, naming the holder; a dead holder frees it."""

import signal
import subprocess
import sys

import pytest

from support import ROOT, run_cli
from distill.locks import RunDirectoryBusy, lock_path
from distill.runs import Run
from distill.toy.world import ToyWorldConfig
from test_curate import GOOD, trace, write_run

HOLD = """
import sys, time
from distill import locks
locks.acquire(sys.argv[1], sys.argv[2])
print("held", flush=True)
time.sleep(600)
"""


def hold_in_another_process(directory, stage="generate") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), stage], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_with_the_holder_and_a_killed_holder_frees_the_directory(tmp_path):
    run_dir = tmp_path / "run"
    holder = hold_in_another_process(run_dir)
    try:
        with pytest.raises(RunDirectoryBusy, match=rf"{run_dir}: in use by distill generate \(PID {holder.pid} on "):
            Run(run_dir, "generate", ToyWorldConfig()).start()
        assert not (run_dir / "manifest.json").exists()  # refused before writing anything
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    run = Run(run_dir, "generate", ToyWorldConfig()).start()  # the OS dropped the dead holder's lock
    run.finish()
    assert lock_path(run_dir).parent == tmp_path  # beside the directory, so a directory swapped whole stays held


def test_the_same_process_may_restart_its_own_run(tmp_path):
    first = Run(tmp_path / "r", "eval", ToyWorldConfig()).start()
    again = Run(tmp_path / "r", "eval", ToyWorldConfig()).start()
    again.finish()
    first.finish()


def test_a_second_curation_into_the_same_output_stops_with_one_line(tmp_path):
    path, run = write_run(tmp_path, [trace("p1", 0, GOOD.format(work="6 * 7 = 42", answer=42))])
    holder = hold_in_another_process(run / "curated", "curate")
    try:
        result = run_cli("curate", path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {run / 'curated'}: in use by distill curate (PID {holder.pid} on {_host()}, since "
        + result.stderr.split("since ")[1].split(")")[0] + "); one run directory takes one writer at a time: "
        "wait for it to end, or use another directory"]
    assert not (run / "curated").exists()
    assert run_cli("curate", path).returncode == 0  # once the holder is gone


def test_two_generates_on_one_run_directory_the_second_stops_and_nothing_is_lost_or_paid_twice(tmp_path):
    import time

    from support.fake_openai import FakeOpenAIServer
    from test_generate_resume import pairs, run_yaml

    # a FAKE hosted API, slow enough for the runs to overlap: 8 s of answers, longer than a second CLI takes to start
    # (some 5 s at the lowest declared versions on a loaded machine, where `import transformers` 5.0 imports torch)
    with FakeOpenAIServer(delay_s=1.0) as server:
        path = run_yaml(tmp_path, server, prompts=8)
        first = subprocess.Popen([sys.executable, "-m", "distill", "generate", str(path)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while not server.requests and time.time() < deadline:  # the first run holds the directory by now
            time.sleep(0.05)
        second = run_cli("generate", path)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [next(line for line in second.stderr.splitlines() if "in use by" in line)]
    assert f"{tmp_path / 'run'}: in use by distill generate (PID {first.pid} on " in second.stderr
    assert len(server.requests) == 8  # every sample requested once
    assert pairs(tmp_path) == [(f"p{i}", 0, "ok") for i in range(8)]


def _host() -> str:
    import platform

    return platform.node()
