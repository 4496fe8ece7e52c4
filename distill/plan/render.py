"""A plan as aligned plain text (readable in a terminal, a log or a Slurm file) or as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Plan:
    title: str
    facts: list[tuple[str, str, str]] = field(default_factory=list)  # (what, value, where it comes from)
    table: tuple[list[str], list[list[str]]] | None = None  # (header, rows)
    table_title: str = ""
    verdict: str = ""
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def fact(self, what: str, value: str, how: str = "") -> None:
        self.facts.append((what, value, how))


def gib(value: float) -> str:
    return f"{value / 2**30:.1f}"


def count(n: float) -> str:
    """1.54B, 0.4M, 12.3k: parameter and token counts of any size."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}" if unit == "B" else f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def amount(x: float, prefix: str = "") -> str:
    """Hours or dollars: whole above 10, else two significant digits (a toy run costs fractions of a GPU-hour)."""
    return f"{prefix}{x:,.0f}" if x >= 10 else f"{prefix}{x:.2g}"


def text(plan: Plan) -> str:
    out = [plan.title, ""]
    width = max((len(w) for w, _, _ in plan.facts), default=0)
    for what, value, how in plan.facts:
        out.append(f"  {what:<{width}}  {value}")
        if how:
            out.append(f"  {'':<{width}}    ({how})")
    if plan.table:
        header, rows = plan.table
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        out += ["", plan.table_title]
        for row in [header, *rows]:
            out.append("  " + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                        for i, (c, w) in enumerate(zip(row, widths))))
    if plan.notes:
        out += [""] + [f"  - {n}" for n in plan.notes]
    if plan.verdict:
        out += ["", plan.verdict]
    return "\n".join(out)


def as_json(plan: Plan) -> str:
    return json.dumps(plan.data, indent=2, default=str)
