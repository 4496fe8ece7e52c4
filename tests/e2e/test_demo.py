"""`distill demo` end to end at reduced size: every stage runs for real; the report's numbers match its inputs."""

import json
import re

import pyarrow.parquet as pq
import pytest

from support import ROOT, run_cli
from distill.demo import README_END, README_START, SELECTION_STUDENTS, DemoConfig, readme_to_update, update_readme
from distill.errors import DistillError, UsageError


# The reduced demo runs every stage for real (eight students trained, nine models evaluated): minutes on
# free cores, more on a shared machine; the first test that uses the fixture pays for it.
pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    readme = out / "README.md"
    readme.write_text(f"# Demo\n\n{README_START}\nstale table\n{README_END}\n\nAfter.\n")
    done = run_cli("demo", ROOT / "configs" / "demo.yaml", f"runs_dir={out}", "engine=hf", "prompts=24", "samples=2",
                   "steps=40", "second_steps=6", "selection_prompts=24", "selection_steps=6", "eval_limit=16", "eval_samples=2",
                   "update_readme=true", f"readme={readme}",
                   timeout=2300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out, done.stdout


@pytest.mark.slow
def test_demo_runs_every_stage_and_ends_with_the_report_path(demo_run):
    out, log = demo_run
    students = ["toy-student-curated", "toy-student-unfiltered", "toy-student-on-policy", "toy-student-sft-control"]
    stages = ["sample the teacher", "curate (rejection sampling)", "all traces, unfiltered", *(f"train {s}" for s in students),
              "eval toy-teacher", *(f"eval {s}" for s in students), "report"]
    for stage in stages:
        assert f"[demo] {stage}" in log, stage
    assert log.strip().splitlines()[-1].startswith("[demo] done in") and str(out / "report" / "toy" / "report.html") in log
    assert "[demo] curated - unfiltered:" in log and "[demo] on-policy - sft-control:" in log


@pytest.mark.slow
def test_the_second_stage_continues_the_curated_student_on_policy_and_by_sft(demo_run):
    out, _ = demo_run
    import yaml

    curated = out / "students" / "toy-student-curated" / "model"
    for name, method in (("toy-student-on-policy", "on-policy"), ("toy-student-sft-control", "sft")):
        run = out / "students" / name
        config = yaml.safe_load((run / "config.yaml").read_text())
        summary = json.loads((run / "train_summary.json").read_text())
        assert config["model"]["name_or_path"] == str(curated) and config["method"] == method
        assert summary["steps"] == 6 and summary["method"] == method
    on_policy = json.loads((out / "students" / "toy-student-on-policy" / "train_summary.json").read_text())
    assert on_policy["teacher"] == "toy/teacher-long" and on_policy["teacher_tokens_scored"] > 0
    control = yaml.safe_load((out / "students" / "toy-student-sft-control" / "config.yaml").read_text())
    assert control["training"]["per_device_train_batch_size"] == yaml.safe_load(
        (out / "students" / "toy-student-on-policy" / "config.yaml").read_text())["training"]["per_device_train_batch_size"]


@pytest.mark.slow
def test_the_report_has_the_method_table_at_its_cost(demo_run):
    out, _ = demo_run
    report = out / "report" / "toy"
    markdown = (report / "report.md").read_text()
    generated = json.loads((out / "teacher" / "toy" / "generate_summary.json").read_text())["completion_tokens"]
    scored = json.loads((out / "students" / "toy-student-on-policy" / "train_summary.json").read_text())["teacher_tokens_scored"]
    section = markdown.split("## Methods", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in section.splitlines() if line.startswith("| toy-student")}
    assert rows["toy-student-sft-control"][1] == "sft → sft" and rows["toy-student-sft-control"][6] == "control"
    assert rows["toy-student-on-policy"][1] == "sft → on-policy"
    assert rows["toy-student-on-policy"][3] == f"{40 + 6:,}" and rows["toy-student-curated"][3] == "40"
    from distill.progress import fmt_count

    assert rows["toy-student-on-policy"][2] == fmt_count(generated + scored)
    assert rows["toy-student-sft-control"][2] == rows["toy-student-curated"][2] == fmt_count(generated)
    assert (report / "methods.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Methods at their cost" in (report / "summary.md").read_text()


@pytest.mark.slow
def test_curation_counts_add_up_and_the_unfiltered_set_keeps_every_trace(demo_run):
    out, _ = demo_run
    run = out / "teacher" / "toy"
    curated = json.loads((run / "curated" / "curation.json").read_text())
    unfiltered = json.loads((run / "unfiltered" / "curation.json").read_text())
    assert curated["traces"] == unfiltered["traces"] == 24 * 2
    assert 0 < curated["accepted"] < unfiltered["accepted"] == unfiltered["traces"]  # every trace, truncated ones too
    kept = sum(pq.read_metadata(p).num_rows for p in (run / "curated").glob("train-*.parquet"))
    assert kept == curated["accepted"]
    for row in pq.read_table(sorted((run / "curated").glob("train-*.parquet"))[0]).to_pylist()[:20]:
        from distill.verify.kinds import judge_math

        assert judge_math(row["response"], row["answer"]).correct  # rejection sampling kept only verified traces


@pytest.mark.slow
def test_the_selection_experiment_trains_on_the_sets_it_reports(demo_run):
    out, log = demo_run
    run = out / "teacher" / "toy-select"
    counts = {name: json.loads((run / f"select-{name}" / "curation.json").read_text())
              for name in ("all", "band", "random", "band-half")}
    assert counts["all"]["traces"] == 24 * 4 and counts["all"]["pass_rates"]["prompts"] == 24
    band = counts["band"]
    assert 2 <= band["accepted"] < counts["all"]["accepted"]
    assert band["rejected_by_reason"]["pass rate"] > 0  # prompts the teacher always solved
    assert counts["random"]["accepted"] == band["accepted"] and counts["band-half"]["accepted"] == band["accepted"] // 2
    for name in SELECTION_STUDENTS:
        summary = json.loads((out / "students" / name / "train_summary.json").read_text())
        assert summary["steps"] == 6 and summary["examples"] == counts[name.removeprefix("toy-select-")]["accepted"]
    markdown = (out / "report" / "toy" / "report.md").read_text()
    section = markdown.split("## Selection by difficulty", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in section.splitlines() if line.startswith("| toy-select")}
    assert set(rows) == set(SELECTION_STUDENTS) and rows["toy-select-all"][5] == "reference"
    assert rows["toy-select-band"][2] == f"{band['accepted']:,}" and rows["toy-select-band"][6] != "—"
    assert "### Teacher pass rate per prompt" in markdown and (out / "report" / "toy" / "pass_rates.png").is_file()
    assert all(f"[demo] train {name}:" in log and f"[demo] eval {name}" in log for name in SELECTION_STUDENTS)


@pytest.mark.slow
def test_report_numbers_are_the_eval_results(demo_run):
    out, _ = demo_run
    report = out / "report" / "toy"
    markdown = (report / "report.md").read_text()
    headline = json.loads((report / "headline.json").read_text())["benchmarks"]["toy"]
    for label in ("toy-teacher", "toy-student-curated", "toy-student-unfiltered"):
        results = json.loads((out / "eval" / label / "results.json").read_text())["benchmarks"]["toy"]
        assert results["problems"] == 16 and results["n"] == 2
        assert headline[label]["pass@1"] == pytest.approx(results["pass@1"])
        assert f"{results['pass@1']:.1f}" in markdown
    teacher = headline["toy-teacher"]["pass@1"]
    for label in ("toy-student-curated", "toy-student-unfiltered"):
        if teacher:
            assert headline[label]["share_of_teacher"] == pytest.approx(headline[label]["pass@1"] / teacher)
    train = json.loads((out / "students" / "toy-student-curated" / "train_summary.json").read_text())
    assert train["steps"] == 40
    for png in ("score_vs_size.png", "pass_at_k.png", "response_lengths.png", "loss_curves.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    html = (report / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # self-contained: nothing to fetch


@pytest.mark.slow
def test_readme_gets_the_reports_summary_between_its_markers(demo_run):
    out, _ = demo_run
    summary = (out / "report" / "toy" / "summary.md").read_text().strip()
    assert "| toy-student-curated | toy-student-unfiltered |" in summary  # the paired difference is in it
    text = (out / "README.md").read_text()
    assert text == f"# Demo\n\n{README_START}\n{summary}\n{README_END}\n\nAfter.\n"


def test_a_readme_without_markers_is_a_clear_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# No markers here\n")
    with pytest.raises(DistillError, match=rf"{readme}: no {README_START} ... {README_END} markers"):
        update_readme(readme, "| table |")
    assert readme.read_text() == "# No markers here\n"


@pytest.mark.slow
def test_checks_on_a_report_without_the_toy_comparison_are_a_clear_error(demo_run):
    from distill.demo import DemoConfig, check_outcome

    out, _ = demo_run
    report_args = [f"teacher.eval_dir={out / 'eval' / 'toy-teacher'}", f"curations=[{out / 'teacher' / 'toy' / 'curated'}]"]
    names = ("toy-student-curated", "toy-student-unfiltered", "toy-student-on-policy", "toy-student-sft-control",
             *SELECTION_STUDENTS)
    for index, name in enumerate(names):
        report_args += [f"students.{index}.eval_dir={out / 'eval' / name}", f"students.{index}.train_dir={out / 'students' / name}"]
    report = str(ROOT / "eval" / "report-toy.yaml")
    assert isinstance(check_outcome(DemoConfig(), report, report_args), bool)  # the demo's own config: no error
    with pytest.raises(UsageError, match="the demo's checks need the comparison .better: toy-student-curated"):
        check_outcome(DemoConfig(), report, report_args + ["comparisons=[]"])


def test_the_demo_changes_no_tracked_file_unless_asked_to_update_the_readme():
    from distill.config import load_config

    demo_yaml = ROOT / "configs" / "demo.yaml"
    assert readme_to_update(load_config(demo_yaml, DemoConfig)) is None  # `make demo` leaves README.md alone
    assert readme_to_update(DemoConfig()) is None
    assert str(readme_to_update(load_config(demo_yaml, DemoConfig, ["update_readme=true"]))) == "README.md"
    assert readme_to_update(DemoConfig(update_readme=True, readme="docs/x.md")).as_posix() == "docs/x.md"
