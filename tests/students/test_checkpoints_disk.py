"""A disk too small for the run's checkpoints is one line before training (issue 16 saw a 1.5B run fail inside torch.save
at its first checkpoint), and a checkpoint write that fails mid-run is one line with the free space."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from distill.config import load_config
from distill.errors import UsageError
from distill.students import checkpoints
from distill.students.config import StudentConfig
from distill.students.train import train
from support import student_yaml

Usage = namedtuple("Usage", "total used free")


def tiny(dtype=torch.float32):
    cfg = AutoConfig.for_model("qwen2", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                               num_key_value_heads=1, vocab_size=50, tie_word_embeddings=True)
    return AutoModelForCausalLM.from_config(cfg, dtype=dtype)


def test_checkpoint_size_is_weights_plus_two_adam_moments():
    model = tiny(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    assert checkpoints.checkpoint_bytes(model) == n * 2 + 2 * n * 2
    # DeepSpeed / FSDP mixed precision: fp32 moments and fp32 master weights
    assert checkpoints.checkpoint_bytes(model, fp32_states=True) == n * 2 + 2 * n * 4 + n * 4
    for p in model.model.layers.parameters():
        p.requires_grad_(False)
    frozen = sum(p.numel() for p in model.model.layers.parameters())
    assert checkpoints.checkpoint_bytes(model) == n * 2 + 2 * (n - frozen) * 2


def test_too_little_disk_stops_before_training_with_one_line(tmp_path, monkeypatch, toy_world):
    # A fake disk (shutil.disk_usage) with 1 kB free: a real full disk cannot be made here.
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - 1000, 1000))
    cfg = load_config(student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", max_steps=4, save_steps=2),
                      StudentConfig)
    with pytest.raises(UsageError, match=r"training.save_steps: one checkpoint of this run is about .* GB .* has 0.0 GB free"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists() or not list((tmp_path / "run" / "checkpoints").iterdir())


def test_no_checkpoint_before_the_end_needs_no_room(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: Usage(10**12, 10**12, 0))
    assert checkpoints.check_disk_for_checkpoints(tmp_path / "out", tiny(), save_steps=500, max_steps=10,
                                                  save_total_limit=2) > 0


def test_room_for_one_but_not_the_kept_ones_is_said(tmp_path, monkeypatch, capsys):
    model = tiny()
    one = checkpoints.checkpoint_bytes(model)
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: Usage(10**12, 0, int(one * 1.5)))
    checkpoints.check_disk_for_checkpoints(tmp_path / "out" / "deeper", model, save_steps=2, max_steps=10,
                                           save_total_limit=2)
    assert "2 kept checkpoints" in capsys.readouterr().out


def test_failed_write_is_one_line_with_the_free_space(tmp_path):
    with pytest.raises(UsageError, match=r"writing a checkpoint under .* failed: RuntimeError: .*file write failed; "
                                         r"[\d.]+ GB free there now"):
        with checkpoints.write_failures_explained(tmp_path):
            raise RuntimeError("[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file "
                               "data/3: file write failed")
    with pytest.raises(RuntimeError, match="CUDA error"):  # anything else goes through untouched
        with checkpoints.write_failures_explained(tmp_path):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
