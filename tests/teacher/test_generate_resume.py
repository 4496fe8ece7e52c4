"""The exit status, damaged shards and the resume guard of `distill generate` (a FAKE hosted API serves)."""

import json

import pyarrow.parquet as pq
import pytest
import yaml

from distill.cli import main
from distill.config import load_config
from distill.errors import DistillError, UsageError
from distill.curate.config import CurateConfig
from distill.teacher.generate import generate
from distill.traces import DamagedShard, iter_batches, latest_rank, read_table
from support.fake_openai import FakeOpenAIServer


def write_prompts(path, count, edit=None):
    path.write_text("".join(json.dumps({"id": f"p{i}", "problem": (edit if i == 1 and edit else f"Compute {i} + 1."),
                                        "answer": str(i + 1)}) + "\n" for i in range(count)))


def run_yaml(tmp_path, server, prompts=4, **over):
    source = tmp_path / "prompts.jsonl"
    if not source.exists():
        write_prompts(source, prompts)
    raw = {"name": "r", "run_dir": str(tmp_path / "run"), "prompts": {"source": str(source)},
           "engine": {"kind": "openai", "model": "fake", "base_urls": [server.base_url], "max_concurrency": 1,
                      "max_retries": 0, "vllm_extensions": False},
           "sampling": {"n": 1, "max_tokens": 50}, "flush_every": 1, **over}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def cfg(path, *overrides):
    return load_config(path, CurateConfig, list(overrides))


def pairs(tmp_path):
    table = read_table(tmp_path / "run" / "traces", ["prompt_id", "sample_index", "status"])
    return sorted(zip(*(table.column(c).to_pylist() for c in ("prompt_id", "sample_index", "status"))))


