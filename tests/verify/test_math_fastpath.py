"""The numeric "not equal" fast path in front of math-verify's verify gives math-verify's own verdicts.

Every MATH-500 reference against itself, easy equivalent rewritings, near-equal decimals, references of
other problems and perturbed numbers: `_math_verify` (with the fast path) and plain math_verify.parse/verify
must agree on every pair. Pairs are sampled (seeded) to keep the test under a minute.
"""

from __future__ import annotations

import json
import random
import re
from fractions import Fraction

import pytest

from distill.verify import math as mathv
from distill.verify.kinds import judge_math
from support import SHARED_DATA

MATH500 = SHARED_DATA / "math" / "math500.jsonl"


def references() -> list[str]:
    if not MATH500.exists():
        pytest.skip(f"{MATH500} not found")
    return [json.loads(line)["answer"] for line in MATH500.read_text().splitlines() if line.strip()]


def rewritings(ref: str) -> list[str]:
    """Equivalent (or, for rounded decimals, near-equal) forms of a reference that are easy to write."""
    spaced = re.sub(r"\s*([+=]|\\cdot)\s*", r" \1 ", ref).replace("}{", "} {")
    out = {ref.replace("\\dfrac", "\\frac"), re.sub(r"\\d?frac", r"\\dfrac", ref), spaced}
    m = re.fullmatch(r"(-?)\\[dt]?frac\{?(\d+)\}?\{?(\d+)\}?", ref.strip())
    if m:
        value = Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) else 1)
        out |= {f"{m.group(1)}{m.group(2)}/{m.group(3)}", f"{float(value):.7f}", f"{float(value):.6f}", f"{float(value):.2f}"}
    if re.fullmatch(r"-?\d+", ref.strip()):
        n = int(ref)
        out |= {f"{n}.0", f"{n + 1e-7:.7f}", f"{n}.00001", f"{n}.0002", f"{n}.01", f"\\frac{{{2 * n}}}{{2}}"}
    if re.fullmatch(r"-?\d*\.\d+", ref.strip()):
        out |= {str(Fraction(ref.strip()).limit_denominator(10**6)).replace("/", "\\div"), f"{float(ref) + 2e-7:.9f}"}
    out.discard(ref)
    return sorted(out)


def perturbed(ref: str, rng: random.Random) -> list[str]:
    """The reference with one of its numbers changed a little (wrong, unless the digit was irrelevant)."""
    spans = [m.span() for m in re.finditer(r"\d+", ref)]
    out = []
    for start, end in rng.sample(spans, min(2, len(spans))):
        n = int(ref[start:end])
        out.append(ref[:start] + str(n + rng.choice([1, 2, 7, 10])) + ref[end:])
    return out


# (reference, answer): percentages, near-equal numbers, sets, intervals, equations, complex numbers, units
HAND = [("9\\%", "9"), ("50\\%", "0.5"), ("50\\%", "50"), ("0.5", "50\\%"), ("12.5\\%", "12.6\\%"), ("\\pi", "3.14159265"),
        ("\\pi", "3.14"), ("\\frac{\\pi}{6}", "30^\\circ"), ("30^\\circ", "30"), ("30^\\circ", "31"),
        ("\\{1,2\\}", "\\{2,1\\}"), ("\\{1,2\\}", "3"), ("(1,2)", "1"), ("[0,1)", "1"), ("x=5", "5"), ("5", "x=5"),
        ("5", "x=6"), ("y=2x+3", "2x+3"), ("1+i", "1-i"), ("1+i", "2"), ("i", "1"), ("\\sqrt{-4}", "2"), ("\\infty", "1000"),
        ("\\text{(C)}", "3"), ("10,\\!080", "10080"), ("10,\\!080", "10081"), ("1,2", "1"), ("\\frac{1}{3}", "0.333333"),
        ("\\frac{1}{3}", "0.3333"), ("2\\sqrt{2}", "\\sqrt{8}"), ("2\\sqrt{2}", "\\sqrt{9}"), ("e^{i\\pi}", "-1"),
        ("\\log_2 8", "3"), ("\\log_2 8", "4"), ("\\sin 30^\\circ", "0.5"), ("10^{100}", "10^{100}+1"),
        ("10^{100}", "2\\cdot 10^{100}"), ("\\frac{0}{0}", "1"), ("5!", "120"), ("5!", "121"), ("\\binom{5}{2}", "10"),
        ("\\binom{5}{2}", "11"), ("3 \\text{ cm}", "3"), ("3 \\text{ cm}", "4"), ("\\$5.00", "5"), ("-\\frac{1}{2}", "-0.5"),
        ("-\\frac{1}{2}", "0.5"), ("0", "-0"), ("0", "0.0001"), ("0", "0.001")]


def plain(text: str, reference: str) -> bool:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold = parse(f"${reference}$", extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()]) or parse(reference)
    pred = parse(text, extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()])
    return bool(pred) and bool(verify(gold, pred))


def pairs(sample: float = 1.0, seed: int = 0) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    refs = references()
    out = []
    for i, ref in enumerate(refs):
        answers = [("self", ref)]
        answers += [("rewrite", r) for r in rewritings(ref)]
        answers += [("other", refs[j]) for j in rng.sample([j for j in range(len(refs)) if j != i], 3)]
        answers += [("perturbed", p) for p in perturbed(ref, rng)]
        out += [(what, ref, answer) for what, answer in answers if what == "self" or rng.random() < sample]
    out += [("hand", ref, answer) for ref, answer in HAND]
    return out


def test_fast_path_agrees_with_math_verify(monkeypatch):
    fired = []
    original = mathv._clearly_not_equal

    def spy(reference, gold, pred):
        fired.append(original(reference, gold, pred))
        return fired[-1]

    monkeypatch.setattr(mathv, "_clearly_not_equal", spy)
    disagreements, counts = [], {}
    for what, ref, answer in pairs():
        text = f"So the final answer is $\\boxed{{{answer}}}$."
        want = plain(text, ref)
        counts[what, want] = counts.get((what, want), 0) + 1
        fast, scored = mathv._math_verify(text, ref), judge_math(f"<think>...</think>{text}", ref)
        if fast.correct != want or scored.correct != want:
            disagreements.append((what, ref, answer, fast, scored, want))
    assert not disagreements, disagreements[:10]
    # both verdicts, and the fast path, are exercised
    assert counts["self", True] == 500 and counts["rewrite", True] >= 500 and counts["other", False] >= 1400, counts
    assert sum(fired) >= 1000, (counts, sum(fired))
