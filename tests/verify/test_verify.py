"""Verifiers on real references: MATH-500 / AIME answers and LiveCodeBench public tests; the sandbox
against hostile programs."""

import json
import os
import subprocess
import time

import pytest

from support import SHARED_DATA, run_cli
from support.programs import SECOND_LARGEST, SHORTEST_PATHS
from distill.io import read_jsonl
from distill.verify.code import extract_code, status_and_detail, verify_code
from distill.verify.kinds import answer_item, judge_code, judge_math
from distill.verify.pool import judge_many
from distill.verify.math import MathScorer, score_text
from distill.verify.reasoning import final_answer_text
from distill.verify.sandbox import Limits, LocalSandbox, python_argv

R = "<think>\nworking...\n</think>\n\n"


@pytest.mark.parametrize("answer, reference, correct", [
    ("\\boxed{\\frac{1}{2}}", "0.5", True),  # fraction vs decimal
    ("\\boxed{0.5}", "\\frac{1}{2}", True),
    ("\\boxed{[1, 3)}", "[1,3)", True),  # intervals: open/closed ends matter
    ("\\boxed{(1, 3)}", "[1,3)", False),
    ("\\boxed{\\{1, 2, 3\\}}", "\\{3,2,1\\}", True),  # sets, any order
    ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}", True),  # \\text{} answers
    ("\\boxed{3\\sqrt{13}}", "3\\sqrt{13}", True),
    ("\\boxed{50\\%}", "0.5", False),  # math-verify's documented behaviour (STACK.md)
    ("\\boxed{042}", "42", True),  # AIME integers, leading zeros
    ("\\boxed{41}", "42", False),
    ("\\boxed{\\text{(C)}}", "C", True),  # multiple choice
    ("The answer is (B).", "C", False),
    # GPQA-style letters as models write them; lower-case words and later brackets are not options.
    ("The answer is C (i.e., the third option).", "C", True),
    ("Answer: B\n\n(e.g. by conservation of charge)", "B", True),
    ("The answer is a mixture of both. Answer: $C$", "C", True),
    ("**Answer:** C", "C", True),
    ("The correct answer is **C**.", "C", True),
    ("After all that:\n(D)", "D", True),
    ("A is wrong and so is B.", "B", False),  # no answer named
])
def test_math_scorer(answer, reference, correct):
    verdict = judge_math(R + answer, reference)
    assert verdict.correct is correct, verdict


def test_math_scorer_reasons():
    assert judge_math("\\boxed{42}", "42").reason == "no closing </think>"  # truncated reasoning is wrong
    assert judge_math("\\boxed{42}", "42", reasoning=False).correct  # non-reasoning models: the whole response
    assert judge_math("42\n</think>\n\\boxed{42}", "42").correct  # R1 pre-fills <think>: only the closing tag
    assert judge_math(R + "I give up.", "42").reason == "no answer"
    assert judge_math(R.replace("working...", "\\boxed{7}") + "\\boxed{42}", "42").correct  # answer after </think> only


def test_math500_and_aime_references_score_their_own_answers():
    rows = read_jsonl(SHARED_DATA / "math" / "math500.jsonl")
    aime = read_jsonl(SHARED_DATA / "math" / "aime24.jsonl")
    items = [answer_item(R + f"\\boxed{{{r['answer']}}}", r["answer"]) for r in rows]
    items += [answer_item(R + f"\\boxed{{{r['answer']}}}", str(r["answer"])) for r in aime]
    verdicts = judge_many(items, workers=2)
    wrong = [(i.reference, v) for i, v in zip(items, verdicts) if not v.correct]
    assert len(wrong) <= 5, wrong[:5]  # a reference equals itself (a few exotic LaTeX forms aside)
    shifted = judge_many([answer_item(R + "\\boxed{" + rows[(i + 1) % 50]["answer"] + "}", rows[i]["answer"])
                          for i in range(50)], workers=0)
    assert sum(v.correct for v in shifted) <= 3  # another problem's answer is wrong


@pytest.mark.parametrize("workers", [0, 2])
def test_math_scorer_streams_and_scores_each_distinct_answer_once(workers):
    rows = read_jsonl(SHARED_DATA / "math" / "math500.jsonl")[:40]
    items = []
    for i, r in enumerate(rows):  # per problem: right twice, another problem's answer twice, unclosed once
        other = rows[(i + 1) % len(rows)]["answer"]
        items += [(R + f"\\boxed{{{r['answer']}}}", r["answer"]), (R + f"\\boxed{{{r['answer']}}}", r["answer"]),
                  (R + f"\\boxed{{{other}}}", r["answer"]), (R + f"\\boxed{{{other}}}", r["answer"]),
                  ("\\boxed{1}", r["answer"])]
    got = {}
    with MathScorer(got.__setitem__, workers=workers, chunk=16) as scorer:
        for tag, (response, reference) in enumerate(items):
            scorer.submit(tag, final_answer_text(response, True), score_text, (reference, "auto"), "math")
        scorer.close()
    assert sorted(got) == list(range(len(items)))
    assert [got[i] for i in range(len(items))] == [judge_math(response, reference) for response, reference in items]
    closed = {item for item in items if "</think>" in item[0]}
    assert scorer.distinct == len(closed) > len(rows)  # repeats and unclosed responses are not scored again
    assert scorer.pool is None  # stopped (or never started)


