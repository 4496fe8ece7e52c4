import pytest
import yaml

from support import ROOT, run_cli, student_yaml
from distill.config import load_config, parse_overrides
from distill.errors import UsageError
from distill.students.config import StudentConfig


def test_overrides_are_dotted_and_typed():
    assert parse_overrides(["training.learning_rate=1e-5", "lora.enabled=true", "name=x"]) == {
        "training": {"learning_rate": 1e-5}, "lora": {"enabled": True}, "name": "x"}
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        parse_overrides(["training.learning_rate"])


def test_override_wins_over_file(tmp_path, toy_world):
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run")
    cfg = load_config(path, StudentConfig, ["training.max_steps=3", "lora.enabled=true"])
    assert cfg.training.max_steps == 3 and cfg.lora.enabled


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda r: r["training"].update(lerning_rate=1e-4), "training.lerning_rate: unknown key (did you mean 'learning_rate'?)"),
        (lambda r: r["training"].update(max_steps="many"), "training.max_steps: Input should be a valid integer"),
        (lambda r: r["model"].update(name_or_path="./no/such/model"), "model.name_or_path: path does not exist: ./no/such/model"),
        (lambda r: r["training"].pop("max_length"), "training.max_length: required key is missing"),
        (lambda r: r["lora"].update(quantization="4bit") if "lora" in r else r.update(lora={"quantization": "4bit"}),
         "lora.quantization needs lora.enabled: true"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path, toy_world, edit, expected):
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run")
    recipe = yaml.safe_load(path.read_text())
    edit(recipe)
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(UsageError) as err:
        load_config(path, StudentConfig)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmodel: [unclosed\n")
    with pytest.raises(UsageError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(path, StudentConfig)


def test_cli_misspelt_key_prints_one_line_and_exits_2(tmp_path, toy_world):
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", lerning_rate=1e-4)
    result = run_cli("train", path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: {path}: training.lerning_rate: unknown key (did you mean 'learning_rate'?)"], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_missing_config_and_bad_override_exit_2(tmp_path):
    result = run_cli("train", tmp_path / "nope.yaml")
    assert result.returncode == 2 and "no such config file" in result.stderr
    result = run_cli("train", ROOT / "students" / "toy-student.yaml", "training.max_steps")
    assert result.returncode == 2 and "expected KEY=VALUE" in result.stderr


def test_serve_env_numbers_from_yaml_or_overrides_become_strings():
    """YAML and overrides type `2` as a number; a process environment holds strings only."""
    from distill.engines.serve import ServeConfig

    cfg = load_config(ROOT / "teacher" / "toy-cpu.yaml", ServeConfig, ["env.OMP_NUM_THREADS=1", "env.VLLM_FLAG=true"])
    assert cfg.env["OMP_NUM_THREADS"] == "1" and cfg.env["VLLM_FLAG"] == "1"
    assert cfg.env["VLLM_CPU_KVCACHE_SPACE"] == "1"  # written as a string in the file: unchanged


@pytest.mark.parametrize("overrides, expected", [
    (["method=on-policy"], "method on-policy: teacher.model is required"),
    (["method=kd", "teacher.model=toy/teacher", "teacher.base_urls=[http://127.0.0.1:1/v1]"],
     "method kd: learns from the logprobs stored with the traces"),
    (["method=kd", "teacher.model=toy/teacher", "training.packing=true"], "method kd: training.packing must be false"),
    (["method=kd", "teacher.model=toy/teacher", "training.use_liger_kernel=true"],
     "method kd: training.use_liger_kernel must be false"),
    (["method=distil"], "method: Input should be 'sft', 'kd' or 'on-policy'"),
    (["method=on-policy", "teacher.model=toy/teacher", "distillation.beta=1.5"],
     "distillation.beta: Input should be less than or equal to 1"),
])
def test_distillation_settings_are_checked_at_load(tmp_path, toy_world, overrides, expected):
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run")
    with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_config(path, StudentConfig, overrides)


def test_beta_defaults_by_method(tmp_path, toy_world):
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run")
    assert load_config(path, StudentConfig, ["method=kd", "teacher.model=toy/teacher"]).distillation.beta == 0.0
    assert load_config(path, StudentConfig, ["method=on-policy", "teacher.model=toy/teacher"]).distillation.beta == 1.0


@pytest.mark.parametrize("stage", ["generate", "curate", "train", "eval", "report", "serve", "demo", "mix", "prompts", "plan"])
def test_a_config_that_is_not_utf8_is_one_line_naming_file_and_line_for_every_stage(tmp_path, stage):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: x\n# caf\u00e9\n".encode("latin-1"))
    result = run_cli(stage, path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {path}:2: not UTF-8 text (byte 0xe9 at column 6); save the config as UTF-8"]


@pytest.mark.parametrize("override, module", [
    ("training.use_liger_kernel=true", "liger_kernel"),
    ("model.attn_implementation=flash_attention_2", "flash_attn"),
])
def test_a_setting_whose_package_is_missing_is_one_line_before_training(tmp_path, toy_world, override, module):
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run")
    result = run_cli("train", path, override)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    key = override.split("=")[0]
    assert line.startswith(f"error: {key}: ") and f"needs {module}, which is not installed: pip install" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override", ["curate.sandbox.timeout_s=0", "curate.sandbox.memory_mb=-1", "curate.workers=0"])
def test_sandbox_limits_and_workers_below_one_are_refused(tmp_path, override):
    from distill.curate.config import CurateConfig

    prompts = tmp_path / "prompts.jsonl"  # the recipe's own prompts exist only after the demo built its world
    prompts.write_text('{"prompt": "1+1?", "answer": "2"}\n')
    with pytest.raises(UsageError, match=rf"{override.split('=')[0]}: Input should be greater than"):
        load_config(ROOT / "teacher" / "runs" / "toy.yaml", CurateConfig, [override, f"prompts.source={prompts}"])


def test_a_directory_given_as_config_or_output_is_named_as_such(tmp_path):
    result = run_cli("curate", tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path}: is a directory, not a config file"
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"code": "print(1)", "tests": [{"input": "", "output": "1"}]}\n')
    (tmp_path / "out").mkdir()
    for command in (["verify-code", lines, "--out", tmp_path / "out"], ["score", lines, "--out", tmp_path / "out"]):
        result = run_cli(*command)
        assert result.returncode == 2 and result.stderr.strip() == f"error: --out {tmp_path / 'out'} is a directory; name a file"
    result = run_cli("score", tmp_path / "out")
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'out'}: is a directory, not a file"


def test_ports_outside_the_tcp_range_are_refused():
    from distill.engines.serve import ServeConfig

    with pytest.raises(UsageError, match="port: Input should be greater than or equal to 1"):
        load_config(ROOT / "teacher" / "toy-cpu.yaml", ServeConfig, ["port=-1"])


@pytest.mark.parametrize("stage, config, override, expected", [
    ("eval", "eval/suites/toy.yaml", "model.path=toy/teacher", "model.path: renamed to name_or_path"),
    ("eval", "eval/suites/toy.yaml", "output_dir=runs/x", "output_dir: renamed to runs_dir"),
    ("demo", "configs/demo.yaml", "out=runs/x", "out: renamed to runs_dir"),
    ("report", "eval/report-toy.yaml", "curation_dir=runs/teacher/toy", "curation_dir: renamed to curations"),
])
def test_old_key_names_say_their_new_names(stage, config, override, expected):
    result = run_cli(stage, ROOT / config, override)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {ROOT / config}: {expected}")
