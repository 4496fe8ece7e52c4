"""`distill preflight CONFIG`: what a user runs on a CPU, in minutes, before spending GPU money on a recipe.

A student recipe (students/), a generation run (teacher/runs/) or an eval suite (eval/suites/) runs through the real
code path with its real tokenizers and templates, on models shrunk to two layers of the same architecture; what must
differ on a CPU is printed. See student.py, teacher.py and suite.py for what each checks."""

from __future__ import annotations

from distill.config import deep_merge, parse_overrides, read_yaml
from distill.errors import UsageError
from distill.preflight.options import PreflightOptions


def kind_of(path: str, overrides: list[str]) -> str:
    data = deep_merge(read_yaml(path), parse_overrides(overrides))
    if "model" in data and "training" in data:
        return "student"
    if "prompts" in data and "training" not in data:
        return "generation"
    if "benchmarks" in data:
        return "suite"
    raise UsageError(f"{path}: neither a student recipe (model, data, training: students/*.yaml), a generation run "
                     "(prompts, sampling: teacher/runs/*.yaml) nor an eval suite (benchmarks: eval/suites/*.yaml)")


def preflight(path: str, overrides: list[str] | None = None, options: PreflightOptions | None = None) -> dict:
    """Run the preflight of `path`; returns what it did (kind, seconds, eval scores). Raises on the first failure."""
    overrides, options = overrides or [], options or PreflightOptions()
    kind = kind_of(path, overrides)
    if kind == "student":
        from distill.preflight.student import preflight_student

        return preflight_student(path, overrides, options)
    if kind == "generation":
        from distill.preflight.teacher import preflight_generation

        return preflight_generation(path, overrides, options)
    from distill.preflight.suite import preflight_suite

    return preflight_suite(path, overrides, options)
