"""Config trust (issue 13, item 12): what a recipe or suite may run, and who may reach a server it starts.

Serving recipes pin the Hub revision whose remote code they trust and need an API key beyond loopback; eval suites
run model-written code only when they say `unsafe_code: true`."""

import json
import urllib.error
import urllib.request

import pytest
import yaml

from support import ROOT, free_port, needs_vllm, run_cli
from distill.config import load_config
from distill.errors import DistillError, UsageError
from distill.eval.config import SET_BY_EVAL, ModelSpec, ServeOptions, SuiteConfig, runs_code
from distill.engines.serve import COMMIT, ServeConfig, command, loopback, server_env

RECIPES = sorted((ROOT / "teacher").glob("*.yaml"))
SUITES = sorted((ROOT / "eval" / "suites").glob("*.yaml"))
CODE_TASKS = {"distill_humaneval", "distill_livecodebench"}


def one_line(result, code=2) -> str:
    assert result.returncode == code and "Traceback" not in result.stderr, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- serving recipes ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_pins_its_hub_revision_and_needs_a_key_beyond_loopback(path):
    cfg = load_config(path, ServeConfig)
    local = (ROOT / cfg.model).exists()
    if not local:  # a Hub model: weights, tokenizer and any remote code come from one reviewed commit
        assert COMMIT.fullmatch(cfg.revision or ""), f"{path.name}: revision must be a 40-hex commit hash"
        cmd = command(cfg)
        for flag in ("--revision", "--code-revision", "--tokenizer-revision"):
            assert cmd[cmd.index(flag) + 1] == cfg.revision
    if not loopback(cfg.host):
        assert cfg.api_key_env, f"{path.name}: host {cfg.host} needs api_key_env"


def test_trusted_remote_code_without_a_pinned_commit_is_a_one_line_error(tmp_path):
    recipe = ROOT / "teacher" / "deepseek-r1-8xh200.yaml"
    for revision in ("null", "main", "56d4cbb"):
        error = one_line(run_cli("serve", recipe, f"revision={revision}", f"run_dir={tmp_path}"))
        assert "revision" in error and "40-hex commit hash" in error
    assert one_line(run_cli("serve", recipe, "args.api-key=secret", f"run_dir={tmp_path}")).endswith(
        "name its environment variable in api_key_env instead")
    assert not list(tmp_path.iterdir())  # nothing started


@pytest.mark.parametrize("recipe, overrides", [("deepseek-r1-8xh200.yaml", []),
                                               ("toy-cpu.yaml", ["host=0.0.0.0"])])
def test_a_server_beyond_loopback_without_its_key_is_refused_before_it_starts(tmp_path, recipe, overrides):
    env = {k: v for k, v in __import__("os").environ.items() if k != "DISTILL_API_KEY"}
    result = run_cli("serve", ROOT / "teacher" / recipe, f"port={free_port()}", f"run_dir={tmp_path}", *overrides, env=env)
    error = one_line(result)
    assert "listens beyond this machine" in error
    assert ("DISTILL_API_KEY" in error) if recipe.startswith("deepseek") else ("api_key_env" in error)
    assert not list(tmp_path.iterdir())  # no PID file, no log: nothing was started


