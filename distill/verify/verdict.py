"""The one verdict type: is a response right, and if not, why."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Verdict:
    correct: bool
    # "correct", "wrong answer", "no answer", "no closing </think>", "verifier error: ...",
    # "code failed: ...", "code timeout: ...", "code error: ..."
    reason: str
    extracted: str | None = None  # the answer read from the response (math and choice)
    verified: bool = True  # False: nothing to check the response against, taken as it is (see UNVERIFIED)


# A response kept without a check: it has no reference (curate.accept_unverified) or no verifier was asked for
# (curate.verifier: none). It counts as neither right nor wrong in a pass rate.
UNVERIFIED = Verdict(True, "unverified", verified=False)


@lru_cache(maxsize=65_536)
def shared_verdict(correct: bool, reason: str) -> Verdict:
    """One instance per (correct, reason), for the many verdicts a curation holds at once (most reasons repeat)."""
    return Verdict(correct, reason)
