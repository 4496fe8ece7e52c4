"""bench/train.py on CPU with the tiny shape: one row per mode through the project's prepare(), rows appended in the
shape `distill plan` reads, and the FLOPs count it reports MFU with."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from transformers import AutoConfig, AutoModelForCausalLM

from support import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import train as bench  # noqa: E402

ROW_KEYS = {"gpu", "shape", "mode", "batch", "max_length", "attention", "gradient_checkpointing", "tokens_per_s", "mfu",
            "peak_gib", "source"}


def run_bench(*args):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "train.py"), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cpu_run_prints_a_row_per_mode_and_appends_them(tmp_path):
    results = tmp_path / "train_gpu.json"
    results.write_text(json.dumps({"about": "kept", "rows": [{"gpu": "H200", "mode": "packed"}]}))
    out = run_bench("--steps", 3, "--warm", 1, "--traces", 24, "--max-length", 512, "--work", tmp_path / "work",
                    "--append-results", "--results", results, "--json-out", tmp_path / "rows.json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = [json.loads(line[4:]) for line in out.stdout.splitlines() if line.startswith("ROW ")]
    assert [r["mode"] for r in rows] == ["padded", "packed", "packed+liger"]
    measured = [r for r in rows if "skipped" not in r]
    assert {r["mode"] for r in measured} >= {"padded", "packed"}
    for r in measured:
        assert ROW_KEYS <= r.keys() and r["tokens_per_s"] > 0 and r["attention"] == "sdpa" and r["shape"] == "tiny"
        assert r["real_tokens"] > 0 and r["mfu"] is None  # no peak FLOPs for a CPU
    packed = next(r for r in measured if r["mode"] == "packed")
    assert packed["traces_per_step"] > 2  # 2 rows of 512 tokens hold more than 2 traces of median ~260
    for r in rows:
        if "skipped" in r:  # liger-kernel is not in the CPU install: one line, not a traceback
            assert "pip install liger-kernel" in r["skipped"]
    kept = json.loads(results.read_text())
    assert kept["about"] == "kept" and len(kept["rows"]) == 1 + len(measured)
    assert all(set(r) == ROW_KEYS for r in kept["rows"][1:])
    assert json.loads((tmp_path / "rows.json").read_text())["rows"] == rows
    assert "tokens/s" in out.stdout and "Traceback" not in out.stderr


def test_cpu_rows_never_go_into_the_gpu_results_file():
    out = run_bench("--append-results")
    assert out.returncode == 2 and "CPU rows do not go into bench/results/train_gpu.json" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_shape_and_mode_are_one_line(tmp_path):
    out = run_bench("--modes", "padded,fast")
    assert out.returncode == 2 and "--modes: fast not one of" in out.stderr
    out = run_bench("--shape", "13b", "--work", tmp_path)
    assert out.returncode == 2 and "--shape: '13b' is neither tiny" in out.stderr and "Traceback" not in out.stderr


def test_flops_per_token_counts_matmuls_and_causal_attention():
    fields = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                  vocab_size=50)
    tied = AutoModelForCausalLM.from_config(AutoConfig.for_model("qwen2", tie_word_embeddings=True, **fields))
    untied = AutoModelForCausalLM.from_config(AutoConfig.for_model("qwen2", tie_word_embeddings=False, **fields))
    n = sum(p.numel() for p in tied.parameters())
    assert bench.flops_per_token(tied, [100, 100]) == 6 * n + 6 * 2 * 32 * 100
    # untied: the input embedding is a lookup; the LM head is a matmul (same size as the tied matrix)
    assert bench.flops_per_token(untied, [100]) == 6 * n + 6 * 2 * 32 * 100
    # token-weighted context: a long trace weighs more than a short one
    assert bench.flops_per_token(tied, [10, 190]) == 6 * n + 6 * 2 * 32 * (10**2 + 190**2) / 200


def test_gpu_kinds_and_their_peak():
    assert bench.gpu_kind("NVIDIA H100 80GB HBM3") == ("H100", 989e12)
    assert bench.gpu_kind("NVIDIA H200") == ("H200", 989e12)
    assert bench.gpu_kind("NVIDIA H100 PCIe") == ("H100 PCIe", 756e12)
    assert bench.gpu_kind("Some Future GPU") == ("Some Future GPU", None)
