"""The plan of a generation run: output tokens (prompts x k x mean trace length), teacher GPU-hours at a measured or
stated throughput, and cost."""

from __future__ import annotations

from pathlib import Path

from distill.config import looks_like_local_path
from distill.plan.render import Plan, amount, count

# Stated, not measured here: GPUStack's performance lab, DeepSeek-R1-0528 on one 8xH200 node with vLLM 0.11.0 untuned,
# "Short Prompt" case: 5,931 tokens/s in total (short prompts, so nearly all output).
# https://docs.gpustack.ai/latest/performance-lab/deepseek-r1/h200
DEFAULT_NODE_TOKENS_PER_S = 5931.0
DEFAULT_NODE_GPUS = 8
DEFAULT_SOURCE = ("assumed: DeepSeek-R1 on one 8xH200 node, vLLM 0.11 untuned, 5,931 tokens/s (GPUStack performance lab, "
                  "docs.gpustack.ai/latest/performance-lab/deepseek-r1/h200); --tokens-per-s")


def _prompt_count(cfg, override: int | None) -> tuple[int | None, str]:
    if override is not None:
        return override, "--prompts on the command line"
    source = cfg.prompts.source
    if looks_like_local_path(source) and not Path(source).expanduser().exists():
        return None, f"unknown: {source} does not exist yet; pass --prompts N"
    if looks_like_local_path(source):
        from distill.teacher.prompts import load_prompts

        return len(load_prompts(cfg.prompts)), f"read from {source}" + (
            f" (prompts.limit {cfg.prompts.limit})" if cfg.prompts.limit else "")
    if cfg.prompts.limit:
        return cfg.prompts.limit, f"prompts.limit (at most; the Hub dataset {source} is not read)"
    return None, f"unknown: {source} is a Hub dataset, which plan does not download; pass --prompts N"


def plan_generation(cfg, config_path: str, opts) -> Plan:
    from distill.teacher.summary import GenerateSummary

    plan = Plan(f"distill plan {config_path}: generation run {cfg.name} ({cfg.engine.model})")
    summary_path = Path(cfg.run_dir) / GenerateSummary.FILE
    summary = GenerateSummary.read(cfg.run_dir) if summary_path.is_file() else None
    prompts, prompts_how = _prompt_count(cfg, opts.prompts)
    k = cfg.sampling.n
    if opts.trace_tokens is not None:
        mean, mean_how = float(opts.trace_tokens), "--trace-tokens on the command line"
    elif summary and summary.ok:
        mean, mean_how = summary.completion_tokens / summary.ok, f"measured: completion tokens / ok samples of {summary_path}"
    else:
        mean = cfg.sampling.max_tokens / 2
        mean_how = (f"assumed: half of sampling.max_tokens {cfg.sampling.max_tokens} (no {summary_path} yet); "
                    "--trace-tokens")
    gpus = cfg.cost.gpus
    if opts.tokens_per_s is not None:
        per_gpu, speed_how = opts.tokens_per_s / DEFAULT_NODE_GPUS, f"--tokens-per-s (per {DEFAULT_NODE_GPUS}-GPU node)"
        speed = f"{opts.tokens_per_s:,.0f} output tokens/s per {DEFAULT_NODE_GPUS}-GPU node"
    elif summary and summary.tokens_per_second:
        per_gpu = summary.tokens_per_second / gpus
        speed = f"{summary.tokens_per_second:,.0f} output tokens/s on the run's {gpus} GPUs (cost.gpus)"
        speed_how = f"measured by the earlier run: {summary_path}"
    else:
        per_gpu = DEFAULT_NODE_TOKENS_PER_S / DEFAULT_NODE_GPUS
        speed, speed_how = f"{DEFAULT_NODE_TOKENS_PER_S:,.0f} output tokens/s per {DEFAULT_NODE_GPUS}-GPU node", DEFAULT_SOURCE
    plan.fact("prompts", f"{prompts:,}" if prompts else "unknown", prompts_how)
    plan.fact("samples per prompt (k)", str(k), "sampling.n")
    plan.fact("mean trace", f"{mean:,.0f} tokens", mean_how)
    plan.fact("throughput", speed, speed_how)
    output = prompts * k * mean if prompts else None
    gpu_hours = output / per_gpu / 3600 if output else None
    c = cfg.cost
    cost = cost_how = None
    if output and (c.usd_per_million_output is not None or c.usd_per_million_input is not None):
        prompt_mean = summary.prompt_tokens / summary.traces * k if summary and summary.traces else None
        inputs = prompts * prompt_mean if prompt_mean else 0
        cost = (output * (c.usd_per_million_output or 0) + inputs * (c.usd_per_million_input or 0)) / 1e6
        cost_how = "cost.usd_per_million_output / _input (hosted API)" + ("" if prompt_mean else "; input tokens unknown, not counted")
    elif gpu_hours:
        usd = opts.gpu_hour_usd if opts.gpu_hour_usd is not None else c.gpu_hour_usd
        if usd is not None:
            cost = gpu_hours * usd
            cost_how = f"${usd:.2f} per GPU-hour ({'--gpu-hour-usd' if opts.gpu_hour_usd is not None else 'cost.gpu_hour_usd'})"
        else:
            cost_how = "no cost.gpu_hour_usd in the run; --gpu-hour-usd"
    plan.fact("output tokens", f"{output:,.0f}" if output else "unknown", "prompts x k x mean trace")
    if gpu_hours:
        plan.fact("teacher GPU-hours", f"{amount(gpu_hours)} ({amount(gpu_hours / gpus)} h on {gpus} GPUs, cost.gpus)",
                  "output tokens / throughput; prefill not counted (short prompts, long traces)")
    else:
        plan.fact("teacher GPU-hours", "unknown", "needs the prompt count")
    plan.fact("cost", amount(cost, "$") if cost is not None else "unknown", cost_how or "")
    plan.verdict = (f"generation: {count(output)} output tokens, {amount(gpu_hours)} GPU-hours" if gpu_hours
                    else "generation: cost unknown until the prompt count is known (--prompts N)")
    if cost is not None:
        plan.verdict += f", {amount(cost, '$')}"
    plan.notes.append("a run from scratch: an interrupted run resumes and asks only for the missing samples")
    plan.data = {"kind": "generation", "config": str(config_path), "name": cfg.name, "prompts": prompts, "k": k,
                 "mean_trace_tokens": mean, "mean_trace_source": mean_how, "output_tokens": output,
                 "tokens_per_s_per_gpu": per_gpu, "throughput_source": speed_how, "gpus": gpus, "gpu_hours": gpu_hours,
                 "cost_usd": cost, "verdict": plan.verdict}
    return plan
