"""Find the last complete Trainer checkpoint; set aside ones a crash left half-written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from distill.progress import say

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def is_complete(directory: Path) -> bool:
    # The Trainer writes trainer_state.json last, after weights, optimizer, scheduler and RNG state.
    state = directory / "trainer_state.json"
    try:
        json.loads(state.read_text())
    except (OSError, ValueError):
        return False
    # Weights: a full save, or DeepSpeed's / FSDP's sharded states.
    return any(directory.glob("*.safetensors")) or any(directory.glob("*.bin")) or any(directory.glob("global_step*")) \
        or any(directory.glob("pytorch_model_fsdp*"))


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint under `output_dir`; incomplete newer ones are removed."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    found = sorted(
        (int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))
    )
    for _, path in reversed(found):
        if is_complete(path):
            return path
        say(f"removing incomplete checkpoint {path} (left by an interrupted save)")
        shutil.rmtree(path, ignore_errors=True)
    return None
