"""The one verdict type: is a response right, and if not, why."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Verdict:
    correct: bool
    # "correct", "wrong answer", "no answer", "no closing </think>", "verifier error: ...",
    # "code failed: ...", "code timeout: ...", "code error: ..."
    reason: str
    extracted: str | None = None  # the answer read from the response (math and choice)

    def to_dict(self) -> dict:
        return asdict(self)
