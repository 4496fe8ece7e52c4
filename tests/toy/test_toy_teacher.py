"""The committed toy teacher, and the toy-teacher build command (at reduced size)."""

import json

import pytest

from support import ROOT, run_cli
from distill.io import read_jsonl
from distill.toy.check import boxed_integer, check_model
from distill.toy.teacher import PASS_BAND

TEACHER = ROOT / "toy" / "teacher"


def test_boxed_integer_reads_the_final_answer_only():
    assert boxed_integer("<think>\n\\boxed{3}\n</think>\n\nThe answer is \\boxed{-12}.") == -12
    assert boxed_integer("<think>\n1 + 2 = 3\nThe answer is \\boxed{3}.") is None  # no closing </think>
    assert boxed_integer("<think>\n</think>\n\nno box") is None


def test_committed_teacher_was_built_inside_the_band():
    report = json.loads((TEACHER / "toy_teacher.json").read_text())
    assert PASS_BAND[0] <= report["pass_at_1"] <= PASS_BAND[1]
    assert report["problems"] == 200 and report["samples_per_problem"] == 4 and report["temperature"] == 0.6
    assert sum(f.stat().st_size for f in TEACHER.iterdir()) < 5 * 2**20


@pytest.mark.slow
def test_committed_teacher_is_good_but_imperfect_on_fresh_problems(toy_world):
    # Held-out problems (the test split), sampled with another seed than the build's check.
    problems = read_jsonl(toy_world / "prompts" / "test.jsonl")
    result = check_model(str(TEACHER), problems, k=4, temperature=0.6, top_p=0.95, seed=1)
    assert 0.4 <= result.pass_at_1 <= 0.95, result
    assert result.stopped > 0.95


@pytest.mark.slow
def test_toy_teacher_command_builds_trains_checks_and_guards_the_band(tmp_path):
    world, installed = tmp_path / "world", tmp_path / "teacher"
    result = run_cli(
        "toy-teacher", ROOT / "configs" / "toy-world.yaml", "train_problems=1000", "test_problems=20",
        "tokenizer_corpus_problems=500", f"world_dir={world}", f"teacher_dir={installed}",
        f"recipe.model.name_or_path={world / 'bases' / 'qwen2-h128-l2'}", f"recipe.data.source={world / 'sft'}",
        f"recipe.run_dir={tmp_path / 'run'}", "recipe.training.max_steps=6", "recipe.training.save_steps=100",
    )
    # Six steps make a teacher far below the band: it is reported, kept in its run, and not installed.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[toy-teacher] pass@1 0.0" in result.stdout and "OUTSIDE the 0.5-0.9 band" in result.stdout
    assert "outside (0.5, 0.9)" in result.stderr and not installed.exists()
    report = json.loads((tmp_path / "run" / "model" / "toy_teacher.json").read_text())
    assert report["problems"] == 20 and not report["in_band"]
