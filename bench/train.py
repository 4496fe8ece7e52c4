"""Students stage throughput: real tokens/s, MFU and peak memory per training mode, through the project's own prepare().

A random-initialised model of a recipe's shape (distill/shapes.py: 1.5b, 7b, 8b, 14b, 32b, 70b, a Hub id or a local
model directory; `tiny` for CPU) trains on synthetic traces with an R1-like length spread (median ~0.37 x max_length,
i.e. ~3k tokens at 8192, lognormal tail up to max_length), tokenised by the toy tokenizer. Per mode (padded, packed,
packed+liger) and gradient-checkpointing setting it prints one row:

- tokens/s: real (non-padding) tokens of the timed steps (after --warm steps) per second;
- MFU: tokens/s x FLOPs per token / the GPU's peak bf16 dense FLOPs. FLOPs per token = 6 N (N: the weights a token
  is multiplied by; an untied input embedding is a lookup) + causal attention 6 L d S, with S = sum(s^2) / sum(s) over
  the traces s of the timed batches (token-weighted; = the length when all are equal). Recompute is not counted;
- peak GPU memory, and the attention path the model ran with.

    .venv/bin/python bench/train.py                                # CPU, tiny shape: a smoke run in seconds
    python bench/train.py --device cuda --shape 1.5b --append-results
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from distill.errors import UsageError  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "train_gpu.json"
MODES = ("padded", "packed", "packed+liger")
# Peak dense bf16 tensor FLOPs per GPU (vendor datasheets, no sparsity). First match in the device name wins.
PEAK_TFLOPS = (("GH200", "H200", 989), ("H200", "H200", 989), ("H100 PCIe", "H100 PCIe", 756),
               ("H100 NVL", "H100 NVL", 835), ("H100", "H100", 989), ("H800", "H800", 989), ("B200", "B200", 2250),
               ("A100", "A100", 312), ("A800", "A800", 312), ("L40S", "L40S", 362), ("L4", "L4", 121),
               ("A10", "A10", 125))
TINY = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096, "tie_word_embeddings": True}


def gpu_kind(device_name: str) -> tuple[str, float | None]:
    for needle, kind, tflops in PEAK_TFLOPS:
        if needle.lower() in device_name.lower():
            return kind, tflops * 1e12
    return device_name, None


def make_base(shape: str, work: Path, device: str) -> tuple[Path, str]:
    """A random-initialised model of `shape` with the toy tokenizer, saved under `work`; returns (dir, shape name)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from distill.shapes import ALIASES, model_config

    tokenizer = AutoTokenizer.from_pretrained(str(ROOT / "toy" / "teacher"))
    if shape == "tiny":
        fields = dict(TINY)
        config, name = AutoConfig.for_model(fields.pop("model_type"), vocab_size=len(tokenizer), **fields), "tiny"
    else:
        config, name = model_config(shape), ALIASES.get(shape.lower(), shape)
        if config is None:
            raise UsageError(f"--shape: {shape!r} is neither tiny, a shape of distill/shapes.py ({', '.join(ALIASES)}, or "
                             "a Hub id there) nor a model directory with a config.json")
    config.eos_token_id, config.pad_token_id, config.bos_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id, None
    target = work / f"base-{name.replace('/', '--')}"
    if (target / "config.json").exists():
        return target, name
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    print(f"base {name}: {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters, random-initialised", flush=True)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    del model
    gc.collect()
    return target, name


def make_traces(work: Path, count: int, max_length: int, seed: int = 0) -> Path:
    """Chat traces whose token lengths follow an R1-like spread: lognormal, median 0.37 x max_length, sigma 0.7."""
    from transformers import AutoTokenizer

    target = work / f"traces-{count}-{max_length}"
    if (target / "train.jsonl").exists():
        return target
    tokenizer = AutoTokenizer.from_pretrained(str(ROOT / "toy" / "teacher"))
    rng = random.Random(seed)

    def line() -> str:
        x, y = rng.randint(0, 99), rng.randint(0, 99)
        return f"Step: {x} + {y} = {x + y}, so we carry on with {x - y}.\n"

    sample = "".join(line() for _ in range(20))
    chars_per_token = len(sample) / len(tokenizer(sample)["input_ids"])
    target.mkdir(parents=True, exist_ok=True)
    with open(target / "train.jsonl.partial", "w", encoding="utf-8") as f:
        for _ in range(count):
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            tokens = min(0.95 * max_length, max(0.025 * max_length, rng.lognormvariate(math.log(0.37 * max_length), 0.7)))
            body, want = [], (tokens - 40) * chars_per_token
            while sum(map(len, body)) < want:
                body.append(line())
            messages = [{"role": "user", "content": f"What is {a} + {b}? Please reason step by step, and put your final "
                                                    "answer within \\boxed{}."},
                        {"role": "assistant", "content": "<think>\n" + "".join(body) + f"</think>\n\n\\boxed{{{a + b}}}"}]
            f.write(json.dumps({"messages": messages}) + "\n")
    (target / "train.jsonl.partial").rename(target / "train.jsonl")
    return target


