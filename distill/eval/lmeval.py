"""The harness: lm-eval draws the samples (tasks from eval/tasks, chat template, API or HF backend).

Only generation runs through lm-eval (`predict_only`): every repeat is kept and scored by distill itself.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from functools import cache

from distill.benchmarks import Benchmark, load_task, task_yaml, with_data_files
from distill.eval.config import SuiteConfig
from distill.errors import DistillError
from distill.hub import load_error, loading
from distill.verify import kinds


@cache  # lm-eval refuses a second registration of the name: a second evaluate() in one process reuses the class
def _seeded_chat_model():
    """lm-eval's chat-API model, but each repeat of a prompt carries its own seed.

    lm-eval sends one fixed seed with every request (STACK.md): a seed-honouring server such as vLLM
    would return the same sample for all repeats. Here the k-th request for the same messages gets
    seed + k, so the set of samples per problem is reproducible whatever order requests go out in.
    """
    from lm_eval.api.registry import register_model
    from lm_eval.models.openai_completions import LocalChatCompletion

    @register_model("distill-chat-completions")
    class SeededChatCompletions(LocalChatCompletion):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._drawn: Counter = Counter()
            self._lock = threading.Lock()

        def _create_payload(self, messages, generate=False, gen_kwargs=None, seed=1234, eos=None, **kwargs):
            key = json.dumps(messages, sort_keys=True)
            with self._lock:
                index = self._drawn[key]
                self._drawn[key] += 1
            return super()._create_payload(messages, generate, gen_kwargs, seed=self._seed + index, eos=eos, **kwargs)

        def parse_generations(self, outputs, **kwargs):
            # lm-eval reads message.content alone: a reasoning parser's separate thinking would be lost, and
            # every reasoning-model sample scored "no closing </think>".
            from distill.engines.openai import merged_content

            outputs = outputs if isinstance(outputs, list) else [outputs]
            for out in outputs:
                for choice in out.get("choices") or []:
                    if isinstance(choice.get("message"), dict):
                        choice["message"] = {**choice["message"], "content": merged_content(choice["message"])}
            return super().parse_generations(outputs, **kwargs)

    return SeededChatCompletions


def build_lm(cfg: SuiteConfig, base_url: str | None, api_key: str | None = None):
    """An lm-eval LM for the model: the chat API at base_url, or transformers in this process."""
    model = cfg.model
    if base_url is not None:
        cls = _seeded_chat_model()
        served = model.name_or_path if model.engine != "vllm" else model.name
        return cls(model=served, base_url=f"{base_url.rstrip('/')}/chat/completions", tokenizer_backend=None,
                   tokenized_requests=False, num_concurrent=model.num_concurrent, max_retries=3,
                   seed=cfg.protocol.seed, max_length=10**7, timeout=model.request_timeout_s,
                   **({"auth_token": api_key} if api_key else {}))
    import torch
    from lm_eval.models.huggingface import HFLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = model.dtype if model.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    torch.manual_seed(cfg.protocol.seed)
    with loading("model.name_or_path", model.name_or_path):
        return HFLM(pretrained=model.name_or_path, dtype=dtype, device=device, batch_size=model.batch_size)


def task_config(cfg: SuiteConfig, bench: Benchmark) -> dict:
    """The task's YAML (includes and !function hooks resolved) with the suite's protocol laid over it."""
    task = load_task(task_yaml(cfg.tasks_dir, bench.task))
    protocol = cfg.protocol
    task["repeats"] = bench.samples
    task["generation_kwargs"] = {
        **task.get("generation_kwargs", {}),
        "until": [],
        "do_sample": protocol.temperature > 0,
        "temperature": protocol.temperature,
        "top_p": protocol.top_p,
        "max_gen_toks": bench.max_tokens or protocol.max_tokens,
    }
    return with_data_files(task, bench.data_files)


@cache
def task_manager(tasks_dir: str):
    """Our tasks only: lm-eval's default manager indexes its thousands of bundled tasks (10-20 s) on every call."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=tasks_dir, include_defaults=False)


def generate(cfg: SuiteConfig, bench: Benchmark, lm) -> list[dict]:
    """Samples for one benchmark: [{"doc": normalised doc, "responses": [k strings]}] in problem order."""
    from lm_eval import simple_evaluate

    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.WARNING)
    task = {}
    try:
        task = task_config(cfg, bench)
        out = simple_evaluate(model=lm, tasks=[task], task_manager=task_manager(cfg.tasks_dir),
                              limit=bench.limit, predict_only=True, log_samples=True, apply_chat_template=True,
                              system_instruction=cfg.protocol.system_prompt, random_seed=cfg.protocol.seed,
                              numpy_random_seed=cfg.protocol.seed, torch_random_seed=cfg.protocol.seed,
                              confirm_run_unsafe_code=cfg.unsafe_code)
    except DistillError:
        raise
    except Exception as exc:  # a dataset that does not load, a task that does not build: name it
        error = load_error(f"benchmark {bench.name} (task {bench.task}): dataset", str(task.get("dataset_path", "")),
                           exc, "dataset")
        if error is not None:
            raise error from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DistillError(f"benchmark {bench.name} (task {bench.task}): {reason}") from exc
    samples = next(iter(out["samples"].values()))
    if not cfg.unsafe_code and any(isinstance(s["doc"], dict) and kinds.runs_code(s["doc"]) for s in samples):
        raise DistillError(f"benchmark {bench.name} (task {bench.task}): its answers are code, which runs only with "
                           "unsafe_code: true in the suite; nothing was scored")
    rows = []
    for sample in sorted(samples, key=lambda s: int(s["doc_id"])):
        responses = sample["filtered_resps"][0] if sample["filtered_resps"] else []
        rows.append({"doc": sample["doc"], "responses": [r if isinstance(r, str) else "" for r in responses]})
    return rows
