"""`distill prompts`: prompt pools merged and deduplicated across sources, on the real pools of ../shared/data/train."""

import json
import re

import pytest
import yaml

from support import SHARED_DATA
from distill.cli import main
from distill.config import load_config
from distill.teacher.pool_dedup import ProblemDeduper, boilerplate_shingles, normalise
from distill.teacher.prompts import load_prompts

TRAIN = SHARED_DATA / "train"
MATH, AIME = TRAIN / "math_train_deepscaler.json", TRAIN / "aime_1983_2023_deepscaler.json"
LCB, LEETCODE = TRAIN / "livecodebench_pre2408_train_public_tests.json", TRAIN / "leetcode_train_rllm.json"
pytestmark = pytest.mark.skipif(not MATH.exists(), reason="needs ../shared/data/train")


def rows(path):
    return json.loads(path.read_text(encoding="utf-8"))


def find(items, *needles):
    """The one real problem holding every needle."""
    found = [item for item in items if all(n in item["problem"] for n in needles)]
    assert len(found) == 1, (needles, len(found))
    return found[0]


@pytest.fixture(scope="module")
def math_pool():
    """Every real math problem (AIME first, then DeepScaleR's MATH train) offered to a deduper without answers,
    so that only the text decides: the deduper, the rows kept and the (dropped, kept) near-duplicate pairs."""
    problems = [r["problem"] for r in rows(AIME) + rows(MATH)]
    deduper = ProblemDeduper(same_answer=False, boilerplate=boilerplate_shingles(problems, "char", 5, 0.01))
    kept, near = [], []
    for problem in problems:
        match = deduper.add(problem)
        if match is None:
            kept.append(problem)
        elif match.kind == "near":
            near.append((problem, kept[match.kept]))
    return deduper, kept, near


def test_exact_after_normalisation_catches_whitespace_and_latex_variants():
    problem = find(rows(MATH), "Let \\[f(x) = \\left\\{", "piecewise function is continuous")["problem"]
    deduper = ProblemDeduper(near=False)
    assert deduper.add(problem) is None
    variants = [
        "  " + problem.replace(" ", "   ").replace("\n", " \n\t") + "\n",  # whitespace
        problem.replace("\\left", "").replace("\\right.", "").replace("$", "\\(", 1),  # sizing and delimiters
        problem.replace("x>2", "x > 2").replace("2x-b", "2x - b").replace("Find", "FIND").replace("piecewise", "Piecewise"),
        problem.replace("(which", "\\,(which").rstrip(".)") + ")?",  # LaTeX spacing, final punctuation
    ]
    for variant in variants:
        match = deduper.add(variant)
        assert match is not None and match.kind == "exact" and match.kept == 0, variant
    fraction = "What is $\\dfrac{3}{4}$ of 1,000 apples~\\quad\\text{in total}?"
    assert deduper.add(fraction) is None
    assert deduper.add("what is \\frac34 of 1000 apples in total.").kind == "exact"
    assert deduper.add("What is $\\frac{3}{4}$ of 1,001 apples in total?") is None  # another number: another problem
    assert normalise("$\\dfrac{1}{29}$ of \\left( x \\right)") == "1/29 of(x)"


def test_minhash_catches_a_reworded_real_problem(math_pool):
    deduper, kept, _ = math_pool
    original = find(rows(AIME), "regular tetrahedron", "crawled exactly $7$ meters")["problem"]
    # Reworded by hand: words changed, words reordered, a number written without $...$.
    reworded = (original.replace("each of whose edges measures $1$ meter", "each of whose edges is 1 meter long")
                .replace("A bug, starting from vertex $A$,", "Starting from vertex $A$, a bug")
                .replace("observes the following rule", "follows this rule")
                .replace("crawls along that edge", "walks along that edge")
                .replace("Find the value of $n$.", "Find $n$."))
    assert normalise(reworded) != normalise(original)
    match = deduper.add(reworded)
    assert match is not None and match.kind == "near" and kept[match.kept] == original


