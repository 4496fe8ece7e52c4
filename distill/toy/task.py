"""A synthetic reasoning task with exact integer answers: chains like "Compute 12 + 5 - 30."

Deterministic by seed. Train and test are disjoint by construction: a problem's split is decided by a
hash of its text, so no generation order or seed can put one problem in both.
"""

from __future__ import annotations

import hashlib
import operator
import random
from dataclasses import dataclass

from distill.config import Section

R1_MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


class ToyTaskConfig(Section):
    """Difficulty knobs of the arithmetic-chain task."""

    min_operand: int = 0
    max_operand: int = 49
    min_ops: int = 2
    max_ops: int = 3
    operators: str = "+-"
    test_percent: int = 10  # share of the problem space (by hash) reserved for test


@dataclass(frozen=True)
class Problem:
    operands: tuple[int, ...]
    ops: tuple[str, ...]

    @property
    def text(self) -> str:
        parts = [str(self.operands[0])]
        for op, value in zip(self.ops, self.operands[1:]):
            parts += [op, str(value)]
        return "Compute " + " ".join(parts) + "."

    def steps(self) -> list[tuple[int, str, int, int]]:
        """Left-to-right evaluation: (left, op, right, result) per step."""
        acc, out = self.operands[0], []
        for op, value in zip(self.ops, self.operands[1:]):
            result = OPERATORS[op](acc, value)
            out.append((acc, op, value, result))
            acc = result
        return out

    @property
    def answer(self) -> int:
        return self.steps()[-1][3]

    def reasoning(self) -> str:
        return "\n".join(f"{a} {op} {b} = {r}" for a, op, b, r in self.steps())

    def response(self) -> str:
        """The programmatic chain of thought in R1's format: reasoning in <think>, boxed final answer."""
        return f"<think>\n{self.reasoning()}\n</think>\n\nThe answer is \\boxed{{{self.answer}}}."


def split_of(text: str, test_percent: int) -> str:
    bucket = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % 100
    return "test" if bucket < test_percent else "train"


def sample_problem(rng: random.Random, cfg: ToyTaskConfig) -> Problem:
    n_ops = rng.randint(cfg.min_ops, cfg.max_ops)
    operands = tuple(rng.randint(cfg.min_operand, cfg.max_operand) for _ in range(n_ops + 1))
    ops = tuple(rng.choice(cfg.operators) for _ in range(n_ops))
    return Problem(operands, ops)


def generate(cfg: ToyTaskConfig, split: str, count: int, seed: int) -> list[Problem]:
    """`count` distinct problems of `split`, the same list for the same (cfg, split, count, seed)."""
    rng = random.Random(f"{seed}-{split}")
    seen: set[str] = set()
    problems: list[Problem] = []
    attempts = 0
    while len(problems) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"toy task: could not draw {count} distinct {split} problems; widen the difficulty knobs")
        problem = sample_problem(rng, cfg)
        text = problem.text
        if text in seen or split_of(text, cfg.test_percent) != split:
            continue
        seen.add(text)
        problems.append(problem)
    return problems


def prompt_record(problem: Problem, split: str, index: int) -> dict:
    """The prompt schema shared with real prompt sources: id, problem, answer (+ difficulty)."""
    return {
        "id": f"toy-{split}-{index:06d}",
        "problem": problem.text,
        "answer": str(problem.answer),
        "difficulty": len(problem.ops),
    }


def user_message(problem_text: str) -> str:
    return f"{problem_text}\n{R1_MATH_INSTRUCTION}"


def sft_record(problem: Problem, split: str, index: int) -> dict:
    record = prompt_record(problem, split, index)
    record["messages"] = [
        {"role": "user", "content": user_message(problem.text)},
        {"role": "assistant", "content": problem.response()},
    ]
    return record
