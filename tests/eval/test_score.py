"""`distill score` as a user runs it, on MATH-500 problems with correct and incorrect answers."""

import json
import re

import pytest

from support import SHARED_DATA, run_cli
from distill.eval.metrics import bootstrap_ci
from distill.io import read_jsonl

R = "<think>\nLet me work through this.\n</think>\n\n"
MATH500 = {row["unique_id"]: row for row in read_jsonl(SHARED_DATA / "math" / "math500.jsonl")}


def line(unique_id: str, *responses: str, **fields) -> dict:
    row = MATH500[unique_id]
    response = list(responses) if len(responses) > 1 else responses[0]
    return {"id": unique_id, "problem": row["problem"], "response": response, "answer": row["answer"], **fields}


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


# (line, expected verdicts as (correct, extracted, reason)); the references are MATH-500's own.
CASES = [
    (line("test/algebra/2584.json", R + "So $x = \\boxed{\\dfrac{14}{3}}$."),  # \frac{14}{3}
     [(True, "\\dfrac{14}{3}", "correct")]),
    (line("test/prealgebra/1558.json",  # 1.25
          R + "The answer is $\\boxed{\\frac54}$.",
          R + "The answer is $\\boxed{1.24}$.",
          "<think>\nIt is \\boxed{1.25}, let me check again...",  # truncated reasoning: never closed
          R + "I could not finish this one."),
     [(True, "\\frac{5}{4}", "correct"), (False, "1.24", "wrong answer"), (False, None, "no closing </think>"),
      (False, None, "no answer")]),
    (line("test/algebra/1265.json", R + "$\\boxed{1.5}$"), [(True, "1.5", "correct")]),  # \frac{3}{2}
    (line("test/prealgebra/1622.json", R + "$\\boxed{41}$"), [(False, "41", "wrong answer")]),  # 42
    (line("test/intermediate_algebra/1994.json", R + "$\\boxed{-q + p}$"),  # p - q
     [(True, "-q + p", "correct")]),
    (line("test/precalculus/807.json", R + "$\\boxed{(3, \\pi/2)}$"),  # \left( 3, \frac{\pi}{2} \right)
     [(True, "(3, \\pi/2)", "correct")]),
    (line("test/algebra/1349.json", R + "$\\boxed{Evelyn}$"), [(True, "Evelyn", "correct")]),  # \text{Evelyn}
    (line("test/algebra/1072.json", R + "$\\boxed{\\frac{243}{625}}$ since \\boxed{1} was a guess"),  # last box wins
     [(False, "1", "wrong answer")]),
]


def verdicts(path) -> list[list[tuple]]:
    return [[(v["correct"], v["extracted"], v["reason"]) for v in vs] for vs in read_jsonl(path)]


def expected_line(per_problem: list[float], samples: int) -> str:
    lo, hi = bootstrap_ci(per_problem)
    mean = 100 * sum(per_problem) / len(per_problem)
    return (f"pass@1 = {mean:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}, {len(per_problem)} problems, "
            f"{samples} samples)")


