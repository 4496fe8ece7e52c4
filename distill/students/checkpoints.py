"""Trainer checkpoints: find the last complete one (set aside ones a crash left half-written), check the disk holds
them before training, and explain a write that fails."""

from __future__ import annotations

import json
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from distill.errors import UsageError
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


def checkpoint_bytes(model, fp32_states: bool = False) -> int:
    """About what one Trainer checkpoint of `model` takes on disk: the weights as loaded, plus AdamW's two moments
    of every trainable weight (in the weight's dtype, fp32 under DeepSpeed / FSDP mixed precision, where DeepSpeed also
    keeps fp32 master weights). A 1.5B bf16 full fine-tune: ~3 GB + ~6 GB."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    states = sum(p.numel() * (4 if fp32_states else p.element_size()) * 2 for p in trainable)
    master = sum(p.numel() * 4 for p in trainable) if fp32_states else 0
    return weights + states + master


def _free_bytes(directory: Path) -> int:
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return shutil.disk_usage(directory).free


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check_disk_for_checkpoints(output_dir: str | Path, model, save_steps: int, max_steps: int,
                               save_total_limit: int | None, fp32_states: bool = False) -> int:
    """Stop before training when the first checkpoint cannot fit on the disk of `output_dir`; say so when the kept ones
    (`save_total_limit`, plus the one being written before the oldest is deleted, plus the final model) may not.
    A full disk otherwise shows as an error deep inside torch.save at the first checkpoint. Returns the estimate."""
    output_dir = Path(output_dir)
    one = checkpoint_bytes(model, fp32_states)
    if 0 < max_steps < save_steps:
        return one  # no checkpoint before the end
    free = _free_bytes(output_dir)
    if free < one * 1.05:
        raise UsageError(f"training.save_steps: one checkpoint of this run is about {_gb(one)} (weights + optimizer state) "
                         f"and {output_dir} has {_gb(free)} free: free space there or set run_dir on a larger disk")
    kept = (save_total_limit or 1_000_000) + 1
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    if free < one * kept + weights and save_total_limit is not None:
        say(f"disk: {_gb(free)} free at {output_dir}; {save_total_limit} kept checkpoints of about {_gb(one)} each, one "
            f"more while saving, and the final model may not fit (training.save_total_limit)")
    return one


# What a failed write looks like from inside torch.save / safetensors (ENOSPC, EDQUOT, EIO).
WRITE_FAILURES = ("file write failed", "unexpected pos", "No space left", "Disk quota exceeded", "Input/output error")


@contextmanager
def write_failures_explained(output_dir: str | Path, estimate: int | None = None):
    """A checkpoint write that fails (a full disk, mostly) becomes one line with the free space, not a traceback
    from deep inside torch.save."""
    try:
        yield
    except (RuntimeError, OSError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if not any(marker in str(exc) for marker in WRITE_FAILURES):
            raise
        size = f" (a checkpoint is about {_gb(estimate)})" if estimate else ""
        raise UsageError(f"writing a checkpoint under {output_dir} failed: {type(exc).__name__}: {message[:200]}; "
                         f"{_gb(_free_bytes(Path(output_dir)))} free there now{size}: free space there or set run_dir "
                         "on a larger disk, then run the same command again to resume") from exc
