import json

import pytest
from datasets import Dataset

from distill.errors import UsageError
from distill.students.data import load_messages

CONVO = [{"role": "user", "content": "Compute 1 + 2."}, {"role": "assistant", "content": "<think>\n1 + 2 = 3\n</think>\n\n\\boxed{3}"}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_loads_parquet_directory_jsonl_file_and_saved_dataset(tmp_path, toy_world):
    from_dir = load_messages(str(toy_world / "sft"))
    assert from_dir.column_names == ["messages"] and len(from_dir) == 2000
    jsonl = write_jsonl(tmp_path / "t.jsonl", [{"messages": CONVO, "extra": 1}] * 3)
    assert len(load_messages(str(jsonl))) == 3
    saved = tmp_path / "saved"
    Dataset.from_list([{"messages": CONVO}] * 5).save_to_disk(str(saved))
    assert len(load_messages(str(saved), max_samples=2)) == 2


def test_split_selects_shards_by_name(tmp_path):
    shards = tmp_path / "curated"
    shards.mkdir()
    Dataset.from_list([{"messages": CONVO}] * 4).to_parquet(str(shards / "train-00000.parquet"))
    Dataset.from_list([{"messages": CONVO}] * 2).to_parquet(str(shards / "rejected-00000.parquet"))
    assert len(load_messages(str(shards), split="train")) == 4
    assert len(load_messages(str(shards), split="rejected")) == 2


def test_curated_set_trains_in_the_same_order_whatever_its_file_order(tmp_path):
    rows = [{"trace_id": f"t{i:02d}", "messages": [CONVO[0], {"role": "assistant", "content": f"answer {i}"}]}
            for i in range(20)]
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(first, rows)
    write_jsonl(second, rows[::-1])  # the same traces, completed in another order
    order = lambda path: [m[1]["content"] for m in load_messages(str(path), shuffle_seed=7)["messages"]]
    assert order(first) == order(second)
    assert order(first) != [r["messages"][1]["content"] for r in rows]  # still shuffled


def test_field_mapping(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"conversation": CONVO}])
    assert load_messages(str(path), messages_field="conversation")[0]["messages"][1]["role"] == "assistant"
    with pytest.raises(UsageError, match="has no column 'messages' .*conversation.*set data.messages_field"):
        load_messages(str(path))


@pytest.mark.parametrize("bad, reason", [
    ([{"role": "user", "content": "hi"}], "no assistant message"),
    ([{"role": "robot", "content": "hi"}], "expected messages with a role"),
    ("just text", "expected a non-empty list"),
])
def test_bad_rows_name_the_file_and_line_whatever_the_shuffle(tmp_path, bad, reason):
    rows = [{"messages": CONVO}] * 4 + [{"messages": bad}] + [{"messages": CONVO}] * 40
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + "".join(json.dumps(r) + "\n" for r in rows[2:]))
    with pytest.raises(UsageError, match=rf"data.source: {path}:6: {reason}"):  # line 6: a blank line precedes it
        load_messages(str(path), shuffle_seed=0)


def test_bad_rows_of_a_parquet_directory_name_the_shard_and_row(tmp_path):
    directory = tmp_path / "curated"
    directory.mkdir()
    Dataset.from_list([{"messages": CONVO}] * 3).to_parquet(str(directory / "train-00000.parquet"))
    Dataset.from_list([{"messages": CONVO}, {"messages": CONVO[:1]}]).to_parquet(str(directory / "train-00001.parquet"))
    with pytest.raises(UsageError, match=rf"data.source: {directory}/train-00001.parquet row 1: no assistant message"):
        load_messages(str(directory))


@pytest.mark.parametrize("line, expected", [
    (b'{"messages": [{"role": "user", "content": "hi"}', "invalid JSON"),
    ('{"messages": "caf\u00e9"}'.encode("latin-1"), "not UTF-8 text"),
    # A line that datasets loads without complaint: the bad bytes surface only when the text is read.
    (b'{"messages": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "1"}]}', "not UTF-8 text"),
])
def test_unreadable_lines_name_the_file_and_line(tmp_path, line, expected):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join((json.dumps({"messages": CONVO}) + "\n").encode() for _ in range(5)) + line + b"\n")
    with pytest.raises(UsageError, match=rf"^data.source: {path}:6: {expected}"):
        load_messages(str(path))


def test_unreachable_hub_dataset_is_a_one_line_error():
    with pytest.raises(UsageError, match=r"data.source: cannot load 'nobody/no-such-dataset'"):
        load_messages("nobody/no-such-dataset")


def test_an_empty_file_has_no_rows(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n\n")
    with pytest.raises(UsageError, match=r"has no rows \(empty file\)"):
        load_messages(str(path))