def test_minhash_keeps_distinct_real_problems(math_pool):
    _, _, near = math_pool
    # Real problems of one template with other numbers: the same text once digits are taken out.
    def template(problem):
        return re.sub(r"\d+", "#", normalise(problem))

    by_template = {}
    for problem in {r["problem"] for r in rows(AIME) + rows(MATH)}:
        by_template.setdefault(template(problem), set()).add(normalise(problem))
    assert sum(len(group) > 1 for group in by_template.values()) >= 20  # MATH has such families
    assert near  # the pool has near duplicates, and none of them is a sibling with other numbers
    assert not [pair for pair in near if template(pair[0]) == template(pair[1]) and normalise(pair[0]) != normalise(pair[1])]

    # Real siblings that differ in the question asked, not the numbers: their answers tell them apart.
    x = find(rows(MATH), "If $x - y = 6$ and $x + y = 12$, what is the value of $x$?")
    y = find(rows(MATH), "If $x - y = 6$ and $x + y = 12$, what is the value of $y$?")
    blind = ProblemDeduper(same_answer=False)
    assert blind.add(x["problem"]) is None and blind.add(y["problem"]) is not None  # text alone merges them
    guarded = ProblemDeduper()
    assert guarded.add(x["problem"], x["answer"]) is None and guarded.add(y["problem"], y["answer"]) is None


def write_jsonl(path, items):
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def pool_yaml(tmp_path, sources, **extra):
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "run_dir": str(tmp_path / "run"), "sources": sources, **extra}))
    return path


def test_counts_per_source_pair(tmp_path):
    math = rows(MATH)
    p = [find(math, "piecewise function is continuous"),
         find(math, "The first four terms in an arithmetic sequence are $x+y$, $x-y$"),
         find(math, "There are two values of $a$  for which"),
         find(math, "the line $y = x + a$ passes through the vertex of the parabola"),
         find(math, "What is the greatest integer value of $x$ for which $5-4x>17$?")]
    text = [q["problem"] for q in p]
    a = write_jsonl(tmp_path / "a.jsonl", [{"problem": text[0], "answer": p[0]["answer"]},
                                           {"problem": text[1], "answer": p[1]["answer"]},
                                           {"problem": text[2], "answer": p[2]["answer"]}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"problem": "  " + text[0].replace(" ", "  "), "answer": p[0]["answer"]},  # exact of A
                                           {"problem": text[3], "answer": p[3]["answer"]},
                                           {"problem": text[1].replace("in that order", "in this order"),
                                            "answer": p[1]["answer"]}])  # near of A
    c = write_jsonl(tmp_path / "c.jsonl", [{"problem": text[2] + " ", "answer": p[2]["answer"]},  # exact of A
                                           {"problem": text[3].replace("$y = x + a$", "$y=x+a$"), "answer": p[3]["answer"]},
                                           {"problem": text[4], "answer": p[4]["answer"]},
                                           {"problem": text[4], "answer": p[4]["answer"]}])  # exact of C itself
    fields = {"problem": "problem", "answer": "answer"}
    config = pool_yaml(tmp_path, [{"name": n, "source": str(f), "fields": fields} for n, f in (("A", a), ("B", b), ("C", c))])
    assert main(["prompts", str(config)]) == 0
    summary = json.loads((tmp_path / "run" / "pool.json").read_text())
    pairs = {(r["kept_source"], r["dropped_source"]): (r["exact"], r["near"]) for r in summary["pairs"]}
    assert pairs == {("A", "A"): (0, 0), ("A", "B"): (1, 1), ("A", "C"): (1, 0), ("B", "B"): (0, 0), ("B", "C"): (1, 0),
                     ("C", "C"): (1, 0)}
    assert [(s["name"], s["rows_in"], s["kept"]) for s in summary["sources"]] == [("A", 3, 3), ("B", 3, 1), ("C", 4, 1)]
    assert (summary["rows_in"], summary["rows_kept"]) == (10, 5)
    assert summary["near_pair_samples"][0]["kept"]["pool_source"] == "A"
    written = [json.loads(line) for line in (tmp_path / "run" / "prompts.jsonl").read_text().splitlines()]
    assert [r["problem"] for r in written] == [text[0], text[1], text[2], text[3], text[4]]  # the priority copies
    assert [r["pool_source"] for r in written] == ["A", "A", "A", "B", "C"]


