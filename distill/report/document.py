"""The report as a list of plain blocks, rendered once as Markdown and once as HTML."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)   # right-aligned columns

    def __post_init__(self):
        if not self.numeric:
            self.numeric = [False] + [True] * (len(self.headers) - 1)


@dataclass
class Image:
    file: str          # a PNG beside the report
    alt: str


@dataclass
class Details:
    """A collapsed block of preformatted text (a run's config.yaml)."""

    summary: str
    text: str
    language: str = ""


Block = Heading | Paragraph | Table | Image | Details
