"""Trainer callbacks: progress lines (step, loss, tokens/s, ETA) and a metrics log for the report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from distill.progress import Progress, fmt_count, say


class ProgressCallback(TrainerCallback):
    def __init__(self, metrics_path: Path, name: str):
        self.metrics_path = metrics_path
        self.name = name
        self.progress: Progress | None = None
        self.last_tokens: float | None = None
        self.last_time = time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.last_time = time.time()
        where = f" (resumed at step {state.global_step})" if state.global_step else ""
        say(f"[train {self.name}] {state.max_steps} steps on {args.world_size} process(es){where}")
        self.progress = Progress(f"[train {self.name}] step", state.max_steps, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "loss" not in logs or not state.is_world_process_zero:
            return
        now = time.time()
        tokens = logs.get("num_tokens")
        rate = None
        if tokens is not None and self.last_tokens is not None and now > self.last_time:
            rate = (tokens - self.last_tokens) / (now - self.last_time)
        self.last_tokens, self.last_time = tokens, now
        record = {"step": state.global_step, "epoch": state.epoch, "time": now, **logs}
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        parts = [f"loss {logs['loss']:.4f}"]
        if "learning_rate" in logs:
            parts.append(f"lr {logs['learning_rate']:.2e}")
        if rate is not None:
            parts.append(f"{fmt_count(rate)} tok/s")
        if self.progress is not None:
            self.progress.update(state.global_step, "  " + "  ".join(parts))

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.close()
