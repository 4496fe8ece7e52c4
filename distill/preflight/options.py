"""The settings of one preflight (`distill preflight --help`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PreflightOptions:
    models: str | None = None  # a local mirror of model repos: DIR/<org>/<name>/ (tokenizer files, config.json)
    data: str | None = None  # rows that stand in for a student recipe's data
    suite: str = "eval/suites/r1.yaml"  # the eval suite a student recipe's result goes through
    local: dict[str, str] = field(default_factory=dict)  # benchmark name -> local file (instead of its Hub dataset)
    steps: int = 2
    max_new_tokens: int = 16  # what each sampled answer may take (the models are random: their text is noise)
    out: str = "runs/preflight"
