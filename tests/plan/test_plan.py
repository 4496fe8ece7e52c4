"""distill plan: parameters, memory per GPU, tokens, GPU-hours and cost of a run before it starts."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from support import ROOT, run_cli, student_yaml
from distill.errors import UsageError
from distill.plan import PlanOptions, make_plan
from distill.plan.hardware import GPUS, pick_mfu
from distill.plan.memory import (ModelShape, Sharding, activations, estimate_zero2_model_states_mem_needs,
                                 estimate_zero3_model_states_mem_needs, model_shape, model_states)

GB = 2**30  # DeepSpeed prints GB as bytes / 2**30


@pytest.mark.parametrize("name, billions", [("Qwen/Qwen2.5-Math-1.5B", 1.54), ("Qwen/Qwen2.5-Math-7B", 7.62),
                                            ("meta-llama/Llama-3.3-70B-Instruct", 70.55)])
def test_parameter_counts_of_the_recipe_shapes(name, billions):
    assert round(model_shape(name).params / 1e9, 2) == billions


def test_flops_count_an_untied_input_embedding_as_a_lookup_like_the_bench():
    from distill.plan.student import flops_per_token

    untied, tied = model_shape("Qwen/Qwen2.5-Math-7B"), model_shape("Qwen/Qwen2.5-Math-1.5B")
    assert untied.matmul_params == untied.params - 152064 * 3584 and tied.matmul_params == tied.params
    assert flops_per_token(untied, 1000) == 6 * untied.matmul_params + 6 * 28 * 3584 * 1000


def test_lora_counts_only_the_adapter_as_trainable():
    class Lora:
        enabled, r, alpha, target_modules, quantization = True, 16, 32, "all-linear", "none"

    shape = model_shape("Qwen/Qwen2.5-Math-1.5B", lora=Lora())
    # r x (in + out) for q, k, v, o, gate, up, down of 28 layers (h 1536, kv 256, I 8960).
    per_layer = 16 * ((1536 + 1536) + 2 * (1536 + 256) + (1536 + 1536) + 2 * (1536 + 8960) + (8960 + 1536))
    assert shape.trainable == 28 * per_layer
    assert shape.params == model_shape("Qwen/Qwen2.5-Math-1.5B").params


def test_zero_estimators_give_deepspeeds_documented_example():
    # deepspeed docs/code-docs/source/memory.rst: total_params=2851e6, largest_layer_params=32e6, 1 node x 8 GPUs.
    zero3 = [((True, True, True), 71.69, 0.12), ((True, True, False), 127.45, 0.12), ((True, False, True), 63.72, 0.78),
             ((True, False, False), 127.45, 0.78), ((False, False, True), 1.43, 6.09), ((False, False, False), 127.45, 6.09)]
    for (offload, offload_params, zero_init), cpu_gb, gpu_gb in zero3:
        cpu, gpu = estimate_zero3_model_states_mem_needs(2851e6, 32e6, 8, 1, offload, offload_params, zero_init)
        assert (round(cpu / GB, 2), round(gpu / GB, 2)) == (cpu_gb, gpu_gb)
    assert [round(x / GB, 2) for x in estimate_zero2_model_states_mem_needs(2851e6, 8, 1, cpu_offload=True)] == [127.45, 5.31]
    assert [round(x / GB, 2) for x in estimate_zero2_model_states_mem_needs(2851e6, 8, 1, cpu_offload=False)] == [127.45, 15.93]


def _shape(params: int, largest: int) -> ModelShape:
    return ModelShape(name="x", params=params, trainable=params, frozen_bytes=0, weight_bytes=2 * params, dtype_bytes=2,
                      layers=2, hidden=64, kv_dim=64, intermediate=128, vocab=100, largest_module_params=largest,
                      layer_params=1000, root_params=params - 2000, matmul_params=params)


def test_model_state_split_sums_to_deepspeeds_estimate():
    shape = _shape(2_851_000_000, 32_000_000)
    for gpus in (8, 32):
        zero3 = sum(model_states(shape, Sharding("zero3"), gpus).values())
        assert abs(zero3 - estimate_zero3_model_states_mem_needs(shape.params, 32e6, gpus, 1, False, False)[1]) < 2
        zero2 = sum(model_states(shape, Sharding("zero2"), gpus).values())
        assert abs(zero2 - estimate_zero2_model_states_mem_needs(shape.params, gpus, 1, cpu_offload=False)[1]) < 2
        offloaded = sum(model_states(shape, Sharding("zero3", offload_optimizer=True), gpus).values())
        assert abs(offloaded - estimate_zero3_model_states_mem_needs(shape.params, 32e6, gpus, 1, True, False)[1]) < 2


def test_checkpointing_and_liger_lower_activation_memory():
    shape = model_shape("Qwen/Qwen2.5-Math-1.5B")
    tokens = 32768
    with_ckpt = sum(activations(shape, tokens, checkpointing=True, liger=False).values())
    without = sum(activations(shape, tokens, checkpointing=False, liger=False).values())
    assert with_ckpt < without
    assert activations(shape, tokens, False, liger=True)["layers"] < activations(shape, tokens, False, liger=False)["layers"]
    materialised = activations(shape, tokens, True, liger=False, logits=True)["loss"]
    assert materialised == 10 * 151936 * tokens  # the logits: bf16, their fp32 copy, the log-softmax
    assert activations(shape, tokens, True, liger=False)["loss"] < materialised / 10  # TRL's fused head: tiles


def test_more_gpus_under_zero3_lower_memory_per_gpu():
    shape = model_shape("Qwen/Qwen2.5-Math-7B")
    per_gpu = [sum(model_states(shape, Sharding("zero3"), n).values()) for n in (8, 16, 32)]
    assert per_gpu[0] > per_gpu[1] > per_gpu[2]
    ddp = [sum(model_states(shape, Sharding("ddp"), n).values()) for n in (8, 32)]
    assert ddp[0] == ddp[1]  # nothing sharded


def test_a_recipe_that_does_not_fit_says_so_and_what_would():
    recipe = make_plan(str(ROOT / "students/r1-distill-llama-70b.yaml"), [], PlanOptions())
    assert (recipe.data["nodes"], recipe.data["gpus_per_node"], recipe.data["sharding"]) == (4, 8, "zero3")  # its header
    plan = make_plan(str(ROOT / "students/r1-distill-llama-70b.yaml"), [], PlanOptions(nodes=1))
    assert plan.data["sharding"] == "zero3" and plan.data["nodes"] == 1 and plan.data["gpu"] == "H100"
    assert plan.data["fits"] is False
    assert plan.verdict.startswith("does NOT fit") and "fits with" in plan.verdict
    fitting = make_plan(str(ROOT / "students/r1-distill-llama-70b.yaml"), [], PlanOptions(gpu="h200", nodes=4))
    assert fitting.data["fits"] is True and fitting.verdict.startswith("fits")


def test_mfu_row_same_gpu_first_else_nearest_row_carried_over():
    rows = [{"gpu": "H200", "shape": "a", "mode": "packed+liger", "mfu": 0.14, "gradient_checkpointing": True},
            {"gpu": "H200", "shape": "a", "mode": "padded", "mfu": 0.07, "gradient_checkpointing": True},
            {"gpu": "A100-80GB", "shape": "a", "mode": "padded", "mfu": 0.30, "gradient_checkpointing": True}]
    size = {"a": 1_500_000_000}.get
    same = pick_mfu(rows, GPUS["H200"], "padded", True, 1_500_000_000, size)
    assert same.mfu == 0.07 and "no H200 row" not in same.note
    other = pick_mfu(rows, GPUS["H100"], "packed+liger", True, 1_500_000_000, size)
    assert other.mfu == 0.14 and "no H100 row" in other.note
    assert pick_mfu([], GPUS["H100"], "padded", True, 1, size) is None
    assert pick_mfu([{"gpu": "cpu", "shape": "a", "mode": "padded", "mfu": None}], GPUS["H100"], "padded", True, 1, size) is None


def _toy_student(toy_world, tmp_path, source: Path, **training) -> Path:
    recipe = student_yaml(tmp_path / "student.yaml", toy_world, tmp_path / "run", **training)
    data = yaml.safe_load(recipe.read_text())
    data["data"] = {"source": str(source)}
    recipe.write_text(yaml.safe_dump(data))
    return recipe


def test_toy_student_plan_reads_the_curation_summary(toy_world, tmp_path):
    from transformers import AutoModelForCausalLM

    from distill.curate.summary import CurationSummary

    curated = tmp_path / "curated"
    curated.mkdir()
    shutil.copy(toy_world / "sft" / "train.parquet", curated / "train-00000.parquet")  # messages only: no token counts
    CurationSummary(traces=100, accepted=80, rejected=20, acceptance_rate=0.8, rejected_by_reason={}, per_source={},
                    tokens_kept=123_456).write(curated)
    recipe = _toy_student(toy_world, tmp_path, curated, max_steps=-1, num_train_epochs=2)
    plan = make_plan(str(recipe), [], PlanOptions(gpu="h100", gpus_per_node=1, mfu=0.25))
    assert plan.data["tokens_per_epoch"] == 123_456 and "curation.json" in plan.data["tokens_source"]
    assert plan.data["tokens_trained"] == 2 * 123_456
    real = AutoModelForCausalLM.from_pretrained(toy_world / "bases" / "qwen2-h64-l2")
    assert plan.data["params"] == sum(p.numel() for p in real.parameters())
    hours = 2 * 123_456 * plan.data["flops_per_token"] / (0.25 * GPUS["H100"].bf16_tflops * 1e12) / 3600
    assert plan.data["gpu_hours"] == pytest.approx(hours)
    assert plan.data["cost_usd"] == pytest.approx(hours * GPUS["H100"].usd_per_hour)
    assert plan.data["sharding"] == "ddp" and plan.data["fits"] is True


def test_toy_student_plan_counts_the_datas_own_tokens(toy_world, tmp_path):
    data = tmp_path / "curated"
    data.mkdir()
    messages = [[{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]] * 3
    pq.write_table(pa.table({"messages": messages, "prompt_tokens": [10, 20, 30], "completion_tokens": [100, 200, None]}),
                   data / "train-00000.parquet")
    plan = make_plan(str(_toy_student(toy_world, tmp_path, data, max_steps=-1)), [], PlanOptions())
    assert plan.data["tokens_per_epoch"] == 360


def test_student_plan_of_data_not_there_yet_says_what_to_run(toy_world, tmp_path):
    recipe = _toy_student(toy_world, tmp_path, tmp_path / "later" / "curated", max_steps=-1)
    plan = make_plan(str(recipe), [], PlanOptions())
    assert plan.data["tokens_per_epoch"] is None and "distill curate" in plan.data["tokens_source"]
    assert plan.data["gpu_hours"] is None and plan.data["gpu_hours_per_billion_tokens"] > 0


def _generation_run(tmp_path, prompts: int = 10) -> Path:
    source = tmp_path / "prompts.jsonl"
    source.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                              for i in range(prompts)))
    run = {"name": "tiny", "run_dir": str(tmp_path / "run"), "prompts": {"source": str(source)},
           "sampling": {"n": 4, "max_tokens": 1000}, "cost": {"gpu_hour_usd": 2.0, "gpus": 8}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    return path


def test_generation_plan_arithmetic(tmp_path):
    path = _generation_run(tmp_path)
    plan = make_plan(str(path), [], PlanOptions(trace_tokens=500, tokens_per_s=8000))
    assert plan.data["prompts"] == 10 and plan.data["k"] == 4
    assert plan.data["output_tokens"] == 10 * 4 * 500
    gpu_hours = 20_000 / (8000 / 8) / 3600
    assert plan.data["gpu_hours"] == pytest.approx(gpu_hours)
    assert plan.data["cost_usd"] == pytest.approx(gpu_hours * 2.0)
    assert make_plan(str(path), ["prompts.limit=3"], PlanOptions(trace_tokens=500)).data["prompts"] == 3
    later = make_plan(str(path), [f"prompts.source={tmp_path / 'later.jsonl'}"], PlanOptions())
    assert later.data["prompts"] is None and "--prompts" in later.verdict


def test_generation_plan_uses_an_earlier_runs_measured_summary(tmp_path):
    from distill.teacher.summary import GenerateSummary

    path = _generation_run(tmp_path)
    GenerateSummary(traces=40, ok=40, failed=0, prompt_tokens=1000, completion_tokens=40_000, wall_seconds=10.0,
                    tokens_per_second=4000.0).write(tmp_path / "run")
    plan = make_plan(str(path), [], PlanOptions())
    assert plan.data["mean_trace_tokens"] == 1000 and "measured" in plan.data["mean_trace_source"]
    assert plan.data["gpu_hours"] == pytest.approx(10 * 4 * 1000 / (4000 / 8) / 3600)


def test_generation_plan_of_a_hub_source_needs_the_prompt_count():
    plan = make_plan(str(ROOT / "teacher/runs/math.yaml"), [], PlanOptions())
    assert plan.data["prompts"] is None and "--prompts" in plan.verdict
    counted = make_plan(str(ROOT / "teacher/runs/math.yaml"), [], PlanOptions(prompts=40_000))
    assert counted.data["output_tokens"] == 40_000 * 4 * 32768 / 2  # no summary yet: half of max_tokens, stated
    assert "assumed" in counted.data["mean_trace_source"] and "GPUStack" in counted.data["throughput_source"]


@pytest.mark.parametrize("args, expected", [
    (["configs/toy-world.yaml"], "neither a student recipe"),
    (["students/r1-distill-qwen-1.5b.yaml", "--gpu", "v100"], "--gpu v100: unknown GPU kind"),
    (["students/r1-distill-qwen-1.5b.yaml", "--accelerate", "zero9"], "--accelerate zero9: no such accelerate config"),
    (["students/r1-distill-qwen-1.5b.yaml", "--nodes", "0"], "--nodes 0: expected a positive count"),
    (["students/r1-distill-qwen-1.5b.yaml", "training.max_length=oops"], "training.max_length"),
    (["students/r1-distill-qwen-1.5b.yaml", "model.name_or_path=org/unknown"], "org/unknown: no local config.json"),
])
def test_bad_input_is_one_line_exit_2(args, expected):
    result = run_cli("plan", *args, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr


def test_make_plan_refuses_a_bad_option_without_a_traceback():
    with pytest.raises(UsageError, match="--mfu 3"):
        make_plan(str(ROOT / "teacher/runs/math.yaml"), [], PlanOptions(mfu=3))


def test_cli_prints_json(tmp_path):
    result = run_cli("plan", _generation_run(tmp_path), "--trace-tokens", "500", "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output_tokens"] == 20_000


def test_building_a_config_from_the_shapes_table_leaves_the_table_as_it_was():
    """transformers adds rope_theta to a config's rope_scaling dict in place: the table hands out copies."""
    import copy

    from distill import shapes

    before = copy.deepcopy(shapes.SHAPES)
    for name in ("meta-llama/Llama-3.1-8B", "70b", "Qwen/Qwen2.5-Math-7B"):
        shapes.model_config(name)
    assert shapes.SHAPES == before