def test_math500_verdicts_pass_at_1_and_verdict_file(tmp_path):
    path = tmp_path / "gens.jsonl"
    write_jsonl(path, [row for row, _ in CASES])
    result = run_cli("score", path, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert verdicts(tmp_path / "gens.verdicts.jsonl") == [[tuple(v) for v in want] for _, want in CASES]
    per_problem = [1, 0.25, 1, 0, 1, 1, 1, 0]
    assert expected_line(per_problem, 11).startswith("pass@1 = 65.6% (95% CI ")
    assert expected_line(per_problem, 11) in result.stdout.splitlines()
    assert "reasoning: answer after the last </think> (detected)" in result.stdout


def test_numeric_answers_in_json_are_read_as_written_numbers(tmp_path):
    path = tmp_path / "gens.jsonl"
    write_jsonl(path, [{"response": "\\boxed{0.00001}", "answer": 1e-05},
                       {"response": "\\boxed{100000000000000000000}", "answer": 1e20},
                       {"response": "\\boxed{27}", "answer": 27.0}, {"response": "\\boxed{2.5}", "answer": 2.5}])
    result = run_cli("score", path, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert [v[0][0] for v in verdicts(tmp_path / "gens.verdicts.jsonl")] == [True, True, True, True]


def test_lists_of_responses_custom_keys_and_out(tmp_path):
    rows = [{"gold": MATH500["test/algebra/2584.json"]["answer"],
             "completions": [R + "\\boxed{3.5}", R + "\\boxed{\\frac{14}{3}}", R + "\\boxed{\\frac72}"]},
            {"gold": 42, "completions": [R + "\\boxed{41}", R + "\\boxed{042}", R + "\\boxed{42}"]}]
    path, out = tmp_path / "gens.jsonl", tmp_path / "sub" / "v.jsonl"
    write_jsonl(path, rows)
    result = run_cli("score", path, "--response-key", "completions", "--answer-key", "gold", "--out", out)
    assert result.returncode == 0, result.stderr
    assert [[v[0] for v in vs] for vs in verdicts(out)] == [[False, True, False], [False, True, True]]
    assert expected_line([1 / 3, 2 / 3], 6) in result.stdout.splitlines()
    assert "cons@3 = 50.0%; pass@1 = 50.0%, pass@2 = 83.3%" in result.stdout  # 3.5 = 7/2 outvote 14/3; 042 = 42
    assert not (tmp_path / "gens.verdicts.jsonl").exists()


def test_responses_key_is_found_without_being_named(tmp_path):
    path = tmp_path / "gens.jsonl"
    write_jsonl(path, [{"responses": [R + "\\boxed{9}", R + "\\boxed{8}"], "answer": "9"}])
    result = run_cli("score", path)
    assert result.returncode == 0, result.stderr
    assert "pass@1 = 50.0% (95% CI 50.0-50.0, 1 problems, 2 samples)" in result.stdout


def test_reasoning_mode_detected_from_the_file_unless_given(tmp_path):
    plain = tmp_path / "plain.jsonl"  # no reasoning block anywhere: a non-reasoning model, whole response scored
    write_jsonl(plain, [{"response": "\\boxed{9}", "answer": "9"}, {"response": "\\boxed{5}", "answer": "9"}])
    result = run_cli("score", plain)
    assert result.returncode == 0, result.stderr
    assert [v[0] for v in verdicts(tmp_path / "plain.verdicts.jsonl")] == [(True, "9", "correct"),
                                                                            (False, "5", "wrong answer")]
    assert "no reasoning: the whole response (detected)" in result.stdout
    result = run_cli("score", plain, "--reasoning")
    assert result.returncode == 0, result.stderr
    assert [v[0][2] for v in verdicts(tmp_path / "plain.verdicts.jsonl")] == ["no closing </think>"] * 2
    assert "pass@1 = 0.0%" in result.stdout and "(given)" in result.stdout

    opened = tmp_path / "opened.jsonl"  # a reasoning block opened and never closed is a reasoning response too
    write_jsonl(opened, [{"response": "<think> \\boxed{9}", "answer": "9"}, {"response": "\\boxed{5}", "answer": "9"}])
    result = run_cli("score", opened)
    assert [v[0][2] for v in verdicts(tmp_path / "opened.verdicts.jsonl")] == ["no closing </think>"] * 2
    assert "reasoning: answer after the last </think> (detected)" in result.stdout

    mixed = tmp_path / "mixed.jsonl"  # one closed reasoning block makes the whole file reasoning
    write_jsonl(mixed, [{"response": "<think> \\boxed{9}", "answer": "9"}, {"response": R + "\\boxed{9}", "answer": "9"}])
    result = run_cli("score", mixed, "--answer-kind", "integer")
    assert [v[0][2] for v in verdicts(tmp_path / "mixed.verdicts.jsonl")] == ["no closing </think>", "correct"]
    result = run_cli("score", mixed, "--no-reasoning")
    assert [v[0][0] for v in verdicts(tmp_path / "mixed.verdicts.jsonl")] == [True, True]


def test_whole_math500_through_the_worker_pool(tmp_path):
    path = tmp_path / "math500.jsonl"
    rows = list(MATH500.values())
    write_jsonl(path, [{"response": R + f"\\boxed{{{r['answer']}}}", "answer": r["answer"]} for r in rows] +
                [{"response": R + f"\\boxed{{{rows[i + 1]['answer']}}}", "answer": rows[i]["answer"]} for i in range(50)])
    result = run_cli("score", path, "--workers", "2")
    assert result.returncode == 0, result.stderr
    found = verdicts(tmp_path / "math500.verdicts.jsonl")
    assert len(found) == 550
    assert sum(v[0][0] for v in found[:500]) >= 495  # a reference equals itself (test_verify: a few exotic forms)
    assert sum(v[0][0] for v in found[500:]) <= 3  # the next problem's answer is wrong
    assert re.search(r"^pass@1 = 9\d\.\d% \(95% CI [\d.]+-[\d.]+, 550 problems, 550 samples\)$", result.stdout, re.M)


@pytest.mark.parametrize("content, message", [
    (None, "{path}: no such file"),
    ('{"response": "\\\\boxed{1}", "answer": "1"}\n{"response": oops}\n', "{path}:2: not valid JSON"),
    ('\n{"response": "\\\\boxed{1}"}\n', "{path}:2: no 'answer' field (set --answer-key)"),
    ('{"text": "\\\\boxed{1}", "answer": "1"}\n', "{path}:1: no 'response' or 'responses' field (set --response-key)"),
    ('{"response": ["x", 3], "answer": "1"}\n', "{path}:1: 'response' must be a string or a non-empty list of strings"),
    ('{"response": "x", "answer": null}\n', "{path}:1: 'answer' must be a string or a number"),
    ('[1, 2]\n', "{path}:1: expected a JSON object, got list"),
    ('\n\n', "{path}: no generations (the file is empty)"),
    (b'\xff\xfe{\x00"\x00', "{path}:1: not UTF-8 text"),
    (b'{"response": "1", "answer": "1"}\n{"response": "2", "answer": "2"}\n{"response": "\xe9", "answer": "3"}\n',
     "{path}:3: not UTF-8 text (byte 15"),  # the line of the bad byte, not of the chunk the reader decoded
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "gens.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = run_cli("score", path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: " + message.format(path=path)), result.stderr
    assert not (tmp_path / "gens.verdicts.jsonl").exists()


def test_progress_lines_for_long_files(monkeypatch):
    from distill.eval import score

    monkeypatch.setattr(score, "PROGRESS_EVERY_S", -1)  # a line after every verdict
    generations = [score.Generation(i + 1, [R + f"\\boxed{{{i}}}"] * 2, str(i % 3)) for i in range(5)]
    lines = []
    found = score.score_generations(generations, reasoning=True, workers=0, log=lines.append)
    assert [[v.correct for v in vs] for vs in found] == [[True, True]] * 3 + [[False, False]] * 2
    assert lines[0].startswith("[score] 1/10 (10%) eta ") and lines[-1].startswith("[score] 10/10 (100%)")


@pytest.mark.parametrize("command, line", [
    ("score", {"response": R + "\\boxed{9}", "answer": "9"}),
    ("verify-code", {"code": "x = 1", "tests": ["assert x == 1"]}),
])
@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_out_equal_to_the_input_is_refused(tmp_path, command, line, link):
    path = tmp_path / "in.jsonl"
    write_jsonl(path, [line])
    before = path.read_bytes()
    out = path if link == "same" else tmp_path / "out.jsonl"
    if link == "symlink":
        out.symlink_to(path)
    elif link == "hardlink":
        out.hardlink_to(path)
    result = run_cli(command, path, "--out", out)
    assert result.returncode == 2 and result.stderr == f"error: --out {out} is the input {path}: writing the output " \
        "would destroy the input; choose another --out\n"
    assert path.read_bytes() == before


def test_workers_below_one_are_refused_and_one_scores_in_process(tmp_path):
    path = tmp_path / "gens.jsonl"
    write_jsonl(path, [{"response": R + f"\\boxed{{{i}}}", "answer": str(i)} for i in range(200)])  # a pool's worth
    for workers in ("-1", "0"):
        result = run_cli("score", path, "--workers", workers)
        assert result.returncode == 2
        assert result.stderr == f"error: --workers must be 1 (score in this process) or more, got {workers}\n"
    assert not (tmp_path / "gens.verdicts.jsonl").exists()
    result = run_cli("score", path, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "pass@1 = 100.0%" in result.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # written atomically, no leftovers
