"""YAML configs validated into typed models, with `key=value` overrides and one-line errors."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo

from distill.errors import UsageError
from distill.io import read_utf8

T = TypeVar("T", bound=BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored. A key listed in `renamed`
    (old name -> new name) is an error that names its new name."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    renamed: ClassVar[dict[str, str]] = {}


def looks_like_local_path(value: str) -> bool:
    """A model or dataset reference that names a local path rather than a Hub id (`org/name`)."""
    return (
        value.startswith(("/", "./", "../", "~"))
        or value.count("/") > 1
        or value.endswith((".json", ".jsonl", ".parquet", ".yaml"))
        or os.path.exists(value)
    )


def check_local_path(value: str) -> str:
    """Pydantic validator body for a field holding a Hub id or a local path that must exist."""
    if looks_like_local_path(value) and not os.path.exists(os.path.expanduser(value)):
        raise ValueError(f"path does not exist: {value} (expected a local path or a Hub id like org/name)")
    return value


# Validation context under which a local path need not exist yet (`distill plan` prices a run before its data is made).
PATHS_MAY_BE_MISSING = "paths_may_be_missing"


def _existing_local_path(value: str, info: ValidationInfo) -> str:
    if info.context and info.context.get(PATHS_MAY_BE_MISSING):
        return value
    return check_local_path(value)


# A model or dataset reference: a Hub id (`org/name`) or a local path, which must then exist.
HubIdOrPath = Annotated[str, AfterValidator(_existing_local_path)]


def _parse_scalar(raw: str) -> Any:
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):  # YAML 1.1 reads 1e-5 as a string
        try:
            return float(value)
        except ValueError:
            pass
    return value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """`a.b=1 c=x` -> {"a": {"b": 1}, "c": "x"}; values are parsed as YAML scalars or lists."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise UsageError(f"override {item!r}: expected KEY=VALUE with a dotted key, like training.learning_rate=1e-5")
        value = _parse_scalar(raw)
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UsageError(f"override {item!r}: {part} is set to a value and also used as a section")
        node[leaf] = value
    return tree


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` laid over `base`; numeric keys address list items (`benchmarks.0.limit=5`)."""
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = deep_merge(current, value)
        elif isinstance(value, dict) and isinstance(current, list) and all(str(k).isdigit() for k in value):
            items = list(current)
            for index, item in value.items():
                if int(index) >= len(items):
                    raise UsageError(f"override {key}.{index}: {key} has {len(items)} item(s)")
                old = items[int(index)]
                items[int(index)] = deep_merge(old, item) if isinstance(item, dict) and isinstance(old, dict) else item
            merged[key] = items
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a config file")
    if not path.is_file():
        raise UsageError(f"{path}: no such config file")
    text = read_utf8(path, "", "save the config as UTF-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path}{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def _model_at(model_cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config section class that owns the last key of `loc`, for listing its valid keys."""
    current: Any = model_cls
    for part in loc[:-1]:
        if isinstance(part, int):  # an item of a list of sections (data.sources.1.weight): the section is the item's
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args, *(a for arg in args for a in getattr(arg, "__args__", ()))]  # X | None, list[X] | None
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def describe_error(path: str | Path, exc: ValidationError, model_cls: type[BaseModel]) -> str:
    def location(err) -> tuple:
        return tuple(p for p in err["loc"] if not isinstance(p, str) or not p.startswith("function-"))

    def renamed_to(err) -> str | None:
        loc = location(err)
        owner = _model_at(model_cls, loc) if err["type"] == "extra_forbidden" and loc else None
        return getattr(owner, "renamed", {}).get(str(loc[-1])) if owner else None

    # An old key name explains the errors it causes (its new name then reads as missing): it comes first.
    err = next((e for e in exc.errors() if renamed_to(e)), exc.errors()[0])
    loc = location(err)
    key = ".".join(str(p) for p in loc) or "(top level)"
    owner = _model_at(model_cls, loc) if err["type"] == "extra_forbidden" else None
    if renamed_to(err):
        message = f"renamed to {renamed_to(err)}"
    elif err["type"] == "extra_forbidden":
        valid = sorted(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(valid)}"
        message = f"unknown key ({hint})"
    elif err["type"] == "missing":
        message = "required key is missing"
    else:
        message = err["msg"].removeprefix("Value error, ")
        if "input" in err and err["type"] not in ("value_error",):
            message += f" (got {err['input']!r})"
    more = len(exc.errors()) - 1
    suffix = f" [+{more} more error{'s' if more > 1 else ''}]" if more else ""
    return f"{path}: {key}: {message}{suffix}"


def load_config(path: str | Path, model_cls: type[T], overrides: list[str] | None = None) -> T:
    """Read YAML at `path`, apply dotted overrides, validate into `model_cls` (UsageError on failure)."""
    data = deep_merge(read_yaml(path), parse_overrides(overrides or []))
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        raise UsageError(describe_error(path, exc, model_cls)) from None


def config_hash(config: BaseModel) -> str:
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
