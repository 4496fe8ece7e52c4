"""Which GPUs a plan assumes and how the run shards: from the command line, else from the recipe's header comment
(`# Hardware: 4 nodes x 8x H100 80GB ... Accelerate config: configs/accelerate/zero3.yaml`), else 1 node of 8 H100s
under DDP (the Makefile's default accelerate config)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from distill.errors import UsageError
from distill.plan.hardware import Gpu, gpu
from distill.plan.memory import Sharding

ROOT = Path(__file__).resolve().parents[2]
ACCELERATE_DIR = Path("configs") / "accelerate"
_NODES = re.compile(r"(\d+)\s+nodes?\b", re.I)
_PER_NODE = re.compile(r"(\d+)\s*x\s*(H100|H200|B200|A100|L40S)\b", re.I)
_ACCELERATE = re.compile(r"configs/accelerate/[\w.-]+\.ya?ml")


@dataclass
class Cluster:
    gpu: Gpu
    gpus_per_node: int
    nodes: int
    sharding: Sharding
    source: str  # where the GPUs came from

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_node * self.nodes


def header(path: str | Path) -> str:
    """The recipe's leading comment block."""
    lines = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# "))
    return " ".join(lines)


def read_accelerate(name_or_path: str) -> Sharding:
    """A sharding from an accelerate config: a path, or a name under configs/accelerate (ddp, zero2, zero3, fsdp)."""
    candidates = [Path(name_or_path), ACCELERATE_DIR / f"{name_or_path}.yaml", ROOT / name_or_path,
                  ROOT / ACCELERATE_DIR / f"{name_or_path}.yaml"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise UsageError(f"--accelerate {name_or_path}: no such accelerate config (a path, or one of ddp, zero2, zero3, "
                         f"fsdp under {ACCELERATE_DIR})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    kind = str(data.get("distributed_type", "NO")).upper() if isinstance(data, dict) else ""
    shown = str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else str(path)
    if kind == "DEEPSPEED":
        ds = data.get("deepspeed_config") or {}
        stage = int(ds.get("zero_stage", 0))
        if stage not in (2, 3):
            raise UsageError(f"{path}: deepspeed_config.zero_stage {stage}: plan prices ZeRO-2 and ZeRO-3")
        off = lambda key: str(ds.get(key, "none")).lower() not in ("none", "")  # noqa: E731
        return Sharding(f"zero{stage}", off("offload_optimizer_device"), stage == 3 and off("offload_param_device"), shown)
    if kind == "FSDP":
        return Sharding("fsdp", source=shown)
    if kind in ("MULTI_GPU", "NO"):
        return Sharding("ddp", source=shown)
    raise UsageError(f"{path}: distributed_type {kind or '(none)'}: expected MULTI_GPU, DEEPSPEED or FSDP")


def resolve(config_path: str | Path, gpu_name: str | None, gpus_per_node: int | None, nodes: int | None,
            accelerate: str | None) -> Cluster:
    text = header(config_path)
    found_nodes = _NODES.search(text)
    found_gpu = _PER_NODE.search(text)
    found_accelerate = _ACCELERATE.search(text)
    from_header = []
    if gpu_name is None and found_gpu:
        gpu_name = found_gpu.group(2)
        from_header.append("GPU kind")
    if gpus_per_node is None and found_gpu:
        gpus_per_node = int(found_gpu.group(1))
        from_header.append("GPUs per node")
    if nodes is None and found_nodes:
        nodes = int(found_nodes.group(1))
        from_header.append("nodes")
    if accelerate is None and found_accelerate:
        accelerate = found_accelerate.group(0)
        from_header.append("accelerate config")
    for flag, value in (("--gpus-per-node", gpus_per_node), ("--nodes", nodes)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: expected a positive count")
    source = (f"{', '.join(from_header)} from the recipe's header" if from_header else "") or "command line and defaults"
    return Cluster(gpu(gpu_name or "H100"), gpus_per_node or 8, nodes or 1,
                   read_accelerate(accelerate or str(ACCELERATE_DIR / "ddp.yaml")), source)
