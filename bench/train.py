"""Students stage throughput on the toy data: packing (padding-free) vs padded batches, in one run.

Prints, per mode: real (non-padding) tokens per second, the fraction of non-padding tokens in the
batches, and the ratio of packed to padded throughput. Both modes see about the same number of
tokens per step: padded batches hold `--batch` conversations; packed batches hold rows of
`--max-length` tokens, as many as carry the same tokens.

On CPU the padding-free path builds a block-diagonal attention mask over the whole flattened batch
(there is no varlen flash-attention kernel), so its attention cost grows with the square of the
tokens per step; on GPUs with flash-attention that cost is per sequence.

    .venv/bin/python bench/train.py [--steps 30] [--batch 16] [--max-length 256] [--world runs/toy/world]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distill.cli import quiet_libraries  # noqa: E402
from distill.config import load_config  # noqa: E402
from distill.students.config import StudentConfig  # noqa: E402
from distill.students.train import prepare  # noqa: E402
from distill.toy.world import ToyWorldConfig, build_world  # noqa: E402


def batch_tokens(batch) -> tuple[int, int]:
    """(real tokens, slots) of one collated batch."""
    slots = batch["input_ids"].numel()
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum()), slots
    # Padding-free: one flat row; positions past the last sequence are padding (position id 0 runs).
    return int(batch["cu_seq_lens_q"][-1]) if "cu_seq_lens_q" in batch else slots, slots


def measure(world: Path, packing: bool, steps: int, batch: int, max_length: int, workdir: Path) -> dict:
    """Train `steps` steps in one mode; count real tokens and slots over the same batches."""
    cfg = load_config(
        ROOT / "students" / "toy-student.yaml", StudentConfig,
        [f"model.name_or_path={world / 'bases' / 'qwen2-h64-l2'}", f"data.source={world / 'sft'}",
         f"run_dir={workdir / ('packed' if packing else 'padded')}", f"training.packing={packing}",
         f"training.max_steps={steps}", f"training.per_device_train_batch_size={batch}",
         f"training.max_length={max_length}", "training.save_steps=100000", "training.logging_steps=100000"],
    )
    trainer = prepare(cfg).trainer
    real = slots = 0
    for i, b in enumerate(trainer.get_train_dataloader()):
        if i == steps:
            break
        r, s = batch_tokens(b)
        real, slots = real + r, slots + s
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"mode": "packed (bfd, padding-free)" if packing else "padded", "steps": steps, "real_tokens": real,
            "slots": slots, "nonpad": real / slots, "seconds": seconds, "tok_s": real / seconds}


ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--world", type=Path, default=None, help="a built toy world (default: build a small one)")
    args = parser.parse_args()
    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = args.world or build_world(
            load_config(ROOT / "configs" / "toy-world.yaml", ToyWorldConfig, ["train_problems=5000"]),
            tmp / "world", log=lambda *_: None)
        padded = measure(world, False, args.steps, args.batch, args.max_length, tmp)
        per_step = padded["real_tokens"] / args.steps
        packed_batch = max(1, round(per_step / args.max_length))
        packed = measure(world, True, args.steps, packed_batch, args.max_length, tmp)
        rows = [dict(padded, batch=args.batch), dict(packed, batch=packed_batch)]
    print(f"\nstudents stage, toy student (qwen2-h64-l2), {args.steps} steps, max_length {args.max_length}, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    print(f"{'mode':<28} {'batch':>6} {'real tokens':>12} {'non-pad':>8} {'seconds':>8} {'tokens/s':>10}")
    for r in rows:
        print(f"{r['mode']:<28} {r['batch']:>6} {r['real_tokens']:>12,} {r['nonpad']:>8.1%} {r['seconds']:>8.1f} "
              f"{r['tok_s']:>10,.0f}")
    print(f"packed / padded throughput: {rows[1]['tok_s'] / rows[0]['tok_s']:.2f}x")


if __name__ == "__main__":
    main()