LCB = json.loads((SHARED_DATA / "code" / "livecodebench_2408_2501_public_tests.json").read_text())


def lcb(prefix):
    return next(p for p in LCB if p["problem"].startswith(prefix))


def status(verdict) -> str:
    return status_and_detail(verdict)[0]


def detail(verdict) -> str:
    return status_and_detail(verdict)[1]


def test_livecodebench_stdin_and_functional_tests():
    stdin = LCB[0]
    assert status(verify_code(SECOND_LARGEST, stdin["tests"])) == "passed"
    wrong = verify_code("print(1)", stdin["tests"])
    assert status(wrong) == "failed" and "wrong output" in detail(wrong)
    functional = lcb("You are given an integer n and a 2D integer array queries.\nThere are n cities")
    assert status(verify_code(SHORTEST_PATHS, functional["tests"], functional["starter_code"])) == "passed"
    off_by_one = SHORTEST_PATHS.replace("out.append(dist[n - 1])", "out.append(dist[n - 1] + 1)")
    assert status(verify_code(off_by_one, functional["tests"], functional["starter_code"])) == "failed"
    crash = verify_code("raise ValueError('boom')", stdin["tests"])
    assert status(crash) == "error" and "ValueError: boom" in detail(crash)


def test_assert_and_check_style_tests():
    assert status(verify_code("def add(a, b):\n    return a + b", ["assert add(1, 2) == 3"])) == "passed"
    failed = verify_code("def add(a, b):\n    return a - b", ["assert add(1, 2) == 3"])
    assert status(failed) == "failed" and "AssertionError" in detail(failed)
    check = "def check(candidate):\n    assert candidate(2) == 4\n"
    assert verify_code("def sq(x):\n    return x * x", check, entry_point="sq").correct


def test_response_code_block_extraction():
    response = R + "Here:\n```python\n" + SECOND_LARGEST + "```\n"
    assert extract_code(response) == SECOND_LARGEST
    assert judge_code(response, LCB[0]["tests"]).correct
    assert judge_code("```python\nprint(3)\n```", LCB[0]["tests"]).reason == "no closing </think>"
    assert judge_code(R + "no code", LCB[0]["tests"]).reason == "code error: no code block in the answer"