def test_the_key_reaches_vllm_by_environment_never_by_command_line(monkeypatch):
    cfg = ServeConfig(name="t", model="m", host="0.0.0.0", api_key_env="DISTILL_API_KEY")
    monkeypatch.setenv("DISTILL_API_KEY", "s3cret")
    assert server_env(cfg)["VLLM_API_KEY"] == "s3cret"
    assert "s3cret" not in " ".join(command(cfg)) and "--api-key" not in command(cfg)
    monkeypatch.delenv("DISTILL_API_KEY")
    with pytest.raises(UsageError, match="DISTILL_API_KEY"):
        server_env(cfg)
    assert "VLLM_API_KEY" not in server_env(cfg.model_copy(update={"host": "127.0.0.1"}))  # loopback: no key needed
    for host, inside in (("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False),
                         ("10.0.0.5", False), ("teacher-node", False)):
        assert loopback(host) == inside, host


def test_clients_send_the_key_the_recipe_names(monkeypatch):
    """The generate stage's engine reads the same variable (engine.api_key_env) and sends it as a bearer token."""
    from distill.engines.openai import OpenAIEngine
    from distill.engines.config import EngineSection

    monkeypatch.setenv("DISTILL_API_KEY", "s3cret")
    recipe = load_config(ROOT / "teacher" / "deepseek-r1-8xh200.yaml", ServeConfig)
    engine = OpenAIEngine(EngineSection(base_urls=[recipe.base_url], api_key_env=recipe.api_key_env))
    assert engine.headers == {"Authorization": "Bearer s3cret"}


@pytest.mark.slow
@needs_vllm
def test_a_served_key_is_required_by_the_api_and_health_stays_open(tmp_path):
    port = free_port()
    args = [ROOT / "teacher" / "toy-cpu.yaml", f"port={port}", f"run_dir={tmp_path}", "api_key_env=TOY_KEY"]
    env = {**__import__("os").environ, "TOY_KEY": "s3cret"}
    started = run_cli("serve", *args, timeout=600, env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        assert "s3cret" not in started.stdout + (tmp_path / "toy-cpu.pid").read_text()
        url = f"http://127.0.0.1:{port}/v1/models"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": "Bearer s3cret"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert json.loads(resp.read())["data"][0]["id"] == "toy/teacher"
    finally:
        stopped = run_cli("serve", *args, "--stop", timeout=120, env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout


# --- eval suites: unsafe_code --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_unsafe_code_is_on_exactly_for_the_suites_with_code_benchmarks(path):
    cfg = load_config(path, SuiteConfig)
    has_code = any(b.task in CODE_TASKS for b in cfg.benchmarks)
    assert cfg.unsafe_code == has_code


def test_unsafe_code_is_off_by_default_and_a_code_benchmark_without_it_is_refused(tmp_path):
    cfg = SuiteConfig(name="t", benchmarks=[{"name": "toy", "task": "distill_toy"}], model={"name_or_path": "toy/teacher"})
    assert cfg.unsafe_code is False
    for suite, bench in (("extra", "humaneval"), ("r1", "livecodebench")):
        error = one_line(run_cli("eval", ROOT / "eval" / "suites" / f"{suite}.yaml", "unsafe_code=false",
                                 f"runs_dir={tmp_path}"))
        assert f"benchmark {bench}" in error and "unsafe_code: true" in error


def test_code_tasks_are_found_through_includes_and_lm_evals_own_marker(tmp_path):
    tasks = ROOT / "eval" / "tasks"
    assert {p.stem for p in tasks.glob("distill_*.yaml") if runs_code(p)} == CODE_TASKS
    (tmp_path / "mine.yaml").write_text(f"include: {tasks / 'distill_livecodebench.yaml'}\ntask: mine\n")
    (tmp_path / "marked.yaml").write_text("task: marked\nunsafe_code: true\nprocess_docs: !function utils.docs\n")
    (tmp_path / "plain.yaml").write_text(f"include: {tasks / 'distill_math500.yaml'}\ntask: plain\n")
    assert runs_code(tmp_path / "mine.yaml") and runs_code(tmp_path / "marked.yaml")
    assert not runs_code(tmp_path / "plain.yaml")
    with pytest.raises(UsageError, match="benchmark mine: task .*mine.yaml runs model-written code"):
        load_config(ROOT / "eval" / "suites" / "toy.yaml", SuiteConfig,
                    [f"benchmarks=[{{name: mine, task: {tmp_path / 'mine.yaml'}}}]"])


def fake_simple_evaluate(calls: list, doc: dict):
    def simple_evaluate(**kwargs):
        calls.append(kwargs)
        return {"samples": {"task": [{"doc_id": 0, "doc": doc, "filtered_resps": [["an answer"]]}]}}
    return simple_evaluate


@pytest.mark.parametrize("unsafe", [False, True])
def test_lm_eval_runs_unsafe_code_only_when_the_suite_says_so(monkeypatch, unsafe):
    import lm_eval

    from distill.eval.lmeval import generate

    calls: list = []
    monkeypatch.setattr(lm_eval, "simple_evaluate", fake_simple_evaluate(calls, {"kind": "math"}))
    cfg = SuiteConfig(name="t", benchmarks=[{"name": "toy", "task": "distill_toy"}], model={"name_or_path": "toy/teacher"},
                      unsafe_code=unsafe)
    rows = generate(cfg, cfg.benchmarks[0], lm=None)
    assert calls[0]["confirm_run_unsafe_code"] is unsafe and rows == [{"doc": {"kind": "math"}, "responses": ["an answer"]}]


def test_code_answers_from_a_task_not_seen_as_code_are_still_refused_without_unsafe_code(monkeypatch):
    import lm_eval

    from distill.eval.lmeval import generate

    monkeypatch.setattr(lm_eval, "simple_evaluate", fake_simple_evaluate([], {"kind": "code", "tests": "[]"}))
    cfg = SuiteConfig(name="t", benchmarks=[{"name": "toy", "task": "distill_toy"}], model={"name_or_path": "toy/teacher"})
    with pytest.raises(DistillError, match="benchmark toy .task distill_toy.: its answers are code"):
        generate(cfg, cfg.benchmarks[0], lm=None)


def test_the_readme_says_what_a_config_can_run():
    for readme in (ROOT / "README.md", ROOT / "eval" / "README.md"):
        text = readme.read_text()
        assert "What a config can run" in text and "unsafe_code" in text and "!function" in text, readme
    assert yaml.safe_load((ROOT / "eval" / "suites" / "r1.yaml").read_text())["unsafe_code"] is True


def test_eval_serves_a_checkpoint_with_every_serve_setting_but_those_it_sets_itself(tmp_path):
    # model.serve is derived from ServeConfig: a setting added to the server (engine_nice, revision) reaches eval too.
    assert set(ServeOptions.model_fields) == set(ServeConfig.model_fields) - set(SET_BY_EVAL)
    spec = ModelSpec(name_or_path=str(ROOT / "toy" / "teacher"), serve={
        "engine_nice": 7, "env": {"OMP_NUM_THREADS": 2}, "args": {"trust-remote-code": True}})
    served = spec.serve_config(tmp_path)
    assert (served.engine_nice, served.env, served.host, served.port) == (7, {"OMP_NUM_THREADS": "2"}, "127.0.0.1", 8020)
    assert served.model == spec.name_or_path and served.served_model_name == "teacher"
    assert served.run_dir == str(tmp_path / "serve") and served.api_key_env is None

    # The server's own checks run when the suite loads: one line naming the key, before anything starts.
    suite = ROOT / "eval" / "suites" / "toy.yaml"
    error = one_line(run_cli("eval", suite, "model=Org/remote-model", "model.serve.args.trust-remote-code=true",
                             f"runs_dir={tmp_path}"))
    assert "model: serve.revision" in error and "40-hex commit hash" in error
    error = one_line(run_cli("eval", suite, "model.serve.args.api-key=secret", f"runs_dir={tmp_path}"))
    assert "model.serve.args" in error and "api_key_env" in error
