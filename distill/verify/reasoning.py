"""The reasoning block of a response: R1 thinks between `<think>` and `</think>`, then answers.

R1's chat template pre-fills `<think>`, so a response may hold only the closing tag.
"""

from __future__ import annotations

THINK_START = "<think>"
THINK_END = "</think>"


def split_reasoning(response: str) -> tuple[str | None, str]:
    """(reasoning, final answer) split at the last `</think>`; (None, response) without one."""
    if THINK_END not in response:
        return None, response
    reasoning, answer = response.rsplit(THINK_END, 1)
    return reasoning.removeprefix(THINK_START).strip("\n"), answer.strip()


def final_answer_text(response: str, reasoning: bool) -> str | None:
    """The part of a response that holds the final answer; None when the reasoning never closed."""
    if not reasoning:
        return response
    if THINK_END not in response:
        return None
    return response.rsplit(THINK_END, 1)[1]


def is_reasoning(response: str) -> bool:
    """A response that opens or closes a reasoning block is a reasoning response (for callers without a setting)."""
    return THINK_START in response or THINK_END in response
