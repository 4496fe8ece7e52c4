"""Every shipped recipe (students/, teacher/runs/, eval/suites/) passes `distill preflight` with its real tokenizers
(tests/support/real_models.py), offline: a new recipe is picked up by the globs below, so one without a preflight fails.

What cannot be had offline stands in, each named: benchmarks and prompt pools load from ../shared/data; GPQA (gated on
the Hub) and no_robots (the general run's prompts) from rows written here; DeepSeek-R1's own tokenizer (no PyPI package
ships it) is replaced by an R1-Distill one, which the preflight says."""

import json
from pathlib import Path

import pytest

from support import ROOT, SHARED_DATA, run_cli
from distill.preflight import kind_of, preflight
from distill.preflight.options import PreflightOptions

FOLDERS = ("students", "teacher/runs", "eval/suites")
RECIPES = [p.relative_to(ROOT) for folder in FOLDERS for p in sorted((ROOT / folder).glob("*.yaml"))]
BENCHMARKS = {"aime24": SHARED_DATA / "math" / "aime24.jsonl", "aime25": SHARED_DATA / "math" / "aime25.jsonl",
              "math500": SHARED_DATA / "math" / "math500.jsonl", "amc23": SHARED_DATA / "math" / "amc23.jsonl",
              "livecodebench": SHARED_DATA / "code" / "livecodebench_2408_2501_public_tests.json",
              "humaneval": SHARED_DATA / "code" / "HumanEval.jsonl.gz"}
PROMPTS = {"math": SHARED_DATA / "train" / "math_train_deepscaler.json",
           "code": SHARED_DATA / "train" / "livecodebench_pre2408_train_public_tests.json"}
# Stand-ins written here (not real benchmark or pool rows): GPQA's and no_robots' layouts.
GPQA = {"Record ID": "recA", "Question": "Which gas makes up most of Earth's atmosphere?", "Correct Answer": "Nitrogen",
        "Incorrect Answer 1": "Oxygen", "Incorrect Answer 2": "Argon", "Incorrect Answer 3": "Carbon dioxide"}
NO_ROBOTS = {"prompt_id": "p1", "prompt": "Write a haiku about distillation.", "category": "Generation"}


@pytest.fixture(scope="module")
def local(tmp_path_factory, toy_world):
    tmp = tmp_path_factory.mktemp("stand-ins")
    (tmp / "gpqa.jsonl").write_text(json.dumps(GPQA) + "\n")
    (tmp / "no_robots.jsonl").write_text(json.dumps(NO_ROBOTS) + "\n")
    files = {name: str(path) for name, path in BENCHMARKS.items()}
    files |= {"gpqa_diamond": str(tmp / "gpqa.jsonl"), "toy": str(toy_world / "prompts" / "test.jsonl")}
    return {"benchmarks": files, "general": str(tmp / "no_robots.jsonl")}


def recipe_overrides(path: Path, local, toy_world) -> tuple[list[str], str]:
    """(overrides, eval suite): what the recipe reads that a test machine lacks, pointed at what it has."""
    if path.parts[0] == "teacher":
        if path.stem == "toy":
            return [f"prompts.source={toy_world / 'prompts' / 'train.jsonl'}"], ""
        return [f"prompts.source={PROMPTS.get(path.stem, local['general'])}"], ""
    if not path.stem.startswith("toy"):
        return [], "eval/suites/r1.yaml"
    overrides = []
    from distill.config import read_yaml

    model = read_yaml(ROOT / path)["model"]["name_or_path"]
    if path.parts[0] == "students" and not (ROOT / model).exists():  # a toy model the demo makes
        overrides.append("model.name_or_path=toy/teacher")
    return overrides, "eval/suites/toy.yaml"


def test_every_shipped_config_is_a_kind_the_preflight_knows():
    kinds = {str(p): kind_of(str(ROOT / p), []) for p in RECIPES}
    assert {k for p, k in kinds.items() if p.startswith("students")} == {"student"}
    assert {k for p, k in kinds.items() if p.startswith("teacher")} == {"generation"}
    assert {k for p, k in kinds.items() if p.startswith("eval")} == {"suite"}


@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=str)
def test_every_shipped_recipe_passes_its_preflight(path, real_models, local, toy_world, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    overrides, suite = recipe_overrides(path, local, toy_world)
    options = PreflightOptions(models=str(next(iter(real_models.values())).parents[1]), local=local["benchmarks"],
                               suite=suite or "eval/suites/r1.yaml", out=str(tmp_path))
    done = preflight(str(path), overrides, options)
    assert done["kind"] == kind_of(str(path), overrides)
    if done["kind"] == "student":
        assert done["steps"] == options.steps
    if done["kind"] in ("student", "suite"):
        from distill.config import read_yaml

        benchmarks = read_yaml(ROOT / (suite if done["kind"] == "student" else path))["benchmarks"]
        assert set(done["eval"]) == {b["name"] for b in benchmarks}  # one problem of each, answered and scored


@pytest.mark.slow
def test_the_preflight_of_the_7b_on_policy_recipe_says_what_it_checked(real_models, local, tmp_path):
    """Through the CLI, as a user runs it: the real tokenizers, the teacher's ids by role, one rendered prompt."""
    args = ["preflight", "students/r1-distill-qwen-7b-on-policy.yaml", "--models", str(ROOT / "runs" / "real-models"),
            "--out", str(tmp_path)] + [a for name, f in local["benchmarks"].items() for a in ("--local", f"{name}={f}")]
    done = run_cli(*args, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "stand-in rows in R1's format" in out and "distillation.max_completion_length=16" in out
    assert ("token ids checked: the same 151,643 regular ids; by role: end of turn 151643, start of thinking 151648, "
            "end of thinking 151649") in out
    assert "template deepseek_r1_distill.jinja; end of turn '<｜end▁of▁sentence｜>' (151643), pad '<|fim_pad|>' (151662)" in out
    assert "<｜begin▁of▁sentence｜><｜User｜>Compute " in out and "<｜Assistant｜><think>\n⟦the student's own sample⟧" in out
    assert "fits: " in out and "trained 2 steps" in out and "one problem of each of 5 benchmarks" in out
    assert "passed in" in [line for line in out.splitlines() if line.startswith("[preflight")][-1]


def test_a_recipe_of_no_known_kind_is_one_line(tmp_path):
    odd = tmp_path / "odd.yaml"
    odd.write_text("name: odd\nsomething: 1\n")
    done = run_cli("preflight", odd)
    assert done.returncode == 2 and "neither a student recipe" in done.stderr and "Traceback" not in done.stderr
