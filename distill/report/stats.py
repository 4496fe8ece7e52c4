"""The report's numbers: each student's share of the teacher, and paired bootstrap differences."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from distill.eval.metrics import paired_bootstrap
from distill.report.config import ReportConfig
from distill.report.loading import Inputs, ModelRun


@dataclass
class PairedDifference:
    """pass@1 of `better` minus `worse`, in points, over the problems both answered, with a 95% CI."""

    better: str
    worse: str
    benchmark: str
    diff: float
    ci95: tuple[float, float]
    problems: int

    @property
    def excludes_zero(self) -> bool:
        return self.ci95[0] > 0 or self.ci95[1] < 0


def compare(better: ModelRun, worse: ModelRun, benchmark: str, cfg: ReportConfig) -> PairedDifference | None:
    """`better` minus `worse` over the problems both answered; None when they share none."""
    if benchmark not in better.benchmarks or benchmark not in worse.benchmarks:
        return None
    a, b = better.benchmarks[benchmark].per_problem, worse.benchmarks[benchmark].per_problem
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    d = paired_bootstrap([a[p] for p in shared], [b[p] for p in shared], resamples=cfg.bootstrap.resamples,
                         seed=cfg.bootstrap.seed)
    return PairedDifference(better.name, worse.name, benchmark, 100 * d.mean, (100 * d.ci95[0], 100 * d.ci95[1]),
                            len(shared))


def share_of(score: float | None, teacher_score: float | None) -> float | None:
    if score is None or not teacher_score:
        return None
    return score / teacher_score


@dataclass
class Headline:
    """Per benchmark per model: pass@1 (points), its CI, the share of the teacher's pass@1 (a fraction),
    the student-minus-teacher paired difference; plus the configured student-vs-student comparisons."""

    rows: dict[str, dict[str, dict]]
    comparisons: list[PairedDifference]

    def to_dict(self) -> dict:
        comparisons = [asdict(c) | {"ci95": list(c.ci95), "excludes_zero": c.excludes_zero} for c in self.comparisons]
        return {"benchmarks": self.rows, "comparisons": comparisons}


def headline(inputs: Inputs, cfg: ReportConfig) -> Headline:
    rows: dict[str, dict[str, dict]] = {}
    for bench in inputs.benchmarks:
        teacher_score = inputs.teacher.benchmarks[bench].pass_at_1
        rows[bench] = {}
        for model in inputs.models:
            result = model.benchmarks.get(bench)
            if result is None:
                continue
            row = {
                "role": model.role,
                "params": model.params,
                "pass@1": result.pass_at_1,
                "ci95": list(result.ci95),
                "share_of_teacher": share_of(result.pass_at_1, teacher_score),
                "cons@n": result.cons_at_n,
                "n": result.n,
                "mean_length": result.length.get("mean"),
                "problems": result.problems,
                "samples": result.samples,
            }
            if model.role == "student":
                vs = compare(model, inputs.teacher, bench, cfg)
                row["vs_teacher"] = vs and {"diff": vs.diff, "ci95": list(vs.ci95), "problems": vs.problems}
            rows[bench][model.name] = row
    comparisons = []
    for pair in cfg.comparisons:
        for bench in inputs.benchmarks:
            found = compare(inputs.model(pair.better), inputs.model(pair.worse), bench, cfg)
            if found:
                comparisons.append(found)
    return Headline(rows, comparisons)
