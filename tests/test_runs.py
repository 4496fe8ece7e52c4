import json
import os

import pytest

from distill.io import atomic_write_text, replace_dir, staging_dir_for
from distill.runs import Manifest, Run, replacing
from distill.students.checkpoints import last_complete_checkpoint
from distill.toy.world import ToyWorldConfig
from distill.errors import UsageError


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    atomic_write_text(target, "old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind


def test_replace_dir_swaps_whole_directories(tmp_path):
    final = tmp_path / "model"
    for version in ("1", "2"):
        staging = staging_dir_for(final)
        (staging / "weights").write_text(version)
        replace_dir(staging, final)
    assert (final / "weights").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_run_writes_config_and_manifest_and_refuses_incompatible_resume(tmp_path):
    cfg = ToyWorldConfig()
    run = Run(tmp_path / "r", "toy", cfg, {"model": "a"}).start()
    run.finish(items=3)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["counts"] == {"items": 3}
    assert manifest["started"] and manifest["ended"] and "torch" in manifest["versions"]
    assert (tmp_path / "r" / "config.yaml").read_text().startswith("seed: 0")
    again = Run(tmp_path / "r", "toy", cfg, {"model": "a"}).start()
    assert again.manifest.resumed_from == manifest["started"]
    with pytest.raises(UsageError, match="different model"):
        Run(tmp_path / "r", "toy", cfg, {"model": "b"}).start()


def test_last_complete_checkpoint_skips_and_removes_partial_saves(tmp_path):
    for step, complete in ((10, True), (20, True), (30, False)):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "model.safetensors").write_bytes(b"w")
        if complete:
            (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-20" / "trainer_state.json").write_text('{"global_st')  # truncated write
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10"]
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_only_absent_empty_or_same_stage_directories_may_be_replaced_whole(tmp_path):
    from distill.runs import check_replaceable

    check_replaceable(tmp_path / "absent", "report", "run_dir")
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty", "report", "run_dir")
    report = Run(tmp_path / "report", "report", ToyWorldConfig()).start()
    report.finish()
    check_replaceable(tmp_path / "report", "report", "run_dir")
    with pytest.raises(UsageError, match=r"run_dir: .*/report holds a report run; curate replaces"):
        check_replaceable(tmp_path / "report", "curate", "run_dir")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(UsageError, match=r"holds files that no distill report wrote"):
        check_replaceable(tmp_path / "model", "report", "run_dir")


def test_manifest_round_trips_keeps_keys_of_other_versions_and_is_none_where_unreadable(tmp_path):
    run = Run(tmp_path / "r", "toy", ToyWorldConfig(), {"model": "a"}).start()
    run.finish(items=3)
    path = tmp_path / "r" / "manifest.json"
    written = json.loads(path.read_text())
    assert Manifest.read(tmp_path / "r").model_dump(mode="json") == written  # nothing added, nothing lost
    path.write_text(json.dumps({**written, "added_by_a_later_version": 1}))
    assert Manifest.find(tmp_path / "r").model_dump()["added_by_a_later_version"] == 1
    for damaged in ("{", "[1, 2]", json.dumps({"status": "completed"})):  # not JSON, not an object, no stage
        path.write_text(damaged)
        assert Manifest.find(tmp_path / "r") is None
        with pytest.raises(UsageError, match="manifest.json"):
            Manifest.read(tmp_path / "r")
    assert Manifest.find(tmp_path / "absent") is None


def test_replacing_swaps_in_a_finished_run_whole_and_keeps_the_old_output_on_an_error(tmp_path):
    out = tmp_path / "out"
    with replacing(out, "report", ToyWorldConfig(), "run_dir") as run:
        assert run.dir != out and not out.exists()  # written beside, swapped in at the end
        (run.dir / "report.md").write_text("first")
    assert (out / "report.md").read_text() == "first"
    assert Manifest.read(out).status == "completed" and Manifest.read(out).stage == "report"
    with pytest.raises(RuntimeError), replacing(out, "report", ToyWorldConfig(), "run_dir") as run:
        (run.dir / "report.md").write_text("second, half-written")
        raise RuntimeError("crash mid-run")
    assert (out / "report.md").read_text() == "first"
    with replacing(out, "report", ToyWorldConfig(), "run_dir") as run:  # the lock was released by the crash
        (run.dir / "report.md").write_text("third")
        run.finish(status="completed", pages=1)
    assert (out / "report.md").read_text() == "third" and Manifest.read(out).counts == {"pages": 1}


def test_replacing_refuses_an_output_that_another_stage_wrote_or_that_holds_an_input(tmp_path):
    with replacing(tmp_path / "mix", "mix", ToyWorldConfig(), "run_dir"):
        pass
    with pytest.raises(UsageError, match="run_dir: .*/mix holds a mix run; report replaces"):
        with replacing(tmp_path / "mix", "report", ToyWorldConfig(), "run_dir"):
            pass
    (tmp_path / "pool" / "data").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"run_dir: .*/pool holds the input sources.0.source"):
        with replacing(tmp_path / "pool", "prompts", ToyWorldConfig(), "run_dir",
                       [("sources.0.source", str(tmp_path / "pool" / "data"))]):
            pass
    assert (tmp_path / "pool" / "data").is_dir()