def test_output_feeds_generate(tmp_path):
    from distill.curate.config import CurateConfig

    config = pool_yaml(tmp_path, [
        {"name": "aime", "source": str(AIME), "fields": {"problem": "problem", "answer": "answer"}},
        {"name": "deepscaler", "source": str(MATH), "fields": {"problem": "problem", "answer": "answer"}, "limit": 600}])
    assert main(["prompts", str(config)]) == 0
    out = tmp_path / "run" / "prompts.jsonl"
    kept = json.loads((tmp_path / "run" / "pool.json").read_text())["rows_kept"]
    for run in ("teacher/runs/math.yaml", "teacher/runs/toy.yaml"):  # R1's fields, and generate's default ones (id)
        cfg = load_config(run, CurateConfig, [f"prompts.source={out}", "prompts.limit=null"])
        loaded = load_prompts(cfg.prompts)
        assert len(loaded) == kept and all(p.answer for p in loaded)
    code = pool_yaml(tmp_path, [{"name": "lcb", "source": str(LCB), "fields": {"problem": "problem", "tests": "tests"}},
                                {"name": "leetcode", "source": str(LEETCODE), "fields": {"problem": "problem", "tests": "tests"},
                                 "limit": 100}], run_dir=str(tmp_path / "code"))
    assert main(["prompts", str(code)]) == 0
    cfg = load_config("teacher/runs/code.yaml", CurateConfig, [f"prompts.source={tmp_path / 'code' / 'prompts.jsonl'}"])
    loaded = load_prompts(cfg.prompts)
    assert len(loaded) == json.loads((tmp_path / "code" / "pool.json").read_text())["rows_kept"] and all(p.tests for p in loaded)
    with_starter = [p for p in loaded if p.metadata.get("starter_code")]  # LiveCodeBench's functional problems
    assert with_starter and "starter code" in with_starter[0].messages(cfg.prompts.template, None, cfg.prompts.alt_template,
                                                                        cfg.prompts.alt_template_field)[0]["content"]


def test_a_pool_written_over_what_it_reads_is_refused_and_its_input_untouched(tmp_path, capsys):
    first = pool_yaml(tmp_path, [{"name": "aime", "source": str(AIME), "fields": {"problem": "problem"}}])
    assert main(["prompts", str(first)]) == 0
    before = (tmp_path / "run" / "prompts.jsonl").read_bytes()
    again = pool_yaml(tmp_path, [{"name": "earlier", "source": str(tmp_path / "run" / "prompts.jsonl")}])
    capsys.readouterr()
    assert main(["prompts", str(again)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"run_dir: {tmp_path / 'run'} holds the input sources.0.source" in error[0], error
    assert (tmp_path / "run" / "prompts.jsonl").read_bytes() == before


@pytest.mark.parametrize("case, expected", [
    ("missing", "sources.1.source: path does not exist"),
    ("empty", "sources.1.source: "),
    ("unknown_field", "sources.0.fields: unknown schema field(s) ['question']"),
    ("no_column", "sources.0.fields: "),
    ("unknown_key", "near.treshold: unknown key (did you mean 'threshold'?)"),
    ("no_sources", "sources: "),
    ("repeated_id", "sources.1.fields.id: "),
])
def test_bad_input_is_one_line_naming_the_key(tmp_path, capsys, case, expected):
    good = {"name": "a", "source": str(AIME), "fields": {"problem": "problem"}}
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    sources, extra = [good, {"name": "b", "source": str(MATH)}], {}
    if case == "missing":
        sources[1]["source"] = str(tmp_path / "nowhere.json")
    elif case == "empty":
        sources[1]["source"] = str(empty)
    elif case == "unknown_field":
        sources[0]["fields"] = {"problem": "problem", "question": "problem"}
    elif case == "no_column":
        sources[0]["fields"] = {"problem": "problem", "answer": "final_answer"}
    elif case == "unknown_key":
        extra = {"near": {"treshold": 0.5}}
    elif case == "no_sources":
        sources = []
    elif case == "repeated_id":
        sources[1] = {"name": "b", "source": str(write_jsonl(tmp_path / "ids.jsonl", [{"n": 1, "problem": "What is 1+1?"},
                                                                                   {"n": 1, "problem": "What is 2+2?"}])),
                      "fields": {"id": "n", "problem": "problem"}}
    assert main(["prompts", str(pool_yaml(tmp_path, sources, **extra))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    if case == "empty":
        assert "holds no rows" in err
    if case == "no_column":
        assert "answer -> 'final_answer'" in err
    assert not (tmp_path / "run" / "prompts.jsonl").exists()
