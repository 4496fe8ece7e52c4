"""The Hugging Face Hub as the stages meet it: a model or dataset that cannot be loaded becomes one line that says why
and how to turn the Hub on, instead of a library's traceback.

`make` targets on real models reach the Hub; the toy world, the demo and the tests run offline (HF_HUB_OFFLINE=1).
Offline, a Hub id loads only from the cache (HF_HOME, by default ~/.cache/huggingface)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from distill.errors import UsageError

TRUE = {"1", "true", "yes", "on"}


def offline(repo_type: str = "model", env=None) -> bool:
    """Whether the Hub is switched off for loading a model (HF_HUB_OFFLINE) or a dataset (either variable), in `env`
    (default: this process's environment)."""
    env = os.environ if env is None else env
    keys = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if repo_type == "dataset" else ("HF_HUB_OFFLINE",)
    return any(str(env.get(key, "")).strip().lower() in TRUE for key in keys)


def cache_dir(env=None) -> str:
    """HF_HOME: what to copy from a machine with access (its hub/ holds the models, datasets/ the prepared datasets)."""
    env = os.environ if env is None else env
    return env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")


class HubError(UsageError):
    """A model or dataset that the Hub (or its cache) could not give: exit code 2, one line."""


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _kind(exc: BaseException) -> str | None:
    """'unreachable' (not in the cache, and the Hub is off or out of reach), 'missing' (the Hub has no such repo, or
    it is gated), or None (not a Hub failure: a broken local file, a bug)."""
    for link in _chain(exc):
        name, text = type(link).__name__, str(link)
        if name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError") or "OfflineModeIsEnabled" in text:
            return "unreachable"
        if "couldn't connect to 'https://huggingface.co'" in text or "on the Hub (LocalEntryNotFoundError)" in text:
            return "unreachable"
        if isinstance(link, ConnectionError) and "on the Hub" in text:  # datasets: "Couldn't reach 'x' on the Hub (...)"
            return "unreachable"
        if name in ("RepositoryNotFoundError", "GatedRepoError", "DatasetNotFoundError"):
            return "missing"
        if "is not a local folder and is not a valid model identifier" in text:
            return "missing"
    return None


def is_local(name: str) -> bool:
    return Path(str(name)).expanduser().exists()


def offline_message(what: str, name: str, repo_type: str = "model", cache: str | None = None) -> str:
    cache = cache or cache_dir()
    fill = f"run `hf download {name}`" if repo_type == "model" else "load it once"
    return (f"{what}: cannot load {name!r}: it is not a local path, not in the Hub cache ({cache}), and the Hub is off "
            f"(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE): unset both to download it, or {fill} on a machine with access "
            f"and copy that machine's HF_HOME (~/.cache/huggingface) to {cache}")


def load_error(what: str, name: str, exc: BaseException, repo_type: str = "model") -> HubError | None:
    """One line for a model or dataset `name` that failed to load with `exc` because of the Hub (None when the
    failure is not the Hub's: the caller keeps its own message). `what` names the setting, as `model.name_or_path`."""
    if is_local(name):
        return None
    kind = _kind(exc)
    if kind == "unreachable" and offline(repo_type):
        return HubError(offline_message(what, name, repo_type))
    if kind == "unreachable":
        return HubError(f"{what}: cannot load {name!r}: the Hub (https://huggingface.co) did not answer and the cache "
                        f"({cache_dir()}) does not hold it: check the network or proxy (HTTPS_PROXY), or fill the cache "
                        f"on a machine with access, copy it here and set HF_HUB_OFFLINE=1")
    if kind == "missing":
        return HubError(f"{what}: {name!r} is neither a local path nor a {repo_type} on the Hub (a private or gated "
                        f"repo needs `hf auth login` and its terms accepted)")
    return None


@contextlib.contextmanager
def loading(what: str, name: str, repo_type: str = "model"):
    """`with loading("model.name_or_path", name): AutoModel.from_pretrained(name)`: a Hub failure becomes one line
    (a HubError, exit code 2); anything else propagates unchanged."""
    try:
        yield
    except UsageError:
        raise
    except Exception as exc:
        error = load_error(what, name, exc, repo_type)
        if error is None:
            raise
        raise error from None


def require_cached(what: str, name: str, env=None) -> None:
    """Before handing model `name` to a process that would fail there at length (a vLLM server, with environment
    `env`): offline, a Hub id whose config is not in the cache is refused here, in one line."""
    if not offline("model", env) or is_local(name):
        return
    from huggingface_hub import try_to_load_from_cache

    try:
        env = os.environ if env is None else env
        hub_cache = env.get("HF_HUB_CACHE") or os.path.join(cache_dir(env), "hub")
        cached = try_to_load_from_cache(name, "config.json", cache_dir=os.path.expanduser(hub_cache))
    except Exception:  # not even a valid repo id (a path that does not exist)
        cached = None
    if not isinstance(cached, str):
        raise HubError(offline_message(what, name, cache=cache_dir(env)))
