"""Run directories: every stage writes its resolved config and a manifest beside its outputs."""

from __future__ import annotations

import datetime as dt
import json
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from distill import locks
from distill.config import config_hash, describe_error
from distill.errors import UsageError
from distill.io import atomic_write_json, atomic_write_yaml

TRACKED_PACKAGES = (
    "distill", "torch", "transformers", "tokenizers", "trl", "peft", "datasets", "accelerate",
    "lm-eval", "math-verify", "vllm", "deepspeed", "liger-kernel", "flash-attn", "pydantic",
)


def is_main_process() -> bool:
    """True in a single process, and in rank 0 of an `accelerate launch` / torchrun job."""
    return int(os.environ.get("RANK", "0")) == 0


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(cwd: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [k for key in keys for k in changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if old != new else []


S = TypeVar("S", bound="Summary")


def read_json(path: Path, expected: str) -> Any:
    """The JSON in `path`; UsageError naming the file and `expected` when it is missing or not JSON."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file (expected {expected})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not valid JSON ({str(exc).splitlines()[0]}); expected {expected}") from None


def validated(path: Path, data: Any, model_cls: type[BaseModel]) -> Any:
    """`data` (read from `path`) as `model_cls`; UsageError naming the file and the key at fault."""
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        raise UsageError(describe_error(path, exc, model_cls)) from None


class Summary(BaseModel):
    """A stage's summary file (`FILE` in its run directory): the stage writes it, the report and reruns read it.

    Keys a later version adds are ignored when an older one reads, so that runs of different versions compare."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=())
    FILE: ClassVar[str]
    WRITER: ClassVar[str]  # the command that writes it, for error messages

    def write(self, directory: str | Path) -> Path:
        return atomic_write_json(Path(directory) / self.FILE, self.model_dump(mode="json", by_alias=True))

    @classmethod
    def read(cls: type[S], directory: str | Path) -> S:
        """The summary in `directory`; UsageError naming the file when it is missing, not JSON or not this shape."""
        path = Path(directory) / cls.FILE
        return validated(path, read_json(path, f"{cls.FILE} as {cls.WRITER} writes it"), cls)


def check_replaceable(directory: str | Path, stage: str, key: str) -> None:
    """Refuse to replace `directory` whole unless it is absent, empty, or an earlier output of `stage`:
    a mistyped output path must never wipe traces, a model or a checkout."""
    directory = Path(directory)
    if not directory.exists() or (directory.is_dir() and not any(directory.iterdir())):
        return
    manifest = directory / "manifest.json"
    try:
        held = json.loads(manifest.read_text()).get("stage") if manifest.is_file() else None
    except (OSError, ValueError, AttributeError):
        held = None
    if held != stage:
        what = f"a {held} run" if held else "files that no distill " + stage + " wrote"
        raise UsageError(f"{key}: {directory} holds {what}; {stage} replaces its output directory whole, so it "
                         "must be new, empty, or an earlier output of this stage")


def check_apart_from_inputs(directory: str | Path, inputs: list[tuple[str, str]], key: str) -> None:
    """Refuse an output directory that is one of the local `inputs` ((config key, path) pairs), holds one, or lies
    inside one: the stage replaces its output whole, which would destroy or change what it reads."""
    out = Path(directory).expanduser().resolve()
    for input_key, path in inputs:
        source = Path(path).expanduser()
        if not source.exists():
            continue
        source = source.resolve()
        how = "is" if source == out else "holds" if out in source.parents else "lies inside" if source in out.parents else None
        if how:
            raise UsageError(f"{key}: {directory} {how} the input {input_key} ({path}); the output directory is replaced "
                             f"whole, which would destroy or change what the run reads: choose another {key}")


class Run:
    """One stage's run directory: `config.yaml` (resolved), `manifest.json`, outputs, `log.txt`.

    Re-running a stage on the same directory resumes, unless the config changed in a way the stage
    declares incompatible (`fingerprint`): then it is refused with the way out. A started run holds its
    directory (`lock_dir`: the final directory where outputs are staged elsewhere) until it finishes.
    """

    def __init__(self, directory: str | Path, stage: str, config: BaseModel, fingerprint: dict[str, Any] | None = None,
                 lock_dir: str | Path | None = None):
        self.dir = Path(directory)
        self.lock_dir = Path(lock_dir) if lock_dir is not None else self.dir
        self.stage = stage
        self.config = config
        self.fingerprint = fingerprint or {}
        self.manifest_path = self.dir / "manifest.json"
        self.manifest: dict[str, Any] = {}

    def start(self) -> Run:
        """Hold the directory, check resumability, then record the config and a fresh manifest (rank 0 writes)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if is_main_process():
            locks.acquire(self.lock_dir, self.stage)
        previous = self._previous_manifest()
        if previous and previous.get("fingerprint") != self.fingerprint:
            if is_main_process():
                locks.release(self.lock_dir)
            changed = changed_keys(previous.get("fingerprint", {}), self.fingerprint)
            raise UsageError(
                f"{self.dir}: holds a {self.stage} run with a different {', '.join(changed)}; "
                f"resuming would mix incompatible outputs. Use a new run directory, or delete {self.dir} to start over"
            )
        self.manifest = {
            "stage": self.stage,
            "command": " ".join(sys.argv),
            "config_hash": config_hash(self.config),
            "fingerprint": self.fingerprint,
            "git_commit": git_commit(),
            "versions": package_versions(),
            "host": platform.node(),
            "started": now(),
            "ended": None,
            "status": "running",
            "resumed_from": previous.get("started") if previous else None,
            "counts": {},
        }
        if is_main_process():
            atomic_write_yaml(self.dir / "config.yaml", self.config.model_dump(mode="json"))
            atomic_write_json(self.manifest_path, self.manifest)
        return self

    def completed(self) -> bool:
        """The directory holds this very run (same fingerprint), finished."""
        previous = self._previous_manifest()
        return bool(previous) and previous.get("status") == "completed" and previous.get("fingerprint") == self.fingerprint

    def _previous_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return None

    def update(self, **counts: Any) -> None:
        self.manifest["counts"].update(counts)
        if is_main_process():
            atomic_write_json(self.manifest_path, self.manifest)

    def finish(self, status: str = "completed", **counts: Any) -> None:
        self.manifest["ended"] = now()
        self.manifest["status"] = status
        self.update(**counts)
        if is_main_process():
            locks.release(self.lock_dir)
