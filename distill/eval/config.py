"""An eval suite (eval/suites/<suite>.yaml) and the model it evaluates (`model=PATH` on the command line)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from distill.benchmarks import DEFAULT_TASKS_DIR, Benchmark, check_tasks, task_yaml
from distill.config import HubIdOrPath, Section
from distill.engines.serve import ServeConfig
from distill.verify.sandbox import SandboxSettings


class Protocol(Section):
    """How samples are drawn; the defaults are the DeepSeek-R1 paper's."""

    temperature: float = Field(default=0.6, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=32768, ge=1)
    system_prompt: str | None = None  # R1: none; every instruction goes in the user turn
    reasoning: bool = True  # score the text after the last </think>; a response without it is wrong
    seed: int = 0  # sample i of a problem is drawn with seed + i


# What eval sets itself when it serves a checkpoint: what to serve, under which name, where its files go, and that it
# listens on loopback only (so it needs no key).
SET_BY_EVAL = ("name", "model", "served_model_name", "run_dir", "host", "api_key_env")


def _serve_options() -> type[Section]:
    """model.serve: every ServeConfig setting but SET_BY_EVAL, with its checks, taken from ServeConfig so that the two
    cannot drift apart. The checks that need the model (a pinned revision for remote code) run in ModelSpec."""
    fields = {name: (field.annotation, field) for name, field in ServeConfig.model_fields.items() if name not in SET_BY_EVAL}
    fields["port"] = (int, Field(default=8020, ge=1, le=65535))  # the teacher's recipes take 8000
    checks = {name: field_validator(*d.info.fields, mode=d.info.mode)(d.func.__func__)
              for name, d in ServeConfig.__pydantic_decorators__.field_validators.items()
              if set(d.info.fields) <= set(fields) and name != "pinned_when_remote_code"}
    return create_model("ServeOptions", __base__=Section, __validators__=checks, **fields)


ServeOptions = _serve_options()


class ModelSpec(Section):
    renamed = {"path": "name_or_path"}

    name_or_path: HubIdOrPath  # a checkpoint directory or Hub id; with engine openai, the name the endpoint serves
    label: str | None = None  # name in results and reports (default: from the path)
    role: Literal["teacher", "student"] = "student"
    engine: Literal["vllm", "openai", "hf"] = "vllm"
    base_url: str | None = None  # engine openai: an OpenAI-compatible endpoint, like http://host:8000/v1
    api_key_env: str | None = None  # environment variable holding the endpoint's key
    num_concurrent: int = Field(default=32, ge=1)  # requests in flight (vllm, openai)
    batch_size: int = Field(default=32, ge=1)  # hf
    dtype: str = "auto"  # hf: float32 on CPU, bfloat16 on GPU
    params: int | None = None  # parameter count for the report (default: counted from the checkpoint)
    reasoning: bool | None = None  # instead of the suite's protocol.reasoning
    request_timeout_s: int = Field(default=3600, ge=1)
    serve: ServeOptions = Field(default_factory=ServeOptions)

    @model_validator(mode="after")
    def _endpoint(self) -> ModelSpec:
        if self.engine == "openai" and not self.base_url:
            raise ValueError("engine openai needs model.base_url (like http://127.0.0.1:8000/v1)")
        if self.engine == "vllm":
            try:
                self.serve_config(Path("."))  # the server's own checks, at load rather than when it starts
            except ValidationError as exc:
                err = exc.errors()[0]
                raise ValueError(f"serve.{'.'.join(map(str, err['loc']))}: {err['msg'].removeprefix('Value error, ')}") from None
        return self

    def serve_config(self, run_dir: Path) -> ServeConfig:
        """The config of the vLLM server that engine vllm starts for this checkpoint, on loopback."""
        return ServeConfig(**self.serve.model_dump(), name=f"eval-{self.name}", model=self.name_or_path,
                           served_model_name=self.name, run_dir=str(run_dir / "serve"))

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        path = Path(self.name_or_path.rstrip("/"))
        return path.parent.name if path.name in ("model", "final") and path.parent.name else path.name


class SuiteConfig(Section):
    renamed = {"output_dir": "runs_dir"}

    name: str
    protocol: Protocol = Field(default_factory=Protocol)
    benchmarks: list[Benchmark] = Field(min_length=1)
    model: ModelSpec
    tasks_dir: str = DEFAULT_TASKS_DIR
    runs_dir: str = "runs/eval"  # the run directory is <runs_dir>/<model label>
    workers: int | None = None  # scoring processes (default: CPU count)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    # Consent to run model-written code: needed by code benchmarks (their answers run in the sandbox) and passed
    # to lm-eval as confirm_run_unsafe_code (tasks marked `unsafe_code: true`). Off: such a suite is refused.
    unsafe_code: bool = False

    @model_validator(mode="after")
    def _tasks_exist(self) -> SuiteConfig:
        check_tasks(self.benchmarks, self.tasks_dir)
        if not self.unsafe_code:
            for bench in self.benchmarks:
                if runs_code(task_yaml(self.tasks_dir, bench.task)):
                    raise ValueError(f"benchmark {bench.name}: task {bench.task} runs model-written code (in the sandbox): "
                                     "set unsafe_code: true in the suite to allow it")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.model.name

    @property
    def reasoning(self) -> bool:
        return self.protocol.reasoning if self.model.reasoning is None else self.model.reasoning


CODE_HOOKS = ("hooks.humaneval_docs", "hooks.livecodebench_docs")  # the process_docs of distill's code tasks


def runs_code(path: Path, depth: int = 0) -> bool:
    """Whether a task YAML (with its includes) runs model-written code: a code benchmark's docs, or lm-eval's own
    `unsafe_code: true` marker. Read as text: resolving its `!function` hooks would import and run them."""
    import yaml

    class Loader(yaml.SafeLoader):  # safe: plain data only; the one tag added below keeps `!function` as its text
        pass

    Loader.add_constructor("!function", lambda loader, node: str(loader.construct_scalar(node)))
    try:
        task = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not a readable task YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(task, dict):
        raise ValueError(f"{path}: a task YAML is a mapping of keys")
    if task.get("unsafe_code") or task.get("process_docs") in CODE_HOOKS:
        return True
    include = task.get("include")
    return bool(include) and depth < 10 and (path.parent / str(include)).is_file() and \
        runs_code(path.parent / str(include), depth + 1)
