"""Every shipped recipe and infrastructure config is valid as written."""

import subprocess

import pytest
import yaml

from support import ROOT
from distill.config import load_config
from distill.students.config import StudentConfig
from distill.students import chat
from distill.students.methods.sft import sft_args

RECIPES = sorted((ROOT / "students").glob("*.yaml"))
R1_STUDENTS = {
    "r1-distill-qwen-1.5b": "Qwen/Qwen2.5-Math-1.5B", "r1-distill-qwen-7b": "Qwen/Qwen2.5-Math-7B",
    "r1-distill-qwen-14b": "Qwen/Qwen2.5-14B", "r1-distill-qwen-32b": "Qwen/Qwen2.5-32B",
    "r1-distill-llama-8b": "meta-llama/Llama-3.1-8B", "r1-distill-llama-70b": "meta-llama/Llama-3.3-70B-Instruct",
}


def test_all_six_r1_distill_students_are_there():
    names = {p.stem for p in RECIPES}
    assert set(R1_STUDENTS) <= names and {"toy-teacher", "toy-student"} <= names


def data_overrides(path, toy_world) -> list[str]:
    """Data is made at run time: point a recipe's source, or each of its mixture's sources, at the toy world."""
    sources = yaml.safe_load(path.read_text())["data"].get("sources")
    if sources:
        return [f"data.sources.{i}.source={toy_world / 'sft'}" for i in range(len(sources))]
    return [f"data.source={toy_world / 'sft'}"]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates_and_builds_sft_settings(path, toy_world):
    # Data and toy bases are made at run time; point them at the test's toy world.
    overrides = data_overrides(path, toy_world)
    if path.stem.startswith("toy-"):
        overrides.append(f"model.name_or_path={toy_world / 'bases' / 'qwen2-h64-l2'}")
    cfg = load_config(path, StudentConfig, overrides)
    assert cfg.training.max_length >= 256
    if path.stem in R1_STUDENTS:
        assert cfg.model.name_or_path == R1_STUDENTS[path.stem]
        assert cfg.training.bf16 and cfg.training.gradient_checkpointing and cfg.training.max_length >= 16384
        # DeepSeek's own format over the renamed base (the recipe headers say why; tests/students/test_chat_families.py)
        family = "r1-distill-llama" if "llama" in path.stem else "r1-distill-qwen"
        setup = chat.resolve(cfg.model.family, None, cfg.model.chat_template, cfg.model.eos_token, cfg.model.pad_token)
        assert setup.family == family and setup.eos_token == "<｜end▁of▁sentence｜>"
        assert setup.chat_template_path.endswith("deepseek_r1_distill.jinja")
        args = sft_args(cfg, setup, on_gpu=False)  # no GPU here: the CPU fallback (float32) is what builds
        assert args.max_length == cfg.training.max_length and args.assistant_only_loss and not args.bf16
        assert args.eos_token == setup.eos_token and args.chat_template_path.endswith(".jinja")


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "accelerate").glob("*.yaml")), ids=lambda p: p.stem)
def test_accelerate_configs_load(path):
    from accelerate.commands.config.config_args import load_config_from_file

    assert yaml.safe_load(path.read_text())["num_machines"] >= 1
    load_config_from_file(str(path))


@pytest.mark.parametrize("script", ["train.sbatch", "serve-teacher-ray.sbatch"])
def test_slurm_templates_are_valid_bash(script):
    subprocess.run(["bash", "-n", str(ROOT / "configs" / "slurm" / script)], check=True)


@pytest.mark.parametrize("student, teacher", [("qwen-1.5b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"),
                                              ("qwen-7b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"),
                                              ("qwen-14b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"),
                                              ("llama-8b", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B")])
def test_two_stage_recipes_distill_on_policy_from_a_served_same_tokenizer_teacher(student, teacher, toy_world):
    from distill.engines.serve import ServeConfig

    cfg = load_config(ROOT / "students" / f"r1-distill-{student}-on-policy.yaml", StudentConfig,
                      [f"data.source={toy_world / 'sft'}"])
    assert cfg.method == "on-policy" and cfg.teacher.tokenizer == teacher
    serve = load_config(ROOT / cfg.teacher.serve, ServeConfig)
    assert serve.model == teacher and serve.args["max-logprobs"] >= cfg.teacher.top_k
    # The served teacher listens beyond loopback behind a key: the student sends the same variable.
    from distill.students.logit_teacher import served

    assert serve.api_key_env and served(cfg)[0].api_key_env == serve.api_key_env
    # The starting point is the stage-1 SFT model of the same family (the one-stage recipe's base, distilled).
    one_stage_path = ROOT / "students" / f"r1-distill-{student}.yaml"
    one_stage = load_config(one_stage_path, StudentConfig, data_overrides(one_stage_path, toy_world))
    assert cfg.model.family == one_stage.model.family


@pytest.mark.parametrize("run", ["math", "code"])
def test_r1_generation_runs_send_the_key_their_server_requires(run):
    from distill.curate.config import CurateConfig
    from distill.engines.serve import ServeConfig

    serve = load_config(ROOT / "teacher" / "deepseek-r1-8xh200.yaml", ServeConfig)
    cfg = load_config(ROOT / "teacher" / "runs" / f"{run}.yaml", CurateConfig)
    assert serve.api_key_env and cfg.engine.api_key_env == serve.api_key_env
