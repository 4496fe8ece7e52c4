"""Render report blocks as GitHub-flavoured Markdown (images referenced beside the file)."""

from __future__ import annotations

from distill.report.document import Block, Details, Heading, Image, Paragraph, Table


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    lines = ["| " + " | ".join(cell(h) for h in table.headers) + " |",
             "|" + "|".join("---:" if numeric else "---" for numeric in table.numeric) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Table):
        return table_markdown(block) if block.rows else "_(none)_"
    if isinstance(block, Image):
        return f"![{block.alt}]({block.file})"
    if isinstance(block, Details):
        fence = "````" if "```" in block.text else "```"
        return (f"<details><summary>{block.summary}</summary>\n\n{fence}{block.language}\n{block.text.rstrip()}\n"
                f"{fence}\n\n</details>")
    raise TypeError(f"unknown block {block!r}")


def render_markdown(blocks: list[Block]) -> str:
    return "\n\n".join(render_block(b) for b in blocks) + "\n"
