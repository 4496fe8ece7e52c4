"""Report stage: evaluation results (plus curation and training summaries) -> report.md, report.html, PNGs.

    build_report(cfg)            write the report to cfg.run_dir (atomically); returns the HTML path
    headline_numbers(report)     per benchmark per model: pass@1, CI, share of teacher, paired differences
    summary_markdown(report)     the main table as Markdown (for the README)
"""

from distill.report.build import build_report, headline_numbers, summary_markdown
from distill.report.config import ReportConfig

__all__ = ["ReportConfig", "build_report", "headline_numbers", "summary_markdown"]