def flops_per_token(model, lengths: list[int]) -> float:
    """6 N + 6 L d S (module docstring)."""
    config = model.config
    n = sum(p.numel() for p in model.parameters())
    if not getattr(config, "tie_word_embeddings", False):
        n -= model.get_input_embeddings().weight.numel()  # a lookup, no matmul
    context = sum(s * s for s in lengths) / max(1, sum(lengths))
    return 6 * n + 6 * config.num_hidden_layers * config.hidden_size * context


class BatchStats:
    """Wraps the trainer's collator: real tokens and trace lengths of each batch, in the order the steps take them."""

    def __init__(self, collator):
        self.collator, self.batches = collator, []

    def __call__(self, examples):
        batch = self.collator(examples)
        if "cu_seq_lens_q" in batch:  # padding-free: one row, traces bounded by cu_seq_lens
            lengths = batch["cu_seq_lens_q"].diff().tolist()
        else:
            lengths = batch["attention_mask"].sum(dim=1).tolist()
        self.batches.append((sum(lengths), lengths))
        return batch


def measure(args, base: Path, data: Path, mode: str, checkpointing: bool) -> dict:
    from transformers import TrainerCallback

    from distill.cli import quiet_libraries
    from distill.config import load_config
    from distill.students.config import StudentConfig
    from distill.students.train import prepare

    quiet_libraries()
    packed = mode.startswith("packed")
    label = f"{mode}{'' if checkpointing else '-nockpt'}"
    cfg = load_config(ROOT / "students" / "toy-student.yaml", StudentConfig, [
        "name=bench", f"model.name_or_path={base}", "model.family=qwen", f"model.attn_implementation={args.attention}",
        f"model.dtype={'bfloat16' if args.device == 'cuda' else 'float32'}", f"data.source={data}",
        f"run_dir={args.work / 'runs' / label}", f"training.max_length={args.max_length}", f"training.packing={packed}",
        f"training.per_device_train_batch_size={args.rows if packed else args.batch}", "training.gradient_accumulation_steps=1",
        f"training.max_steps={args.steps}", "training.save_steps=1000000", f"training.logging_steps={args.steps}",
        "training.warmup_steps=0", "training.learning_rate=1e-5", f"training.bf16={args.device == 'cuda'}",
        f"training.gradient_checkpointing={checkpointing}", f"training.use_liger_kernel={mode.endswith('liger')}",
        "training.dataloader_num_workers=0", *([f"training.dataset_num_proc={args.num_proc}"] if args.num_proc else []),
    ])
    on_gpu = args.device == "cuda"
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = prepare(cfg).trainer
    stats = BatchStats(trainer.data_collator)
    trainer.data_collator = stats
    stamps = []

    class Clock(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if on_gpu:
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    trainer.add_callback(Clock())
    trainer.train()
    timed = stats.batches[args.warm:args.steps]
    seconds = stamps[args.steps - 1] - stamps[args.warm - 1]
    tokens = sum(t for t, _ in timed)
    lengths = [s for _, ls in timed for s in ls]
    tok_s = tokens / seconds
    kind, peak = gpu_kind(torch.cuda.get_device_name()) if on_gpu else ("cpu", None)
    row = {
        "gpu": kind, "shape": args.shape_name, "mode": mode,
        "batch": f"{args.rows} rows of {args.max_length}" if packed else f"{args.batch} rows",
        "max_length": args.max_length, "attention": trainer.model.config._attn_implementation,
        "gradient_checkpointing": bool(getattr(trainer.args, "activation_checkpointing", None)
                                       or getattr(trainer.args, "gradient_checkpointing", False)),
        "tokens_per_s": round(tok_s), "mfu": round(tok_s * flops_per_token(trainer.model, lengths) / peak, 3) if peak else None,
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if on_gpu else None,
        "source": args.source, "steps_timed": args.steps - args.warm, "real_tokens": tokens,
        "traces_per_step": round(len(lengths) / max(1, len(timed)), 1),
    }
    del trainer
    gc.collect()
    if on_gpu:
        torch.cuda.empty_cache()
    return row


def skipped(args, mode: str, checkpointing: bool, reason: str) -> dict:
    return {"mode": mode, "gradient_checkpointing": checkpointing, "skipped": reason}


def print_table(rows: list[dict]) -> None:
    print(f"\n{'mode':<14} {'ckpt':>5} {'attention':<18} {'batch':<16} {'tokens/s':>10} {'MFU':>6} {'peak GiB':>9}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['mode']:<14} {str(r['gradient_checkpointing']):>5} skipped: {r['skipped']}")
            continue
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
        print(f"{r['mode']:<14} {str(r['gradient_checkpointing']):>5} {r['attention']:<18} {r['batch']:<16} "
              f"{r['tokens_per_s']:>10,} {mfu:>6} {peak:>9}", flush=True)


def append_results(path: Path, rows: list[dict]) -> None:
    from distill.io import atomic_write_text

    keys = ("gpu", "shape", "mode", "batch", "max_length", "attention", "gradient_checkpointing", "tokens_per_s", "mfu",
            "peak_gib", "source")
    doc = json.loads(path.read_text()) if path.exists() else {"rows": []}
    doc["rows"].extend({k: r[k] for k in keys} for r in rows if "skipped" not in r)
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--shape", default=None, help="tiny (CPU default), 1.5b (cuda default), 7b, ..., a Hub id of "
                                                 "distill/shapes.py or a model directory")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument("--checkpointing", choices=("on", "off", "both"), default="on",
                   help="gradient checkpointing per mode (CPU runs train without it whatever this says)")
    p.add_argument("--attention", default="auto", help="model.attn_implementation (auto picks, see distill/students/attention.py)")
    p.add_argument("--max-length", type=int, default=None, help="default: 8192 on cuda, 512 on cpu")
    p.add_argument("--batch", type=int, default=2, help="padded: traces per step")
    p.add_argument("--rows", type=int, default=2, help="packed: rows of max-length tokens per step")
    p.add_argument("--steps", type=int, default=None, help="default: 12 on cuda, 4 on cpu")
    p.add_argument("--warm", type=int, default=None, help="untimed first steps (default: 3 on cuda, 1 on cpu)")
    p.add_argument("--traces", type=int, default=None, help="synthetic traces (default: 600 on cuda, 48 on cpu)")
    p.add_argument("--num-proc", type=int, default=None, help="tokenisation processes")
    p.add_argument("--work", type=Path, default=None, help="where models, traces and runs go (default: a temp dir)")
    p.add_argument("--json-out", type=Path, default=None, help="also write every row (and versions) to this JSON file")
    p.add_argument("--append-results", action="store_true", help="append the measured rows to --results")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--prepare-only", action="store_true", help="build the base model and traces under --work, print "
                                                                "'BASE dir' and 'DATA dir', train nothing (bench/gpu_check.sh)")
    args = p.parse_args(argv)
    gpu = args.device == "cuda"
    if gpu and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is False)")
    args.shape = args.shape or ("1.5b" if gpu else "tiny")
    args.max_length = args.max_length or (8192 if gpu else 512)
    args.steps = args.steps or (12 if gpu else 4)
    args.warm = args.warm if args.warm is not None else (3 if gpu else 1)
    args.traces = args.traces or (600 if gpu else 48)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in MODES]
    if bad:
        raise UsageError(f"--modes: {', '.join(bad)} not one of {', '.join(MODES)}")
    if not 1 <= args.warm < args.steps:
        raise UsageError(f"--warm {args.warm} must be at least 1 and below --steps {args.steps}")
    if args.append_results and not gpu and args.results == RESULTS:
        raise UsageError(f"--append-results: CPU rows do not go into {RESULTS.relative_to(ROOT)} (GPU figures that plan "
                         "prices runs with); pass --results PATH")
    return args


