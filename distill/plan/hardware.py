"""The GPUs a plan prices: memory, peak bf16 FLOPs, an assumed hourly price; and the measured MFU rows
(bench/results/train_gpu.json) that turn FLOPs into hours."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import UsageError

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "train_gpu.json"


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gib: float  # what the driver reports as total (nvidia-smi), not the marketing GB
    bf16_tflops: float  # dense (no sparsity) peak, NVIDIA datasheet
    usd_per_hour: float  # an ASSUMED on-demand price per GPU-hour, overridable (--gpu-hour-usd)


# Datasheet figures (dense bf16 tensor-core peak; memory as nvidia-smi reports it). Prices are assumptions:
# round on-demand figures of 2025 cloud list prices, stated as such in every plan; pass --gpu-hour-usd.
GPUS = {
    "H100": Gpu("H100", 79.6, 989.4, 3.00),  # H100 SXM5 80GB (81559 MiB)
    "H200": Gpu("H200", 140.4, 989.4, 3.50),  # H200 SXM 141GB (143771 MiB); same compute as H100 SXM
    "B200": Gpu("B200", 178.4, 2250.0, 5.00),  # HGX B200 180GB
    "A100-80GB": Gpu("A100-80GB", 80.0, 312.0, 1.80),  # A100 SXM4 80GB (81920 MiB)
    "A100-40GB": Gpu("A100-40GB", 40.0, 312.0, 1.30),
    "L40S": Gpu("L40S", 45.0, 362.1, 1.00),  # 48GB GDDR6 (46068 MiB)
}
ALIASES = {"a100": "A100-80GB", "a100-80": "A100-80GB", "a100-40": "A100-40GB"}


def gpu(name: str) -> Gpu:
    key = ALIASES.get(name.lower(), name).upper()
    found = next((g for k, g in GPUS.items() if k.upper() == key), None)
    if found is None:
        raise UsageError(f"--gpu {name}: unknown GPU kind (known: {', '.join(GPUS)})")
    return found


def load_rows(path: Path = RESULTS) -> list[dict[str, Any]]:
    """The measured rows, [] when the file is absent (an installed package without the repo's bench/)."""
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not the measured-rows file bench/train.py writes ({exc})") from None
    for i, row in enumerate(rows):
        missing = [k for k in ("gpu", "shape", "mode", "mfu") if k not in row]
        if missing:
            raise UsageError(f"{path}: rows[{i}]: missing {', '.join(missing)}")
    return rows


def run_mode(packing: bool, liger: bool) -> str:
    """The `mode` a bench row names for a run: padded | packed, +liger."""
    return ("packed" if packing else "padded") + ("+liger" if liger else "")


@dataclass
class MfuChoice:
    mfu: float
    row: dict[str, Any]
    note: str  # which row, and what was assumed to carry it over


def pick_mfu(rows: list[dict[str, Any]], target: Gpu, mode: str, checkpointing: bool, params: int,
             params_of) -> MfuChoice | None:
    """The measured row closest to this run: same GPU first, then same mode, checkpointing, and the nearest model
    size (`params_of(shape name)` -> parameter count). A row of another GPU keeps its MFU: tokens/s are taken to
    scale with the peak bf16 FLOPs of the GPU."""
    rows = [r for r in rows if isinstance(r.get("mfu"), (int, float)) and r["mfu"] > 0]  # CPU rows carry no MFU
    if not rows:
        return None

    def distance(row):
        row_params = params_of(row["shape"]) or params
        return (row["gpu"].upper() != target.name.upper(), row["mode"] != mode,
                bool(row.get("gradient_checkpointing", True)) != checkpointing, abs(math.log(row_params / params)))

    row = min(rows, key=distance)
    other_gpu, other_mode, other_ckpt, _ = distance(row)
    what = (f"{row['gpu']} {row['shape']} {row['mode']}, {row.get('batch', '?')}, {row.get('attention', '?')}, "
            f"checkpointing {'on' if row.get('gradient_checkpointing', True) else 'off'}")
    caveats = []
    if other_gpu:
        peak = GPUS.get(str(row["gpu"]).upper())
        ratio = f"{target.bf16_tflops:.0f} vs {peak.bf16_tflops:.0f} TFLOPs" if peak else "its peak unknown here"
        caveats.append(f"no {target.name} row: MFU carried over, tokens/s scaled by peak bf16 FLOPs ({ratio})")
    if other_mode:
        caveats.append(f"no {mode} row")
    if other_ckpt:
        caveats.append(f"no row with checkpointing {'on' if checkpointing else 'off'}")
    if params_of(row["shape"]) not in (None, params):
        caveats.append("another model size")
    note = f"measured row: {what}; {row.get('source', 'bench/results/train_gpu.json')}"
    return MfuChoice(float(row["mfu"]), row, note + ("; " + "; ".join(caveats) if caveats else ""))
