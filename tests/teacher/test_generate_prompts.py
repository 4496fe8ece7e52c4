"""Bad prompt files: one line naming the file and the line, exit 2 (item 11 of issue 13)."""

import json

import pytest
import yaml

from distill.cli import main
from distill.errors import UsageError
from distill.teacher.config import PromptsSection
from distill.teacher.prompts import load_prompts

GOOD = [json.dumps({"id": f"p{i}", "problem": f"Compute {i} + 1.", "answer": str(i + 1)}) for i in range(3)]


def load(path, **kw):
    return load_prompts(PromptsSection(source=str(path), **kw))


@pytest.mark.parametrize("bad_line, expected", [
    (b'{"id": "x", "problem": "caf\xe9"}', r"prompts.jsonl:3: not UTF-8 text \(byte 0xe9 at column 28\)"),
    (b'{"id": "x", "problem": ', r"prompts.jsonl:3: not valid JSON \(Expecting value, column 24\)"),
    (b'["x", "Compute 1."]', r"prompts.jsonl:3: expected a JSON object, got list"),
    (b'{"id": "x", "problem": 7}', r"prompts.jsonl:3: empty or non-text problem"),
    (b'{"id": "x"}', r"prompts.jsonl:3: empty or non-text problem"),
    (b'{"id": null, "problem": "Compute 2."}', r"prompts.jsonl:3: no id"),
    (b'{"id": "p0", "problem": "Compute 2."}', r"prompts.jsonl:3: duplicate id 'p0'"),
])
def test_a_bad_jsonl_line_is_named(tmp_path, bad_line, expected):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b"\n".join([GOOD[0].encode(), GOOD[1].encode(), bad_line, GOOD[2].encode()]) + b"\n")
    with pytest.raises(UsageError, match=expected):
        load(path)


def test_mixed_value_types_and_blank_lines_load(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [{"id": 1, "problem": "Compute 1 + 1.", "answer": 2}, {"id": "b", "problem": "Compute 2 + 2.", "answer": "4", "level": 3}]
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    prompts = load(path)
    assert [(p.id, p.answer) for p in prompts] == [("1", "2"), ("b", "4")]
    assert prompts[0].metadata == {"level": None} and prompts[1].metadata == {"level": 3}


def test_json_array_errors_name_the_line_or_item(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text('[\n  {"id": "a", "problem": "Compute 1."},\n  {"id": "b", "problem": }\n]\n')
    with pytest.raises(UsageError, match=r"prompts.json:3: not valid JSON"):
        load(path)
    path.write_text('[{"id": "a", "problem": "Compute 1."}, 5]')
    with pytest.raises(UsageError, match=r"prompts.json: item 1: expected a JSON object, got int"):
        load(path)
    path.write_bytes(b'[{"id": "a",\n "problem": "\xff"}]')
    with pytest.raises(UsageError, match=r"prompts.json:2: not UTF-8 text \(byte 0xff at column 14\)"):
        load(path)


def test_an_empty_file_says_so(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n")
    with pytest.raises(UsageError, match="has no column for .*none, it holds no rows"):
        load(path)


def test_the_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_bytes(GOOD[0].encode() + b"\n\xff\xfe\n")
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({"name": "p", "run_dir": str(tmp_path / "run"), "prompts": {"source": str(prompts)},
                                   "engine": {"kind": "openai", "base_urls": ["http://127.0.0.1:9/v1"]}}))
    assert main(["generate", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: prompts.source: {prompts}:2: not UTF-8 text (byte 0xff at column 1); save the file as UTF-8"]
