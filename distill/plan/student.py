"""The plan of a student run: parameters, memory per GPU, tokens, GPU-hours and cost, and whether it fits."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from distill.plan.cluster import Cluster, read_accelerate, resolve
from distill.plan.hardware import load_rows, pick_mfu, run_mode
from distill.plan.memory import (GIB, ModelShape, Sharding, activations, estimate_zero3_model_states_mem_needs, model_shape,
                                 model_states, parameter_count)
from distill.plan.render import Plan, amount, count, gib
from distill.plan.tokens import count_tokens
from distill.students.methods import training_method

# Kept free of the GPU's memory: CUDA context, NCCL buffers, allocator fragmentation (override: --headroom).
DEFAULT_HEADROOM = 0.10


@dataclass(frozen=True)
class Setting:
    """What decides memory per GPU."""

    sharding: Sharding
    total_gpus: int
    micro_tokens: int  # per_device_train_batch_size x max_length
    checkpointing: bool
    liger: bool
    logits: bool = False  # the trainer materialises the logits (on-policy: not known to avoid them)


def per_gpu(shape: ModelShape, s: Setting) -> dict[str, float]:
    states = model_states(shape, s.sharding, s.total_gpus)
    acts = activations(shape, s.micro_tokens, s.checkpointing, s.liger, logits=s.logits)
    parts = {**states, "activations": acts["layers"], "loss": acts["loss"]}
    return {**parts, "total": sum(parts.values())}


def flops_per_token(shape: ModelShape, mean_doc: float) -> float:
    """As bench/train.py counts MFU: 6N for the matmuls (an untied input embedding is a lookup) + 6 L h s for causal
    attention over documents of s tokens, no recompute; a LoRA run skips the frozen weights' gradients (4N).
    bench/train.py weighs s by tokens (sum s^2 / sum s); the plan knows the mean trace only, which it uses."""
    matmuls = (4 if shape.lora else 6) * shape.matmul_params
    return matmuls + 6 * shape.layers * mean_doc * shape.hidden


def suggestion(cfg, shape: ModelShape, setting: Setting, cluster: Cluster, usable: float) -> str:
    """The first single change that makes the run fit, as a one-line suggestion."""
    t = cfg.training
    tries: list[tuple[str, Any, Setting]] = []
    if not setting.checkpointing:
        tries.append(("training.gradient_checkpointing=true", shape, replace(setting, checkpointing=True)))
    if not setting.liger and training_method(cfg.method).next_token_loss:
        tries.append(("training.use_liger_kernel=true (its RMSNorm and SwiGLU kernels keep less)", shape,
                      replace(setting, liger=True)))
    if setting.sharding.kind in ("ddp", "zero2"):
        tries.append(("--accelerate zero3 (configs/accelerate/zero3.yaml)", shape,
                      replace(setting, sharding=read_accelerate("zero3"))))
    if setting.sharding.kind in ("zero3", "fsdp"):
        for nodes in range(cluster.nodes + 1, 17):
            tries.append((f"--nodes {nodes} ({nodes * cluster.gpus_per_node} GPUs)", shape,
                          replace(setting, total_gpus=nodes * cluster.gpus_per_node)))
    if setting.sharding.kind == "zero3" and not setting.sharding.offload_optimizer:
        host, _ = estimate_zero3_model_states_mem_needs(shape.trainable, shape.largest_module_params, cluster.gpus_per_node,
                                                        setting.total_gpus // cluster.gpus_per_node, True, False)
        tries.append((f"offload_optimizer_device: cpu in the ZeRO-3 config (Adam state in host RAM: about {gib(host)} GiB "
                      "per node, DeepSpeed's estimate)", shape,
                      replace(setting, sharding=replace(setting.sharding, offload_optimizer=True))))
    if not shape.lora:
        lora = cfg.lora.model_copy(update={"enabled": True})
        tries.append(("lora.enabled=true (an adapter: far less optimizer state)",
                      lambda: model_shape(cfg.model.name_or_path, cfg.model.config_overrides, cfg.model.dtype, lora), setting))
    for what, s_shape, s_setting in tries:
        total = per_gpu(s_shape() if callable(s_shape) else s_shape, s_setting)["total"]  # LoRA's shape: built if reached
        if total <= usable:
            return f"fits with {what}: {gib(total)} GiB per GPU"
    length = t.max_length
    while length > 1024:
        length //= 2
        total = per_gpu(shape, replace(setting, micro_tokens=t.per_device_train_batch_size * length))["total"]
        if total <= usable:
            return f"fits with training.max_length={length}: {gib(total)} GiB per GPU"
    return "no single change makes it fit: use more or larger GPUs"


def measured_checks(shape: ModelShape, rows: list[dict]) -> list[str]:
    """This estimate beside the peak memory measured for the same model size (rows of one GPU, no sharding, AdamW on
    the bf16 weights): how far to trust it."""
    checks = []
    for row in rows:
        found = re.fullmatch(r"(\d+) rows of (\d+)", str(row.get("batch", "")))
        if not found or row.get("peak_gib") is None or parameter_count(row["shape"]) != shape.params:
            continue
        setting = Setting(Sharding("ddp"), 1, int(found[1]) * int(found[2]), bool(row.get("gradient_checkpointing", True)),
                          "liger" in row["mode"])
        checks.append(f"{row['gpu']} {row['mode']}, {row['batch']}, checkpointing "
                      f"{'on' if setting.checkpointing else 'off'}: estimated {gib(per_gpu(shape, setting)['total'])} GiB, "
                      f"measured peak {row['peak_gib']} GiB")
    return checks


def plan_student(cfg, config_path: str, opts) -> Plan:
    t = cfg.training
    cluster = resolve(config_path, opts.gpu, opts.gpus_per_node, opts.nodes, opts.accelerate)
    g = cluster.gpu
    usd = opts.gpu_hour_usd if opts.gpu_hour_usd is not None else g.usd_per_hour
    headroom = DEFAULT_HEADROOM if opts.headroom is None else opts.headroom
    shape = model_shape(cfg.model.name_or_path, cfg.model.config_overrides, cfg.model.dtype, cfg.lora)
    setting = Setting(cluster.sharding, cluster.total_gpus, t.per_device_train_batch_size * t.max_length,
                      t.gradient_checkpointing, t.use_liger_kernel,
                      logits=training_method(cfg.method).materialises_logits)
    on = per_gpu(shape, replace(setting, checkpointing=True))
    off = per_gpu(shape, replace(setting, checkpointing=False))
    configured = on if t.gradient_checkpointing else off
    usable = g.memory_gib * GIB * (1 - headroom)
    fits = configured["total"] <= usable

    plan = Plan(f"distill plan {config_path}: student {cfg.name} ({cfg.method})")
    plan.fact("GPUs", f"{cluster.nodes} node{'s' if cluster.nodes > 1 else ''} x {cluster.gpus_per_node} {g.name} = "
              f"{cluster.total_gpus} GPUs; {g.memory_gib:.1f} GiB, {g.bf16_tflops:.0f} TFLOPs bf16 dense each",
              f"{cluster.source}; datasheet figures; --gpu, --gpus-per-node, --nodes")
    plan.fact("sharding", cluster.sharding.label, f"{cluster.sharding.source}; --accelerate NAME|PATH")
    trainable = "all trainable" if not shape.lora else f"{count(shape.trainable)} trainable (LoRA r={cfg.lora.r})"
    plan.fact("parameters", f"{count(shape.params)}, {trainable}",
              f"{cfg.model.name_or_path} built on the meta device; weights {gib(shape.weight_bytes)} GiB in "
              f"{cfg.model.dtype} (accelerate calculate_maximum_sizes)")
    plan.fact("micro-batch", f"{t.per_device_train_batch_size} x {t.max_length} tokens per GPU, "
              f"{'packed' if t.packing else 'padded'}, liger {'on' if t.use_liger_kernel else 'off'}, "
              f"checkpointing {'on' if t.gradient_checkpointing else 'off'}")

    header = ["GiB per GPU", "checkpointing on", "off"]
    labels = [("weights", "weights"), ("gradients", "gradients"), ("optimizer", "optimizer states"),
              ("activations", "activations"), ("loss", "logits / loss"), ("total", "total")]
    rows = [[label, gib(on[key]), gib(off[key])] for key, label in labels]
    rows.append([f"fits {g.name} ({gib(usable)} usable)", "yes" if on["total"] <= usable else "NO",
                 "yes" if off["total"] <= usable else "NO"])
    plan.table, plan.table_title = (header, rows), f"Memory per GPU under {cluster.sharding.label}:"
    plan.notes += [
        "model states: DeepSpeed's ZeRO estimators (zero2: 4P + 16P/N, zero3: 4 x largest layer + 18P/N); DDP keeps "
        "AdamW moments in the load dtype (ddp.yaml: no fp32 master); FSDP2: 16P/N + gathered bf16 units",
        "activations: Korthikanti et al. 2022 per-layer accounting, adapted to GQA, SwiGLU, RMSNorm, flash/SDPA "
        "attention; checkpointing keeps each layer's input and recomputes one layer",
        "logits / loss: " + (f"on-policy counted as materialising the logits: 10 bytes x tokens x {shape.vocab} vocab "
                             "(bf16, fp32 copy, log-softmax)" if setting.logits else
                             "never materialised (TRL's fused LM head projects in tiles; liger's fused loss likewise): "
                             "an fp32 hidden-state gradient and the head's weight gradient"),
        f"headroom: {headroom:.0%} of the GPU kept free (CUDA context, NCCL buffers, fragmentation); --headroom",
    ]
    if training_method(cfg.method).needs_teacher:
        plan.notes.append(f"method {cfg.method}: a local teacher's memory is not counted")
    rows = load_rows()
    checks = measured_checks(shape, rows)
    if checks:
        plan.notes.append("this estimate against measured peaks of the same model size on one GPU (bench/results/"
                          "train_gpu.json): " + "; ".join(checks))

    tokens = count_tokens(cfg, opts.tokens)
    epochs = t.num_train_epochs
    mean_doc = tokens.mean_trace or t.max_length / 2
    trained: float | None
    if t.max_steps > 0:
        per_row = t.max_length if t.packing else mean_doc
        trained = t.max_steps * t.per_device_train_batch_size * t.gradient_accumulation_steps * cluster.total_gpus * per_row
        how = f"training.max_steps {t.max_steps} x global batch x {per_row:.0f} tokens per row"
    else:
        trained = tokens.tokens * epochs if tokens.tokens else None
        how = f"{epochs:g} epochs x tokens per epoch"
    plan.fact("tokens per epoch", f"{tokens.tokens:,}" if tokens.tokens else "unknown", tokens.source)
    plan.fact("tokens trained", f"{trained:,.0f}" if trained else "unknown", how)

    mfu = pick_mfu(rows, g, run_mode(t.packing, t.use_liger_kernel), t.gradient_checkpointing, shape.params,
                   parameter_count) if opts.mfu is None else None
    mfu_value = opts.mfu if opts.mfu is not None else (mfu.mfu if mfu else None)
    mfu_how = "--mfu on the command line" if opts.mfu is not None else (
        mfu.note if mfu else "no measured rows (bench/results/train_gpu.json); pass --mfu")
    plan.fact("MFU", f"{mfu_value:.1%}" if mfu_value else "unknown", mfu_how)
    fpt = flops_per_token(shape, mean_doc)
    doc_how = f"{mean_doc:,.0f} tokens" + ("" if tokens.mean_trace else " assumed: max_length / 2")
    per_billion = 1e9 * fpt / (mfu_value * g.bf16_tflops * 1e12) / 3600 if mfu_value else None
    if per_billion:
        plan.fact("GPU-hours per 1B tokens", f"{amount(per_billion)} ({amount(per_billion * usd, '$')})",
                  f"{fpt / 1e9:.2f} GFLOPs/token: 6N + 6 L s h, mean document {doc_how}; / (MFU x peak)")
    gpu_hours = cost = wall_h = None
    if trained and mfu_value:
        seconds = trained * fpt / (mfu_value * g.bf16_tflops * 1e12 * cluster.total_gpus)
        wall_h, gpu_hours = seconds / 3600, seconds * cluster.total_gpus / 3600
        cost = gpu_hours * usd
        plan.fact("GPU-hours", f"{amount(gpu_hours)} ({amount(wall_h)} h on {cluster.total_gpus} GPUs)", "tokens trained x the above")
        plan.fact("cost", amount(cost, "$"), f"${usd:.2f} per GPU-hour " + (
            "(--gpu-hour-usd)" if opts.gpu_hour_usd is not None else f"(assumed {g.name} on-demand price; --gpu-hour-usd)"))
    else:
        plan.fact("GPU-hours", "unknown", "needs the tokens trained and an MFU")
    if fits:
        plan.verdict = (f"fits: {gib(configured['total'])} of {gib(usable)} GiB usable per {g.name} "
                        f"(checkpointing {'on' if t.gradient_checkpointing else 'off'})")
    else:
        plan.verdict = (f"does NOT fit: {gib(configured['total'])} GiB per GPU > {gib(usable)} GiB usable on {g.name}; "
                        + suggestion(cfg, shape, setting, cluster, usable))
    plan.data = {
        "kind": "student", "config": str(config_path), "name": cfg.name, "method": cfg.method,
        "gpu": g.name, "gpus_per_node": cluster.gpus_per_node, "nodes": cluster.nodes, "sharding": cluster.sharding.kind,
        "offload_optimizer": cluster.sharding.offload_optimizer, "params": shape.params, "trainable": shape.trainable,
        "memory_gib": {"checkpointing": {k: round(v / GIB, 2) for k, v in on.items()},
                       "no_checkpointing": {k: round(v / GIB, 2) for k, v in off.items()}},
        "usable_gib": round(usable / GIB, 2), "fits": fits, "verdict": plan.verdict,
        "tokens_per_epoch": tokens.tokens, "tokens_source": tokens.source, "tokens_trained": trained,
        "mfu": mfu_value, "mfu_source": mfu_how, "flops_per_token": fpt, "gpu_hours": gpu_hours, "wall_hours": wall_h,
        "gpu_hour_usd": usd, "cost_usd": cost, "gpu_hours_per_billion_tokens": per_billion,
    }
    return plan