def test_exit_status_tells_how_many_failed_and_how_to_retry(tmp_path, capsys):
    with FakeOpenAIServer(["500"] * 4) as server:
        assert main(["generate", str(run_yaml(tmp_path, server))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 4 of 4 samples still failed after retries")
    assert "HTTP 500" in err[0] and "rerun the same command to retry only the failed samples" in err[0]
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "failed"
    with FakeOpenAIServer(["500"]) as server:  # the rerun retries the failed ones; one still fails
        path = run_yaml(tmp_path, server)
        with pytest.raises(DistillError, match="1 of 4 samples still failed"):
            generate(cfg(path))
        assert len(server.requests) == 4
    with FakeOpenAIServer() as server:  # the last failed sample, retried
        path = run_yaml(tmp_path, server)
        assert main(["generate", str(path), "max_failed_fraction=0.25"]) == 0
        assert len(server.requests) == 1
    assert [s for *_, s in pairs(tmp_path)].count("ok") == 4


def test_a_failed_fraction_within_the_limit_exits_zero(tmp_path):
    with FakeOpenAIServer(["500"]) as server:
        generate(cfg(run_yaml(tmp_path, server), "max_failed_fraction=0.25"))  # 1 of 4: not more than a quarter
    summary = json.loads((tmp_path / "run" / "generate_summary.json").read_text())
    assert summary["failed"] == 1 and summary["ok"] == 3
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "completed"


def damage(traces):
    shards = sorted(traces.glob("shard-*.parquet"))
    data = shards[0].read_bytes()
    shards[0].write_bytes(data[: len(data) // 2])  # truncated
    shards[1].write_bytes(b"")  # zero bytes
    for shard, column in ((shards[2], "prompt_id"), (shards[3], "status")):
        table = pq.read_table(shard)
        pq.write_table(table.drop_columns([column]), shard)
    return shards


def test_damaged_shards_are_one_line_each_and_repair_regenerates_them(tmp_path, capsys):
    with FakeOpenAIServer() as server:
        path = run_yaml(tmp_path, server, prompts=5)
        generate(cfg(path))
    traces = tmp_path / "run" / "traces"
    shards = damage(traces)
    for shard, reason in zip(shards, ["magic bytes not found", "size is 0 bytes", "no column prompt_id", "no column status"]):
        with pytest.raises(DamagedShard, match=reason) as caught:
            pq_read_one(traces, shard)
        assert str(shard) in str(caught.value) and "repair=true" in str(caught.value)
    for read in (lambda: read_table(traces), lambda: latest_rank(traces), lambda: list(iter_batches(traces, ["response"]))):
        with pytest.raises(DamagedShard, match="shard-000000.parquet: damaged trace shard"):
            read()
    with FakeOpenAIServer() as server:
        path = run_yaml(tmp_path, server)
        capsys.readouterr()
        assert main(["generate", str(path)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "shard-000000.parquet: damaged trace shard" in err[0] and "repair=true" in err[0]
        assert not server.requests
        assert main(["generate", str(path), "repair=true"]) == 0
        assert len(server.requests) == 4  # the four damaged shards' samples, and only those
    assert sorted(p.name for p in (traces / "damaged").iterdir()) == [s.name for s in shards[:4]]
    assert pairs(tmp_path) == [(f"p{i}", 0, "ok") for i in range(5)]  # every pair exactly once
    assert "moved to" in capsys.readouterr().out


def pq_read_one(traces, shard):
    """Read a directory holding only `shard` (the others moved away for the moment)."""
    others = [p for p in traces.glob("shard-*.parquet") if p != shard]
    aside = traces.parent / "aside"
    aside.mkdir(exist_ok=True)
    for p in others:
        p.rename(aside / p.name)
    try:
        read_table(traces, ["prompt_id", "sample_index", "status"])
    finally:
        for p in others:
            (aside / p.name).rename(p)


def test_a_shard_with_null_keys_or_an_unknown_status_is_damaged(tmp_path):
    with FakeOpenAIServer() as server:
        generate(cfg(run_yaml(tmp_path, server, prompts=2)))
    traces = tmp_path / "run" / "traces"
    first, second = sorted(traces.glob("shard-*.parquet"))
    table = pq.read_table(first)
    pq.write_table(table.set_column(table.schema.get_field_index("status"), "status", [["done"]]), first)
    with pytest.raises(DamagedShard, match="status 'done', expected ok or failed"):
        read_table(traces)
    table = pq.read_table(second)
    pq.write_table(table.set_column(table.schema.get_field_index("prompt_id"), "prompt_id", [[None]]), second)
    first.unlink()
    with pytest.raises(DamagedShard, match="1 rows without prompt_id"):
        read_table(traces)


def test_a_prompt_edited_in_place_is_refused(tmp_path):
    with FakeOpenAIServer() as server:
        path = run_yaml(tmp_path, server, prompts=3)
        generate(cfg(path))
        write_prompts(tmp_path / "prompts.jsonl", 4)  # extended: the new prompt is generated, the others kept
        generate(cfg(path))
        assert len(server.requests) == 4
        write_prompts(tmp_path / "prompts.jsonl", 4, edit="Compute 100 + 1.")  # same id p1, new text
        with pytest.raises(UsageError, match=r"1 prompts with traces .* read differently now \(first: id 'p1'\)"):
            generate(cfg(path))
        assert len(server.requests) == 4


@pytest.mark.parametrize("manifest", [None, "{not json", '{"stage": "curate"}'])
def test_shards_without_a_readable_manifest_are_refused(tmp_path, manifest):
    with FakeOpenAIServer() as server:
        path = run_yaml(tmp_path, server, prompts=2)
        generate(cfg(path))
        manifest_path = tmp_path / "run" / "manifest.json"
        if manifest is None:
            manifest_path.unlink()
        else:
            manifest_path.write_text(manifest)
        with pytest.raises(UsageError, match="holds trace shards but .*manifest.json is missing or unreadable"):
            generate(cfg(path, "sampling.temperature=1.0", "prompts.limit=1"))
        assert len(server.requests) == 2


def test_a_flipped_bit_inside_a_data_page_is_damage_not_data(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.traces import SCHEMA, DamagedShard, read_table

    rows = [{**dict.fromkeys(SCHEMA.names), "prompt_id": f"p{i}", "sample_index": 0, "status": "ok", "response": "x" * 2000}
            for i in range(20)]
    (tmp_path / "traces").mkdir()
    shard = tmp_path / "traces" / "shard-000000.parquet"
    # Uncompressed, so that the flip cannot be caught by a failing decompression: only the page checksum sees it.
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), shard, compression="none", write_page_checksum=True)
    data = bytearray(shard.read_bytes())
    data[data.index(b"x" * 2000) + 1000] = ord("y")
    shard.write_bytes(bytes(data))
    with pytest.raises(DamagedShard, match="shard-000000.parquet: damaged trace shard"):
        read_table(tmp_path / "traces")
