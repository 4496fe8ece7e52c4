"""distill report on synthetic runs: a teacher, two students, two benchmarks, curation and training summaries."""

import base64
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from distill.cli import main
from distill.report import ReportConfig, build_report, headline_numbers, summary_markdown
from support import ROOT

BENCHMARKS = {"aime24": 30, "math500": 120}     # benchmark -> problems
SAMPLES = 8
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_eval_run(directory: Path, label: str, role: str, params: int, skill: float, mean_tokens: int, seed: int) -> dict:
    """An eval run as distill/eval documents it, with results.json computed from its own samples.

    Problem difficulty is shared by every model (seeded per benchmark), so paired differences are tight."""
    rng = np.random.default_rng(seed)
    benchmarks = {}
    directory.mkdir(parents=True)
    (directory / "samples").mkdir()
    for b, (bench, problems) in enumerate(BENCHMARKS.items()):
        difficulty = np.random.default_rng(100 + b).uniform(-2.5, 2.5, problems)
        p_correct = 1 / (1 + np.exp(difficulty - skill))
        correct = rng.random((problems, SAMPLES)) < p_correct[:, None]
        tokens = rng.gamma(4, mean_tokens / 4, (problems, SAMPLES)).astype(int) + 1
        rows = []
        for i in range(problems):
            for s in range(SAMPLES):
                extracted = "7" if correct[i, s] else str(int(rng.integers(0, 3)))
                rows.append({"benchmark": bench, "problem_id": f"{bench}-{i}", "sample": s, "prompt": f"problem {i}",
                             "response": f"<think>...</think> \\boxed{{{extracted}}}", "reference": "7",
                             "extracted": extracted, "correct": bool(correct[i, s]),
                             "reason": None if correct[i, s] else "wrong answer", "response_tokens": int(tokens[i, s])})
        pq.write_table(pa.Table.from_pylist(rows), directory / "samples" / f"{bench}.parquet")
        per_problem = correct.mean(axis=1)
        mean = per_problem.mean()
        half = 1.96 * per_problem.std(ddof=1) / math.sqrt(problems)
        majority = [max(set(r["extracted"] for r in rows[i * SAMPLES:(i + 1) * SAMPLES]),
                        key=[r["extracted"] for r in rows[i * SAMPLES:(i + 1) * SAMPLES]].count) for i in range(problems)]
        pass_at_k = {str(k): 100 * float(np.mean([1 - math.comb(SAMPLES - c, k) / math.comb(SAMPLES, k)
                                                  for c in correct.sum(axis=1)])) for k in (1, 2, 4, 8)}
        benchmarks[bench] = {
            "problems": problems, "samples": problems * SAMPLES, "pass@1": 100 * mean,
            "ci95": [100 * (mean - half), 100 * (mean + half)],
            "cons@n": 100 * float(np.mean([m == "7" for m in majority])), "n": SAMPLES, "pass@k": pass_at_k,
            "length": {"mean": float(tokens.mean()), "median": float(np.median(tokens)),
                       "p90": float(np.percentile(tokens, 90)), "max": int(tokens.max())},
            "per_problem": {f"{bench}-{i}": float(per_problem[i]) for i in range(problems)},
        }
    results = {"model": {"label": label, "name_or_path": f"/models/{label}", "role": role, "params": params},
               "suite": "r1", "protocol": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768, "reasoning": True},
               "benchmarks": benchmarks}
    (directory / "results.json").write_text(json.dumps(results))
    (directory / "config.yaml").write_text(yaml.safe_dump({"model": label, "suite": "r1"}))
    (directory / "manifest.json").write_text(json.dumps({
        "stage": "eval", "config_hash": f"hash-{label}", "git_commit": "abc123", "status": "completed",
        "started": "2025-01-01T00:00:00+00:00", "ended": "2025-01-01T01:00:00+00:00",
        "versions": {"python": "3.11.2", "distill": "0.1.0", "vllm": "0.11.0"}}))
    return results