def versions() -> dict:
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


def main(argv=None) -> int:
    try:
        args = parse(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    v = versions()
    args.source = (f"bench/train.py {datetime.date.today().isoformat()} ({v['gpu']}, torch {v['torch']}, "
                   f"transformers {v['transformers']}, trl {v['trl']})")
    print("versions", json.dumps(v), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        args.work = args.work or Path(tmp)
        args.work.mkdir(parents=True, exist_ok=True)
        try:
            base, args.shape_name = make_base(args.shape, args.work, args.device)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        data = make_traces(args.work, args.traces, args.max_length)
        if args.prepare_only:
            print(f"BASE {base}\nDATA {data}")
            return 0
        rows = []
        for mode in args.modes:
            for checkpointing in {"on": [True], "off": [False], "both": [True, False]}[args.checkpointing]:
                try:
                    row = measure(args, base, data, mode, checkpointing)
                except UsageError as exc:
                    if "not installed" not in str(exc):
                        raise
                    # liger-kernel (or a kernel) missing: one line, the other modes still run
                    row = skipped(args, mode, checkpointing, str(exc)[:200])
                except torch.cuda.OutOfMemoryError as exc:
                    row = skipped(args, mode, checkpointing, f"out of GPU memory: {str(exc).splitlines()[0][:120]}")
                    gc.collect()
                    torch.cuda.empty_cache()
                print("ROW " + json.dumps(row), flush=True)
                rows.append(row)
    print(f"\nstudents stage, shape {args.shape_name}, {args.device}, max_length {args.max_length}, {args.steps} steps "
          f"({args.warm} untimed)")
    print_table(rows)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"versions": v, "rows": rows}, indent=1) + "\n")
    if args.append_results:
        append_results(args.results, rows)
        print(f"appended {sum('skipped' not in r for r in rows)} rows to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
