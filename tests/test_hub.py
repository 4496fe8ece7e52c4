"""A Hub id that cannot be loaded (the Hub off, the cache empty) is one line and exit code 2 in every stage that
loads one: eval (the model, in-process or served, and its benchmarks), generate (the engine's model, the prompts),
curate (the decontamination benchmarks), prompts. No test reaches the network: conftest.py forces HF_HUB_OFFLINE."""

import os

import pytest
import yaml

from support import ROOT, SHARED_DATA, run_cli
from distill import hub
from distill.errors import UsageError

MODEL = "Qwen/Qwen2.5-Math-7B"


@pytest.fixture
def offline_env(tmp_path):
    """Offline, with an empty cache: what a fresh cluster machine without the Hub sees."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}


def curate_run(tmp_path):
    from distill.teacher.summary import GenerateSummary
    from distill.traces import Trace, write_traces

    run = tmp_path / "run"
    write_traces(run / "traces", [Trace(
        prompt_id="p", source="toy", prompt_messages=[{"role": "user", "content": "6 * 7?"}], sample_index=0, teacher="t",
        engine="hf", sampling={"n": 1}, status="ok", response="<think>\n42\n</think>\n\n\\boxed{42}", finish_reason="stop",
        completion_tokens=9, answer="42")])
    GenerateSummary(traces=1, ok=1, failed=0, prompt_tokens=1, completion_tokens=1, wall_seconds=1, cost_usd=0).write(run)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "name": "c", "run_dir": str(run), "prompts": {"source": str(SHARED_DATA / "math" / "aime24.jsonl")},
        "curate": {"decontamination": {"benchmarks": [{"name": "math500", "source": "HuggingFaceH4/MATH-500"}]}}}))
    return path


COMMANDS = {
    "eval, in-process model": lambda t: ["eval", "eval/suites/r1.yaml", f"model={MODEL}", "model.engine=hf", f"runs_dir={t}"],
    "eval, served model": lambda t: ["eval", "eval/suites/r1.yaml", f"model={MODEL}", f"runs_dir={t}"],
    "eval, benchmark dataset": lambda t: ["eval", "eval/suites/r1.yaml", f"model={ROOT / 'toy' / 'teacher'}",
                                          "model.engine=hf", f"runs_dir={t}"],
    "generate, engine model": lambda t: ["generate", "teacher/runs/math.yaml", f"run_dir={t}", "engine.kind=hf",
                                         f"engine.model={MODEL}", f"prompts.source={SHARED_DATA / 'math' / 'aime24.jsonl'}"],
    "generate, prompts dataset": lambda t: ["generate", "teacher/runs/math.yaml", f"run_dir={t}"],
    "curate, decontamination benchmark": lambda t: ["curate", curate_run(t)],
    "train, student model": lambda t: ["train", "students/r1-distill-qwen-7b.yaml", f"run_dir={t / 'run'}",
                                       "data.sources=null", f"data.source={sft_rows(t)}", "training.use_liger_kernel=false"],
    "train, teacher tokenizer": lambda t: ["train", "students/r1-distill-qwen-7b-on-policy.yaml", f"run_dir={t / 'run'}",
                                           f"data.source={sft_rows(t)}", f"model.name_or_path={ROOT / 'toy' / 'teacher'}",
                                           "model.family=auto", f"teacher.tokenizer={MODEL}"],
}


def sft_rows(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "6 * 7?"}, {"role": "assistant", "content": "42"}]}\n')
    return path
NAMES = {"eval, benchmark dataset": "HuggingFaceH4/aime_2024", "generate, prompts dataset": "agentica-org/DeepScaleR",
         "curate, decontamination benchmark": "HuggingFaceH4/MATH-500"}


@pytest.mark.parametrize("case", list(COMMANDS))
def test_a_hub_id_offline_and_not_cached_is_one_line_and_exit_2(case, tmp_path, offline_env):
    result = run_cli(*COMMANDS[case](tmp_path), env=offline_env, timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    line = errors[0]
    assert NAMES.get(case, MODEL) in line and "the Hub is off" in line and "unset both to download it" in line
    assert str(tmp_path / "hf-home") in line  # where the cache is looked for, and where to copy one
    if NAMES.get(case) is None:
        assert f"`hf download {MODEL}`" in line


def test_a_model_in_the_cache_passes_the_offline_check(tmp_path):
    """The check before a vLLM server starts looks in the same cache transformers reads."""
    snapshot = tmp_path / "hub" / "models--org--name" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--name" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--name" / "refs" / "main").write_text("a" * 40)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    hub.require_cached("model", "org/name", env)
    with pytest.raises(hub.HubError, match=r"model: cannot load 'org/other': .* the Hub is off"):
        hub.require_cached("model", "org/other", env)
    hub.require_cached("model", "org/other", {**env, "HF_HUB_OFFLINE": "0"})  # online: the server downloads it
    hub.require_cached("model", str(tmp_path), env)  # a local folder is not the Hub's


class RepositoryNotFoundError(Exception):  # stands in for huggingface_hub's (recognised by name, as are the others)
    pass


def test_what_is_and_is_not_the_hubs_failure(tmp_path):
    try:
        try:
            raise RepositoryNotFoundError("404")
        except RepositoryNotFoundError as inner:
            raise OSError("org/x is not a local folder") from inner
    except OSError as exc:
        missing = hub.load_error("model.name_or_path", "org/x", exc)
    assert isinstance(missing, UsageError) and missing.exit_code == 2
    assert "'org/x' is neither a local path nor a model on the Hub" in str(missing) and "hf auth login" in str(missing)
    assert hub.load_error("model.name_or_path", "org/x", ValueError("bad dtype")) is None  # not the Hub's: kept
    assert hub.load_error("model.name_or_path", str(tmp_path), OSError("couldn't connect to 'https://huggingface.co'")) is None
    with pytest.raises(ValueError, match="bad dtype"), hub.loading("model.name_or_path", "org/x"):
        raise ValueError("bad dtype")
