"""Curation filters and benchmark decontamination on realistic traces and the real benchmark files."""

import json

from support import SHARED_DATA
from distill.curate.decontaminate import Decontaminator
from distill.curate.filters import format_reason, language_reason, length_reason, repetition_reason, script_share
from distill.io import read_jsonl

GOOD = "<think>\nLet me compute 12 + 30 = 42.\n</think>\n\nThe answer is \\boxed{42}."


def test_format_filter():
    assert format_reason(GOOD, "stop") is None
    assert format_reason("Let me think\n</think>\n\\boxed{1}", "stop") is None  # R1 pre-fills <think>
    assert format_reason(GOOD, "length") == "truncated (finish_reason length)"
    assert format_reason("<think>\nforever", "stop") == "format: no closing </think>"
    assert format_reason(GOOD + "\n<think>\nagain\n</think>\nx", "stop") == "format: more than one reasoning block"
    assert format_reason("<think>\nx\n</think>\n\n   ", "stop") == "format: no final answer after </think>"


def test_length_filter():
    assert length_reason(500, 10, 32768) is None
    assert length_reason(5, 10, None) == "length: 5 < 10 tokens"
    assert length_reason(40000, 10, 32768) == "length: 40000 > 32768 tokens"


def test_language_mixing_filter():
    english = "First, expand the square: (x+1)^2 = x^2 + 2x + 1. Then compare coefficients."
    mixed = english + " 所以我们需要重新检查这个方程的系数，然后再计算一次答案是多少。嗯，让我想一想这个问题。"
    assert script_share(english, "latin") == 1.0
    assert language_reason(english, "latin", 0.95) is None
    reason = language_reason(mixed, "latin", 0.95)
    assert reason is not None and reason.startswith("language mixing:")
    assert language_reason("1 + 2 = 3", "latin", 0.95) is None  # no letters: nothing to judge


def test_repetition_filter():
    normal = "\n".join(r["problem"] for r in read_jsonl(SHARED_DATA / "math" / "math500.jsonl")[:20])
    assert repetition_reason(normal, 6, 0.3, 5) is None
    templated = " ".join(f"step {i}: add {i} to the total and check the parity of the result" for i in range(30))
    assert repetition_reason(templated, 6, 0.3, 5).startswith("repetition: a 6-gram")
    loop = "Wait, let me recompute the sum of the first terms again.\n" * 12
    assert repetition_reason(loop, 6, 0.3, 5) == "repetition: a line repeated 12 times"
    babble = "so the answer is so the answer is " * 40
    assert repetition_reason(babble, 4, 0.3, 5).startswith("repetition: a 4-gram covers")


def test_decontamination_flags_benchmark_problems_and_not_others():
    decon = Decontaminator(n=8)
    math500 = read_jsonl(SHARED_DATA / "math" / "math500.jsonl")
    aime = read_jsonl(SHARED_DATA / "math" / "aime24.jsonl")
    decon.add("math500", (r["problem"] for r in math500))
    decon.add("aime24", (r["problem"] for r in aime))
    # A training prompt that embeds an AIME problem (reformatted) is caught and named.
    leaked = "Solve carefully. " + aime[3]["problem"].upper().replace("\n", " ")
    assert decon.match(leaked) == "aime24#3"
    assert decon.match(math500[10]["problem"]) == "math500#10"
    clean = [r["question"] for r in read_jsonl(SHARED_DATA / "math" / "gsm8k_test.jsonl")[:200]]
    assert sum(decon.match(p) is not None for p in clean) <= 2
    assert decon.match("Compute 12 + 5 - 30.") is None  # shorter than 8 words: nothing to match


def test_decontamination_ignores_stock_phrasing_and_matches_short_problems_whole():
    lcb = json.loads((SHARED_DATA / "code" / "livecodebench_2408_2501_public_tests.json").read_text())
    train = json.loads((SHARED_DATA / "train" / "livecodebench_pre2408_train_public_tests.json").read_text())
    any_gram = Decontaminator(n=8, min_overlap=0, boilerplate_problems=10**9)  # open-r1's rule: one shared 8-gram flags
    decon = Decontaminator(n=8)
    for d in (any_gram, decon):
        d.add("livecodebench", (p["problem"] for p in lcb))
    # Older contest problems share the benchmark's input/output boilerplate, not its problems.
    assert sum(any_gram.match(p["problem"]) is not None for p in train) > len(train) // 2
    assert [p["problem"][:60] for p in train if decon.match(p["problem"])] == []
    # Part of one benchmark problem is still caught, and so is the whole of one shorter than 8 words.
    assert decon.match("Please solve: " + lcb[3]["problem"][:400]) == "livecodebench#3"
    decon.add("math500", ["Simplify $\\sqrt{242}$."])
    assert decon.match("simplify  $\\sqrt{242}$ ") == "math500#0"
    assert decon.match("Simplify $\\sqrt{242}$ and then add 3.") is None


def test_near_duplicates_by_minhash():
    from distill.curate.filters import near_duplicates

    base = " ".join(f"step {i} multiplies {i * 7} by three and carries {i % 3} into the next column" for i in range(40))
    edited = base.replace("step 39", "final step 39")  # one word added at the end
    other = " ".join(f"first we factor {i * 11} into primes and list {i + 2} divisors" for i in range(40))
    assert near_duplicates([base, other, edited], threshold=0.8, shingle=5, num_perm=128) == {2: 0}
