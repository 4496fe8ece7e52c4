"""Eval metrics against brute force and hand-computed cases."""

import itertools

import numpy as np
import pandas as pd
import pytest

from distill.eval import metrics
from distill.eval.metrics import (benchmark_results, bootstrap_ci, bootstrap_means, cons_at_n, ks_up_to, length_stats,
                                  majority_vote_correct, paired_bootstrap, pass_at_1, pass_at_k, pass_at_k_mean)


def brute_force_pass_at_k(verdicts: list[bool], k: int) -> float:
    """The share of k-sample subsets holding at least one correct sample."""
    subsets = list(itertools.combinations(verdicts, k))
    return sum(any(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n, c", [(1, 0), (1, 1), (4, 0), (4, 1), (5, 2), (6, 3), (8, 7), (8, 8), (10, 1)])
def test_pass_at_k_equals_brute_force(n, c):
    verdicts = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(verdicts, k), abs=1e-12), (n, c, k)


def test_pass_at_k_large_n_and_bad_arguments():
    assert pass_at_k(1000, 1, 1) == pytest.approx(0.001)
    assert pass_at_k(1000, 10, 500) == pytest.approx(1 - np.prod([(990 - i) / (1000 - i) for i in range(500)]))
    for n, c, k in [(4, 5, 1), (4, 2, 0), (4, 2, 5), (4, -1, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def test_pass_at_k_mean_and_pass_at_1():
    correct = [[True, False, False, False], [True, True, False, False], [False] * 4]
    assert pass_at_1(correct) == pytest.approx((0.25 + 0.5 + 0) / 3)
    assert pass_at_k_mean(correct, 1) == pytest.approx(pass_at_1(correct))
    assert pass_at_k_mean(correct, 2) == pytest.approx((0.5 + 5 / 6 + 0) / 3)
    assert pass_at_k_mean(correct, 4) == pytest.approx(2 / 3)


def test_ks_up_to():
    assert ks_up_to(1) == [1]
    assert ks_up_to(4) == [1, 2, 4]
    assert ks_up_to(6) == [1, 2, 4]
    assert ks_up_to(64) == [1, 2, 4, 8, 16, 32, 64]


def test_bootstrap_ci_contains_the_mean_narrows_with_more_problems_and_is_seeded():
    rng = np.random.default_rng(1)
    few, many = rng.random(20) < 0.6, rng.random(500) < 0.6
    lo_few, hi_few = bootstrap_ci(few)
    lo_many, hi_many = bootstrap_ci(many)
    assert lo_few < few.mean() < hi_few and lo_many < many.mean() < hi_many
    assert hi_many - lo_many < (hi_few - lo_few) / 3  # width ~ 1/sqrt(problems): 5x narrower
    normal_width = 2 * 1.96 * np.sqrt(many.mean() * (1 - many.mean()) / many.size)
    assert hi_many - lo_many == pytest.approx(normal_width, rel=0.1)
    assert bootstrap_ci(many, seed=3) == bootstrap_ci(many, seed=3)
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)


def test_bootstrap_blocks_give_every_resample(monkeypatch):
    monkeypatch.setattr(metrics, "BOOTSTRAP_BLOCK", 70)  # 7 resamples of 10 problems per block
    means = bootstrap_means(np.arange(10), resamples=100)
    assert means.shape == (100,) and means.std() > 0
    assert 3.5 < means.mean() < 5.5


def test_majority_vote_ties_go_to_the_earliest_answer():
    assert majority_vote_correct(["3", "5"], [True, False])
    assert not majority_vote_correct(["5", "3"], [False, True])
    assert not majority_vote_correct(["5", "3", "3", "5"], [False, True, True, False])
    assert majority_vote_correct(["5", "3", "3", "5", "3"], [False, True, True, False, True])


def test_majority_vote_groups_answers_the_scorer_finds_equal():
    # 0.5 and \frac{1}{2} are one wrong answer: two votes beat the single correct one...
    assert not majority_vote_correct(["7", "0.5", "\\frac{1}{2}"], [True, False, False])
    # ...but not when only identical strings vote together (a three-way tie, the correct answer first)
    assert majority_vote_correct(["7", "0.5", "\\frac{1}{2}"], [True, False, False], same=str.__eq__)
    # correct answers in different forms vote together
    assert majority_vote_correct(["\\frac{3}{2}", "1.5", "2", "2"], [True, True, False, False])
    assert not majority_vote_correct(["2", "2", "\\frac{3}{2}", "1.5"], [False, False, True, True])


def test_majority_vote_ignores_samples_without_an_answer():
    assert majority_vote_correct([None, None, None, "3"], [False, False, False, True])
    assert not majority_vote_correct([None, None], [False, False])
    assert cons_at_n([["1", "2", "2"], ["4", "4", "1"], [None, "9"]],
                     [[False, True, True], [False, False, True], [False, True]]) == pytest.approx(2 / 3)


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    b = (rng.random(200) < 0.5).astype(float)
    same = paired_bootstrap(b, b)
    assert same.mean == 0 and same.ci95 == (0.0, 0.0)
    noisy = (rng.random(200) < 0.5).astype(float)  # a different model of the same strength
    tie = paired_bootstrap(noisy, b)
    assert tie.ci95[0] < 0 < tie.ci95[1] and 0.05 < tie.share_le_0 < 0.95
    better = np.where(rng.random(200) < 0.3, 1.0, b)  # B's answers, plus 30% more problems solved
    win = paired_bootstrap(better, b)
    assert win.mean == pytest.approx(better.mean() - b.mean())
    assert 0 < win.ci95[0] < win.mean < win.ci95[1] and win.share_le_0 == 0
    assert paired_bootstrap(b, better).ci95[1] < 0
    with pytest.raises(ValueError):
        paired_bootstrap([1, 0], [1, 0, 1])


def test_paired_bootstrap_resamples_problems_jointly():
    # A is B plus 0.01 on every problem: the problems vary a lot, the difference never does
    b = np.random.default_rng(0).random(100)
    result = paired_bootstrap(b + 0.01, b)
    assert result.ci95 == (pytest.approx(0.01), pytest.approx(0.01)) and result.share_le_0 == 0


def test_length_stats():
    assert length_stats([10, 20, 30, 40, 1000]) == {"mean": 220.0, "median": 30.0, "p90": pytest.approx(616.0), "max": 1000}
    assert length_stats([]) == {"mean": None, "median": None, "p90": None, "max": None}


def records():
    rows = []
    # aime: 3 problems x 4 samples; math: 2 problems x 2 samples, plus a third problem with 3 samples
    aime = {"p1": [("5", True), ("5", True), ("6", False), ("6", False)],
            "p2": [("1", False), ("2", False), ("2", False), ("3", True)],
            "p3": [(None, False)] * 4}
    math = {"m1": [("\\frac{1}{2}", True), ("0.5", True)], "m2": [("1", False), ("2", True)],
            "m3": [("1", False), ("1", False), ("0", True)]}
    for benchmark, problems in (("aime", aime), ("math", math)):
        for problem, samples in problems.items():
            for i, (extracted, correct) in reversed(list(enumerate(samples))):  # stored out of sample order
                rows.append({"benchmark": benchmark, "problem_id": problem, "sample": i, "correct": correct,
                             "extracted": extracted, "response_tokens": 100 * (i + 1)})
    return rows


def test_benchmark_results_shape_and_values():
    results = benchmark_results(records())
    assert list(results) == ["aime", "math"]
    aime = results["aime"]
    assert list(aime) == ["problems", "samples", "pass@1", "ci95", "cons@n", "n", "pass@k", "length", "per_problem"]
    assert aime["problems"] == 3 and aime["samples"] == 12 and aime["n"] == 4
    assert aime["pass@1"] == pytest.approx(100 * (0.5 + 0.25 + 0) / 3)
    assert aime["ci95"][0] <= aime["pass@1"] <= aime["ci95"][1] and aime["ci95"][1] <= 100
    assert aime["cons@n"] == pytest.approx(100 / 3)  # p1: tie 5/6, 5 seen first; p2: "2" wins; p3: no answer
    assert list(aime["pass@k"]) == ["1", "2", "4"]
    assert aime["pass@k"]["1"] == pytest.approx(aime["pass@1"])
    assert aime["pass@k"]["2"] == pytest.approx(100 * (5 / 6 + 0.5 + 0) / 3)
    assert aime["pass@k"]["4"] == pytest.approx(200 / 3)
    assert aime["length"] == {"mean": 250.0, "median": 250.0, "p90": 400.0, "max": 400}
    assert aime["per_problem"] == {"p1": 0.5, "p2": 0.25, "p3": 0.0}
    math = results["math"]
    assert math["n"] == 2 and math["samples"] == 7 and list(math["pass@k"]) == ["1", "2"]  # smallest count
    assert math["cons@n"] == pytest.approx(100 / 3)  # m1 correct; m2 tie, "1" first; m3 "1" twice
    assert math["pass@1"] == pytest.approx(100 * (1 + 0.5 + 1 / 3) / 3)


def test_benchmark_results_from_a_dataframe_with_numpy_types():
    frame = pd.DataFrame(records())
    assert benchmark_results(frame) == benchmark_results(records())
    frame["problem_id"] = frame["problem_id"].str[1:].astype(int)
    assert list(benchmark_results(frame)["aime"]["per_problem"]) == ["1", "2", "3"]


def test_benchmark_results_without_extracted_answers_has_no_cons():
    code = [{"benchmark": "lcb", "problem_id": "q", "sample": i, "correct": i == 1, "extracted": None,
             "response_tokens": 5} for i in range(4)]
    result = benchmark_results(code)["lcb"]
    assert result["cons@n"] is None and result["pass@1"] == 25.0 and result["pass@k"]["4"] == 100.0