def write_train_run(directory: Path, name: str, steps: int, parameters: int, floor: float) -> None:
    directory.mkdir(parents=True)
    lines = [json.dumps({"step": s, "epoch": s / steps, "time": 1000.0 + s, "loss": 2.0 * math.exp(-s / 20) + floor,
                         "num_tokens": 4096.0 * s, "learning_rate": 1e-4}) for s in range(5, steps + 1, 5)]
    (directory / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (directory / "train_summary.json").write_text(json.dumps({
        "name": name, "model": str(directory / "model"), "steps": steps, "train_loss": 0.8,
        "final_loss": round(2.0 * math.exp(-steps / 20) + floor, 4), "tokens": 4096 * steps, "examples": 640,
        "wall_seconds": 754.2, "resumed_from": None, "parameters": parameters, "lora": False, "world_size": 1}))
    (directory / "config.yaml").write_text(yaml.safe_dump({"name": name}))


def write_curation_run(directory: Path) -> dict:
    (directory / "curated").mkdir(parents=True)
    curation = {
        "traces": 1000, "accepted": 640, "rejected": 360, "acceptance_rate": 0.64,
        "rejected_by_reason": {"wrong answer": 250, "format": 70, "length": 40},
        "rejected_by_detail": {"wrong answer": 250},
        "per_source": {"toy-add": {"kept": 400, "rejected": 100, "acceptance_rate": 0.8},
                       "toy-mul": {"kept": 240, "rejected": 260, "acceptance_rate": 0.48}},
        "per_difficulty": {}, "prompts": 250, "prompts_with_a_kept_trace": 230, "tokens_kept": 512_000,
        "generation_cost_usd": 3.2, "cost_per_accepted_trace_usd": 0.005, "wall_seconds": 12.0,
    }
    (directory / "curated" / "curation.json").write_text(json.dumps(curation))
    (directory / "unfiltered").mkdir()  # a second curation of the same traces (curate.output=unfiltered)
    (directory / "unfiltered" / "curation.json").write_text(json.dumps({
        **curation, "accepted": 1000, "rejected": 0, "acceptance_rate": 1.0, "rejected_by_reason": {},
        "per_source": {"toy-add": {"kept": 500, "rejected": 0}, "toy-mul": {"kept": 500, "rejected": 0}},
        "cost_per_accepted_trace_usd": 0.0032}))
    (directory / "generate_summary.json").write_text(json.dumps({
        "traces": 1000, "ok": 990, "failed": 10, "finish_reasons": {"stop": 990}, "errors": {},
        "prompt_tokens": 25_000, "completion_tokens": 800_000, "wall_seconds": 3600.0, "cost_usd": 3.2}))
    return curation


@pytest.fixture
def runs(tmp_path):
    """Synthetic runs and a REPORT.yaml over them, with a published references file."""
    results = {
        "teacher": write_eval_run(tmp_path / "eval/teacher", "toy-teacher", "teacher", 2_000_000, 1.5, 900, 1),
        "curated": write_eval_run(tmp_path / "eval/curated", "toy-student-curated", "student", 540_000, 1.1, 700, 2),
        "unfiltered": write_eval_run(tmp_path / "eval/unfiltered", "toy-student-unfiltered", "student", 540_000, -0.5,
                                     1200, 3),
    }
    write_train_run(tmp_path / "train/curated", "toy-student-curated", 200, 540_000, 0.3)
    write_train_run(tmp_path / "train/unfiltered", "toy-student-unfiltered", 200, 540_000, 0.6)
    curation = write_curation_run(tmp_path / "teacher/toy")
    (tmp_path / "refs.yaml").write_text(yaml.safe_dump({
        "source": "A paper, Table 5",
        "models": {"Big-Teacher": {"params_b": 671, "role": "teacher", "scores": {"aime24": {"pass@1": 79.8}}},
                   "Small-Student": {"params_b": 1.5, "role": "student",
                                     "scores": {"aime24": {"pass@1": 28.9, "cons@64": 52.7}}}}}))
    config = {
        "title": "Toy report", "run_dir": str(tmp_path / "report"),
        "teacher": {"eval_dir": str(tmp_path / "eval/teacher")},
        "students": [
            {"eval_dir": str(tmp_path / "eval/curated"), "train_dir": str(tmp_path / "train/curated")},
            {"eval_dir": str(tmp_path / "eval/unfiltered"), "train_dir": str(tmp_path / "train/unfiltered")},
        ],
        "curations": [str(tmp_path / "teacher/toy/curated"), str(tmp_path / "teacher/toy/unfiltered")],
        "references": str(tmp_path / "refs.yaml"),
        "comparisons": [{"better": "toy-student-curated", "worse": "toy-student-unfiltered"}],
        "bootstrap": {"resamples": 2000},
    }
    path = tmp_path / "report.yaml"
    path.write_text(yaml.safe_dump(config))
    return {"config": path, "results": results, "curation": curation, "root": tmp_path}


def load(path: Path) -> ReportConfig:
    return ReportConfig.model_validate(yaml.safe_load(path.read_text()))


def table_row(markdown: str, heading: str, first_cell: str) -> list[str]:
    """The cells of the row starting with `first_cell` in the first table after `heading`."""
    section = markdown.split(f"\n{heading}\n", 1)[1]
    for line in section.splitlines():
        if line.startswith(f"| {first_cell} |"):
            return [c.strip() for c in line.strip("|").split(" | ")]
    raise AssertionError(f"no row {first_cell!r} after {heading!r}")


def test_report_numbers_match_the_eval_results(runs):
    build_report(load(runs["config"]))
    report = runs["root"] / "report"
    md = (report / "report.md").read_text()
    for bench in BENCHMARKS:
        teacher = runs["results"]["teacher"]["benchmarks"][bench]
        for key in ("teacher", "curated", "unfiltered"):
            result = runs["results"][key]
            r = result["benchmarks"][bench]
            row = table_row(md, f"### {bench}", result["model"]["label"])
            assert row[3] == f"{r['pass@1']:.1f}"
            assert row[4] == f"[{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}]"
            expected_share = f"{100 * r['pass@1'] / teacher['pass@1']:.1f}%" if key != "teacher" else "—"
            assert row[5] == expected_share
            assert row[6] == f"{r['cons@n']:.1f} (n={SAMPLES})"
            assert row[7] == f"{r['length']['mean']:.0f}"
    published = table_row(md, "### aime24", "Small-Student (published)")
    assert published[3] == "28.9" and published[5] == f"{100 * 28.9 / 79.8:.1f}%" and published[6] == "52.7 (n=64)"
    # Data and training sections come from curation.json, generate_summary.json and train_summary.json.
    # Every curation named is a column: the curated set beside the unfiltered one.
    assert "| acceptance rate | 64.0% | 100.0% |" in md and "| cost per accepted trace | $0.0050 | $0.0032 |" in md
    assert "| samples generated | 1,000 | 1,000 |" in md
    assert "| wrong answer | 250 (25.0%) | 0 (0.0%) |" in md
    assert "| curated | toy-mul | 240 | 260 | 48.0% |" in md and "| unfiltered | toy-mul | 500 | 0 | 100.0% |" in md
    assert table_row(md, "## Training", "toy-student-curated")[1:4] == ["200", "640", "819.2k"]
    assert "hash-toy-teacher" in md and "abc123" in md     # provenance from the manifests
    assert json.loads((report / "headline.json").read_text()) == headline_numbers(runs["config"])


def test_headline_numbers_and_paired_differences(runs):
    numbers = headline_numbers(runs["config"])
    for bench in BENCHMARKS:
        teacher = runs["results"]["teacher"]["benchmarks"][bench]
        for key in ("curated", "unfiltered"):
            r = runs["results"][key]["benchmarks"][bench]
            row = numbers["benchmarks"][bench][runs["results"][key]["model"]["label"]]
            assert row["pass@1"] == pytest.approx(r["pass@1"]) and row["ci95"] == pytest.approx(r["ci95"])
            assert row["share_of_teacher"] == pytest.approx(r["pass@1"] / teacher["pass@1"])
            expected_diff = 100 * np.mean([r["per_problem"][p] - teacher["per_problem"][p] for p in r["per_problem"]])
            vs = row["vs_teacher"]
            assert vs["diff"] == pytest.approx(expected_diff)
            assert vs["ci95"][0] < vs["diff"] < vs["ci95"][1] and vs["problems"] == BENCHMARKS[bench]
        # The unfiltered student is far weaker: its paired CI against the teacher lies below zero.
        assert numbers["benchmarks"][bench]["toy-student-unfiltered"]["vs_teacher"]["ci95"][1] < 0
    math500 = next(c for c in numbers["comparisons"] if c["benchmark"] == "math500")
    assert math500["better"] == "toy-student-curated" and math500["excludes_zero"] and math500["ci95"][0] > 0
    # Pairing matters: the paired CI is narrower than the two pass@1 CIs would suggest on their own.
    rows = numbers["benchmarks"]["math500"]
    unpaired_half = 0.5 * math.hypot(*(rows[m]["ci95"][1] - rows[m]["ci95"][0]
                                       for m in ("toy-student-curated", "toy-student-unfiltered")))
    assert (math500["ci95"][1] - math500["ci95"][0]) / 2 < unpaired_half


def test_summary_markdown_is_the_report_summary_table(runs):
    table = summary_markdown(runs["config"])
    assert table.splitlines()[0].startswith("| model | params | aime24 pass@1 (95% CI) |")
    r = runs["results"]["curated"]["benchmarks"]["math500"]
    assert f"{r['pass@1']:.1f} [{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}]" in table
    math500 = next(c for c in headline_numbers(runs["config"])["comparisons"] if c["benchmark"] == "math500")
    assert (f"| math500 | toy-student-curated | toy-student-unfiltered | {math500['diff']:+.1f} | "
            f"[{math500['ci95'][0]:+.1f}, {math500['ci95'][1]:+.1f}] |") in table
    build_report(load(runs["config"]))
    report = runs["root"] / "report"
    assert (report / "summary.md").read_text().strip() == table
    assert table in (report / "report.md").read_text()


def test_plots_are_valid_pngs(runs):
    from PIL import Image

    build_report(load(runs["config"]))
    report = runs["root"] / "report"
    names = ["score_vs_size.png", "pass_at_k.png", "response_lengths.png", "loss_curves.png"]
    for name in names:
        data = (report / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        with Image.open(report / name) as image:
            image.verify()
        with Image.open(report / name) as image:
            assert image.size[0] > 300 and image.size[1] > 200
        assert f"]({name})" in (report / "report.md").read_text()


def test_html_is_self_contained(runs):
    build_report(load(runs["config"]))
    html = (runs["root"] / "report" / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<script" not in html.lower() and "@import" not in html and "url(" not in html
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == 4
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_SIGNATURE)


def test_rerun_replaces_the_output_whole(runs):
    cfg = load(runs["config"])
    build_report(cfg)
    (runs["root"] / "report" / "stale.txt").write_text("from an earlier run")
    build_report(cfg.model_copy(update={"students": cfg.students[:1], "comparisons": []}))
    report = runs["root"] / "report"
    assert not (report / "stale.txt").exists()
    assert "toy-student-unfiltered" not in (report / "report.md").read_text()
    assert sorted(p.name for p in runs["root"].iterdir() if p.name.startswith(".")) == []


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(["report", *map(str, argv)])
    return code, capsys.readouterr().err


def test_missing_results_json_is_a_one_line_error(runs, capsys):
    missing = runs["root"] / "eval/unfiltered/results.json"
    missing.unlink()
    code, err = run_cli(capsys, runs["config"])
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {missing}: no such file") and "eval run directory" in err
    assert not (runs["root"] / "report").exists()


@pytest.mark.parametrize("breakage, expected", [
    (lambda root: (root / "eval/curated/results.json").write_text("{not json"), "results.json: not valid JSON"),
    (lambda root: (root / "eval/curated/results.json").write_text(json.dumps({"model": {"label": "x"}, "benchmarks": {
        "aime24": {"problems": 1, "samples": 1, "ci95": [0, 1], "per_problem": {}}}})),
     "results.json: benchmarks.aime24.pass@1: required key is missing"),
    (lambda root: (root / "teacher/toy/curated/curation.json").unlink(), "curation.json: no such file"),
    (lambda root: (root / "train/curated/train_summary.json").write_text("{}"), "train_summary.json: steps: required key"),
    (lambda root: (root / "eval/teacher/samples/aime24.parquet").unlink(), "aime24.parquet: no such file"),
    (lambda root: (root / "refs.yaml").write_text("models: {}\n"), "refs.yaml: source: required key is missing"),
])
def test_malformed_inputs_are_one_line_errors(runs, capsys, breakage, expected):
    breakage(runs["root"])
    code, err = run_cli(capsys, runs["config"])
    assert code == 2 and err.count("\n") == 1 and expected in err, err


def test_report_config_errors(runs, capsys):
    code, err = run_cli(capsys, runs["config"], "titel=x")
    assert code == 2 and "titel: unknown key (did you mean 'title'?)" in err
    code, err = run_cli(capsys, runs["config"], "out_dir=x")  # a key's old name says its new one
    assert code == 2 and err.strip().splitlines() == [f"error: {runs['config']}: out_dir: renamed to run_dir"]
    code, err = run_cli(capsys, runs["config"], "comparisons=[{better: nobody, worse: toy-student-curated}]")
    assert code == 2 and "comparisons: unknown model 'nobody'" in err


def test_example_configs_are_valid():
    for name in ("eval/report.yaml", "eval/report-toy.yaml"):
        cfg = load(ROOT / name)
        assert cfg.students and cfg.run_dir.startswith("runs/report/") and cfg.curations


CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter(img => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.images = loaded + "/" + images.length;
});
</script>"""


@pytest.mark.slow
def test_html_renders_in_headless_chromium(runs, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (make browser installs the Debian package)")
    html_path = build_report(load(runs["config"]))
    page = html_path.read_text()
    # The test's copy allows one inline script (the report itself has none); everything else stays forbidden.
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
                       .replace("</body>", CHECK_IMAGES + "</body>"))
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--user-data-dir=" + str(tmp_path / "profile"), "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert re.search(r'<body[^>]* data-images="4/4"', dom.stdout), dom.stdout[:500]
    assert "<h1>Toy report</h1>" in dom.stdout
    shot = runs["root"] / "screenshot.png"
    subprocess.run([*flags, "--window-size=1280,2400", f"--screenshot={shot}", html_path.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes().startswith(PNG_SIGNATURE)


def add_selection_inputs(root: Path) -> dict:
    """A curation with the teacher's pass rates, and per-source rows in a student's train_summary.json."""
    path = root / "teacher/toy/curated/curation.json"
    curation = json.loads(path.read_text())
    curation["pass_rates"] = {
        "edges": [i / 10 for i in range(11)], "kept": [0, 0, 30, 0, 0, 60, 0, 90, 0, 0],
        "dropped": [20, 0, 0, 0, 0, 0, 0, 0, 0, 50], "prompts": 250, "mean": 0.61,
        "never_solved": {"kept": 0, "dropped": 20}, "always_solved": {"kept": 0, "dropped": 50},
        "samples_per_prompt": {"4": 250}}
    curation["per_difficulty"] = {"2": {"kept": 400, "rejected": 100, "acceptance_rate": 0.8, "mean_pass_rate": 0.72}}
    path.write_text(json.dumps(curation))
    summary_path = root / "train/curated/train_summary.json"
    summary = json.loads(summary_path.read_text())
    summary["sources"] = [
        {"name": "math", "source": "runs/teacher/math/curated", "split": "train", "rows": 480, "tokens": 600_000,
         "share": 0.75, "token_share": 0.8},
        {"name": "general", "source": "runs/teacher/general/curated", "split": "train", "rows": 160, "tokens": 150_000,
         "share": 0.25, "token_share": 0.2}]
    summary_path.write_text(json.dumps(summary))
    return curation


def test_pass_rate_histogram_and_rows_per_source(runs):
    old = build_report(load(runs["config"])).with_name("report.md").read_text()
    assert "Teacher pass rate per prompt" not in old and "share of tokens" not in old  # older runs: no such sections
    add_selection_inputs(runs["root"])
    build_report(load(runs["config"]))
    report = runs["root"] / "report"
    md = (report / "report.md").read_text()
    heading = "### Teacher pass rate per prompt"
    assert table_row(md, heading, "[0.7, 0.8)")[1:] == ["90", "0"]  # only the curation that recorded them is a column
    assert table_row(md, heading, "[0.9, 1.0]")[1:] == ["0", "50"]
    assert table_row(md, heading, "exactly 0 (never solved)")[1:] == ["0", "20"]
    assert "| curated | 2 | 0.72 | 80.0% |" in md
    assert (report / "pass_rates.png").read_bytes().startswith(PNG_SIGNATURE) and "](pass_rates.png)" in md
    assert "| toy-student-curated | math | runs/teacher/math/curated | train | 480 | 600.0k | 75.0% | 80.0% |" in md
    assert "| toy-student-curated | general |" in md and "| toy-student-unfiltered |" not in md.split("share of tokens")[1]


def test_selection_section_reuses_the_paired_differences(runs, capsys):
    config = yaml.safe_load(runs["config"].read_text())
    config["selection"] = {"reference": "toy-student-unfiltered", "selected": ["toy-student-curated"],
                           "benchmark": "math500"}
    runs["config"].write_text(yaml.safe_dump(config))
    build_report(load(runs["config"]))
    md = (runs["root"] / "report" / "report.md").read_text()
    math500 = next(c for c in headline_numbers(runs["config"])["comparisons"] if c["benchmark"] == "math500")
    row = table_row(md, "## Selection by difficulty", "toy-student-curated")
    assert row[1:3] == ["selected", "640"]
    assert row[5] == f"{math500['diff']:+.1f} [{math500['ci95'][0]:+.1f}, {math500['ci95'][1]:+.1f}]"
    assert table_row(md, "## Selection by difficulty", "toy-student-unfiltered")[5] == "reference"
    assert "The smallest selected set that matches toy-student-unfiltered" in md  # its CI lies above 0
    assert "Selection by teacher pass rate" in (runs["root"] / "report" / "summary.md").read_text()
    code, err = run_cli(capsys, runs["config"], "selection.random=nobody")
    assert code == 2 and err.count("\n") == 1 and "selection.random: unknown student 'nobody'" in err, err
