"""Run directories: every stage writes its resolved config and a manifest beside its outputs."""

from __future__ import annotations

import datetime as dt
import json
import importlib.metadata
from collections.abc import Iterator
from contextlib import contextmanager
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill import locks
from distill.config import config_hash, describe_error
from distill.errors import UsageError
from distill.io import atomic_write_json, atomic_write_yaml, replace_dir, staging_dir_for

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


class Manifest(BaseModel):
    """manifest.json, in every run directory: which stage wrote it, with what settings and versions, when, and how it
    ended. Keys another version adds are kept (and shown by the report), not refused."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    FILE: ClassVar[str] = "manifest.json"

    stage: str
    command: str = ""
    config_hash: str | None = None
    fingerprint: dict[str, Any] | None = None  # what may not change when the run resumes; None: unknown
    git_commit: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    host: str | None = None
    started: str | None = None
    ended: str | None = None
    status: str = "running"  # running | completed | a stage's own final status
    resumed_from: str | None = None
    counts: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def find(cls, directory: str | Path) -> Manifest | None:
        """The manifest in `directory`; None when there is none, or it cannot be read as one."""
        try:
            return cls.model_validate_json(Path(directory, cls.FILE).read_bytes())
        except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
            return None

    @classmethod
    def read(cls, directory: str | Path) -> Manifest:
        """The manifest in `directory`; UsageError naming the file when it is missing, not JSON or not this shape."""
        path = Path(directory) / cls.FILE
        return validated(path, read_json(path, "a run manifest"), cls)

    def write(self, directory: str | Path) -> Path:
        return atomic_write_json(Path(directory) / self.FILE, self.model_dump(mode="json"))


def check_replaceable(directory: str | Path, stage: str, key: str) -> None:
    """Refuse to replace `directory` whole unless it is absent, empty, or an earlier output of `stage`:
    a mistyped output path must never wipe traces, a model or a checkout."""
    directory = Path(directory)
    if not directory.exists() or (directory.is_dir() and not any(directory.iterdir())):
        return
    manifest = Manifest.find(directory)
    held = manifest.stage if manifest else None
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
        self.manifest_path = self.dir / Manifest.FILE
        self.manifest: Manifest | None = None  # set by start()

    def start(self) -> Run:
        """Hold the directory, check resumability, then record the config and a fresh manifest (rank 0 writes)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if is_main_process():
            locks.acquire(self.lock_dir, self.stage)
        previous = Manifest.find(self.dir)
        if previous and previous.fingerprint != self.fingerprint:
            if is_main_process():
                locks.release(self.lock_dir)
            changed = changed_keys(previous.fingerprint or {}, self.fingerprint)
            raise UsageError(
                f"{self.dir}: holds a {self.stage} run with a different {', '.join(changed)}; "
                f"resuming would mix incompatible outputs. Use a new run directory, or delete {self.dir} to start over"
            )
        self.manifest = Manifest(
            stage=self.stage, command=" ".join(sys.argv), config_hash=config_hash(self.config),
            fingerprint=self.fingerprint, git_commit=git_commit(), versions=package_versions(), host=platform.node(),
            started=now(), resumed_from=previous.started if previous else None)
        if is_main_process():
            atomic_write_yaml(self.dir / "config.yaml", self.config.model_dump(mode="json"))
            self.manifest.write(self.dir)
        return self

    def completed(self) -> bool:
        """The directory holds this very run (same fingerprint), finished."""
        previous = Manifest.find(self.dir)
        return bool(previous) and previous.status == "completed" and previous.fingerprint == self.fingerprint

    def update(self, **counts: Any) -> None:
        self.manifest.counts.update(counts)
        if is_main_process():
            self.manifest.write(self.dir)

    def finish(self, status: str = "completed", **counts: Any) -> None:
        self.manifest.ended = now()
        self.manifest.status = status
        self.update(**counts)
        if is_main_process():
            locks.release(self.lock_dir)


@contextmanager
def replacing(directory: str | Path, stage: str, config: BaseModel, key: str,
              inputs: list[tuple[str, str]] = ()) -> Iterator[Run]:
    """The replace-whole sequence of a stage that recomputes its output: hold `directory`, check that it may be
    replaced (new, empty, or this stage's earlier output) and lies apart from the local `inputs` ((config key, path)
    pairs), start a run in a staging directory beside it, and yield that run. The body writes into `run.dir`; when it
    returns, the run is finished (unless the body finished it with its counts) and swapped in whole. On an error the
    old output stays as it was. `key`: the config key that names `directory`, for error messages."""
    final = Path(directory)
    with locks.holding(final, stage):
        if inputs:
            check_apart_from_inputs(final, list(inputs), key)
        check_replaceable(final, stage, key)
        run = Run(staging_dir_for(final), stage, config, lock_dir=final).start()
        yield run
        if run.manifest.status == "running":
            run.finish()
        replace_dir(run.dir, final)
