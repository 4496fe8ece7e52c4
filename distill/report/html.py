"""Render report blocks as one self-contained HTML page: inline CSS, PNGs as base64 data URIs.

A Content-Security-Policy forbids every external resource and every script, so a page that tried to
load anything from elsewhere would show it broken in a browser instead of quietly phoning home.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from distill.report.document import Block, Details, Heading, Image, Paragraph, Table

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #eee; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: .35em .6em; }
th { background: #f4f4f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: 0.85em; }
details { margin: .4em 0; }
"""


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def table_html(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{escape(c)}</td>' if numeric else f"<td>{escape(c)}</td>"
                         for c, numeric in zip(row, table.numeric)) + "</tr>"
        for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_block(block: Block, image_dir: Path) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Table):
        return table_html(block) if block.rows else "<p><em>(none)</em></p>"
    if isinstance(block, Image):
        return (f'<figure><img src="{data_uri(image_dir / block.file)}" alt="{escape(block.alt)}">'
                f"<figcaption>{escape(block.alt)}</figcaption></figure>")
    if isinstance(block, Details):
        return f"<details><summary>{escape(block.summary)}</summary><pre>{escape(block.text)}</pre></details>"
    raise TypeError(f"unknown block {block!r}")


def render_html(blocks: list[Block], title: str, image_dir: Path) -> str:
    body = "\n".join(render_block(b, image_dir) for b in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
