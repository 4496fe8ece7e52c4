"""Do two runs of the demo (or of any stages) hold the same outputs? For checking that a refactor left behaviour as it
was: the same demo command run before and after, each into its own runs_dir.

    python bench/same_outputs.py RUNS_BEFORE RUNS_AFTER

Compared, file by file where both directories have it:
- model weights (model.safetensors), byte for byte;
- parquet outputs (curated and rejected traces, raw traces, eval samples), row for row, without timing columns;
- the stages' summaries (curation.json, train_summary.json, results.json, headline.json, generation summaries) and
  training metrics, without what changes from run to run (times, rates, paths, hosts, commits).
Prints one line per difference and a last line with the counts; exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq

# Keys that differ between two runs of the same work: clock times, rates, paths, machine and version facts.
VOLATILE = re.compile(r"(second|time|_s$|^started|^ended|host|git|path|dir|model$|^name$|^source$|per_s|duration|wall|"
                      r"latency|tok_s|throughput|eta|command|config_hash|versions|resumed|endpoint|^id$|trace_id|"
                      r"created|date)", re.IGNORECASE)
SUMMARIES = ("curation.json", "train_summary.json", "results.json", "headline.json", "generation.json", "mixture.json",
             "pool.json", "metrics.jsonl")


def stable(value, root_a: str, root_b: str):
    """`value` without volatile keys, with both run roots spelled the same."""
    if isinstance(value, dict):
        return {k: stable(v, root_a, root_b) for k, v in value.items() if not VOLATILE.search(str(k))}
    if isinstance(value, list):
        return [stable(v, root_a, root_b) for v in value]
    if isinstance(value, str):
        return value.replace(root_b, root_a)
    return value


def load_json(path: Path):
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else json.loads(text)


def parquet_rows(path: Path) -> list[dict]:
    table = pq.read_table(path)
    keep = [c for c in table.column_names if not VOLATILE.search(c)]
    return table.select(keep).to_pylist()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare(a: Path, b: Path) -> tuple[int, list[str]]:
    checked, differ = 0, []
    for path_a in sorted(a.rglob("*")):
        rel = path_a.relative_to(a)
        path_b = b / rel
        if not path_a.is_file() or not path_b.is_file() or any(p.startswith(".") for p in rel.parts):
            continue
        if "checkpoints" in rel.parts:  # the final model is compared; checkpoints are its earlier states
            continue
        if path_a.name == "model.safetensors":
            same = sha256(path_a) == sha256(path_b)
        elif path_a.suffix == ".parquet":
            same = parquet_rows(path_a) == parquet_rows(path_b)
        elif path_a.name in SUMMARIES:
            same = stable(load_json(path_a), str(a), str(b)) == stable(load_json(path_b), str(a), str(b))
        else:
            continue
        checked += 1
        if not same:
            differ.append(str(rel))
    return checked, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    checked, differ = compare(args.before.resolve(), args.after.resolve())
    for rel in differ:
        print(f"differs: {rel}")
    print(f"{checked} files compared (weights, parquet outputs, summaries): {checked - len(differ)} the same, "
          f"{len(differ)} different")
    sys.exit(1 if differ or not checked else 0)


if __name__ == "__main__":
    main()