# Hostile programs: each must be contained, and the verifier must survive to judge the next one.
HOSTILE = {
    "network": "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=2)\nprint('connected')",
    "write outside": "open('/work/distill-sandbox-escape', 'w').write('x')\nprint('wrote')",
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    "memory bomb": "x = []\nwhile True:\n    x.append(bytearray(50 * 1024 * 1024))",
    "infinite loop": "while True:\n    pass",
    "kill parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)\nprint('killed')",
    "disk filler": "f = open('big', 'wb')\nwhile True:\n    f.write(b'0' * (1 << 20))",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_programs_are_contained(name):
    sandbox = LocalSandbox()
    result = sandbox.run({"main.py": HOSTILE[name]}, python_argv(), limits=Limits(wall_s=3, cpu_s=3, memory_mb=512))
    if name == "kill parent":
        # In its own PID namespace the program cannot see the verifier: its parent is the namespace's init
        # (bwrap's), which ignores signals sent from inside. That this test is still running is the proof.
        assert result.stdout == "killed\n"
    else:
        assert result.status in ("error", "timeout"), (name, result)
    assert "connected" not in result.stdout and "wrote" not in result.stdout
    assert not os.path.exists("/work/distill-sandbox-escape")
    assert sandbox.run({"main.py": "print(6 * 7)"}, python_argv()).stdout == "42\n"  # still works


@pytest.mark.slow
def test_background_process_does_not_outlive_the_run():
    marker = f"distill-sandbox-sleeper-{os.getpid()}"
    program = ("import os, subprocess\nif os.fork() == 0:\n    os.setsid()\n"
               f"    subprocess.Popen(['sleep', '300', '{marker}'])\n    os._exit(0)\nprint('parent done')")
    result = LocalSandbox().run({"main.py": program}, python_argv(), limits=Limits(wall_s=3))
    assert result.stdout == "parent done\n"
    time.sleep(0.5)
    survivors = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert survivors == []


def test_verify_code_cli_prints_one_verdict_per_line_in_order(tmp_path):
    lines = [
        {"code": SECOND_LARGEST, "tests": LCB[0]["tests"]},
        {"code": "print(1)", "tests": LCB[0]["tests"]},
        {"code": "while True: pass", "tests": LCB[0]["tests"]},
        {"code": "import sys; sys.exit(3)", "tests": LCB[0]["tests"]},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = run_cli("verify-code", path, "--timeout", "2")
    assert result.returncode == 0, result.stderr
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    assert [v["status"] for v in verdicts] == ["passed", "failed", "timeout", "error"]
    assert [v["correct"] for v in verdicts] == [True, False, False, False]
    assert all(set(v) == {"correct", "reason", "passed", "status", "detail"} for v in verdicts)
    assert verdicts[1]["reason"] == f"code failed: {verdicts[1]['detail']}"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"code": "x"}\n')
    result = run_cli("verify-code", bad)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {bad}:1: expected a JSON object with 'code' and 'tests'"


def test_program_cannot_read_the_expected_outputs_from_the_data_files():
    # Before the sandbox hid the host, this program passed LiveCodeBench tests without solving anything.
    cheat = ("import json, sys\ndata = sys.stdin.read()\n"
             f"problems = json.load(open({str(SHARED_DATA / 'code' / 'livecodebench_2408_2501_public_tests.json')!r}))\n"
             "print(next(t['output'] for p in problems for t in p['tests'] if t['input'] == data))\n")
    verdict = verify_code(cheat, LCB[0]["tests"])
    assert status(verdict) == "error" and "FileNotFoundError" in detail(verdict), verdict


def test_verify_code_cli_wrong_types_are_error_verdicts_and_the_run_goes_on(tmp_path):
    lines = [
        {"code": 5, "tests": ["assert True"]},
        {"code": "x = 1", "tests": [1, 2]},
        {"code": "print(1)", "tests": ["assert True", {"input": "", "output": "1"}]},
        {"code": "print(1)", "tests": [{"input": 5, "output": "1"}]},
        {"code": "x = 1", "tests": {"inputs": [], "outputs": []}},
        {"code": "x = 1", "tests": ["assert x == 1"], "entry_point": ["x"]},
        {"code": "x = 1", "tests": ["assert x == 1"]},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = run_cli("verify-code", path, "--timeout", "5")
    assert result.returncode == 0, result.stderr
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    assert [v["status"] for v in verdicts] == ["error"] * 6 + ["passed"]
    assert [v["detail"] for v in verdicts[:6]] == [
        "code must be a string, got int",
        "tests must be all assert strings or all {input, output} objects, got int",
        "tests must be all assert strings or all {input, output} objects, got dict, str",
        "test 0: input and output must be strings",
        "unsupported tests: {'inputs': [], 'outputs': []}",
        "entry_point must be a string, got list",
    ]


def test_verify_code_cli_writes_its_verdicts_atomically(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"code": "x = 1", "tests": ["assert x == 1"]}) + "\n")
    out = tmp_path / "verdicts.jsonl"
    assert run_cli("verify-code", path, "--out", out).returncode == 0
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == ["passed"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # atomic: no temporary left


@pytest.mark.parametrize("flags, message", [
    (["--timeout", "0"], "--timeout must be above 0, got 0.0"),
    (["--timeout", "-1"], "--timeout must be above 0, got -1.0"),
    (["--timeout", "nan"], "--timeout must be above 0, got nan"),
    (["--memory-mb", "0"], "--memory-mb must be above 0, got 0"),
])
def test_verify_code_cli_refuses_limits_at_or_below_zero(tmp_path, flags, message):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"code": "x = 1", "tests": ["assert x == 1"]}) + "\n")
    result = run_cli("verify-code", path, *flags)
    assert result.returncode == 2 and result.stderr == f"error: {message}\n"


def test_verify_code_cli_names_the_line_of_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(json.dumps({"code": "x = 1", "tests": ["assert x == 1"]}).encode() + b"\n" +
                     b'{"code": "print(\xff)", "tests": ["assert True"]}\n')
    result = run_cli("verify-code", path)
    assert result.returncode == 2 and result.stderr.startswith(f"error: {path}:2: not UTF-8 text")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""  # checked before any program runs


def test_sandbox_refuses_without_namespaces_unless_weak_mode_is_allowed(monkeypatch):
    from distill.verify import sandbox as sb

    monkeypatch.setattr(sb, "find_backend", lambda: "no bwrap found")  # as on a machine without bubblewrap
    with pytest.raises(sb.SandboxUnavailable, match="refusing.*allow_weak"):
        sb.LocalSandbox()
    weak = sb.LocalSandbox(allow_weak=True)
    assert weak.weak and weak.run({"main.py": "print('ran')"}, python_argv()).stdout == "ran\n"


@pytest.mark.parametrize("answer, reference, correct", [
    ("\\frac{2}{4}", "\\frac{1}{2}", True),  # exact rational fast path
    ("\\dfrac{-3}{6}", "-\\frac{1}{2}", True),
    ("3/6", "\\frac{1}{2}", True),
    ("\\frac{2}{5}", "\\frac{1}{2}", False),
    ("0.5", "\\frac{1}{2}", True),  # decimals go to math-verify
])
def test_rational_answers(answer, reference, correct):
    assert judge_math(R + f"\\boxed{{{answer}}}", reference).correct is correct
