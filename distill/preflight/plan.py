"""The plan of the real run, in one line, for a preflight's output."""

from __future__ import annotations

from distill.errors import UsageError


def plan_of(path: str, overrides: list[str]) -> str:
    """The plan's main lines for the real run (real sizes, the recipe's GPUs): GPUs, parameters, GPU-hours, cost, fit."""
    from distill.plan import make_plan
    from distill.plan.render import text

    try:
        lines = [" ".join(line.split()) for line in text(make_plan(path, overrides)).splitlines()]
    except UsageError as exc:
        raise UsageError(f"plan: {exc}") from None
    keys = ("GPUs ", "parameters ", "GPU-hours ", "cost ", "fits:", "does not fit", "prompts ", "samples ")
    return "; ".join(line for line in lines if line.startswith(keys)) or lines[0]
