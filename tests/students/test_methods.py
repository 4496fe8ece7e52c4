"""The registry of training methods (distill/students/methods/): each method's settings checks, what readers ask of it,
and a method added from outside the package, trained through `distill.students.train.train`."""

import json

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from support import ROOT, student_yaml
from distill.config import load_config
from distill.errors import UsageError
from distill.students import methods
from distill.students.config import StudentConfig
from distill.students.methods import Method, method_names, register, training_method
from distill.students.methods.sft import sft_args
from distill.students.train import fingerprint, train

TEACHER = str(ROOT / "toy" / "teacher")
REQUIRED = ("teacher.model is required (a local teacher, or its tokenizer when the teacher is a server or its logprobs "
            "are stored)")


def recipe(tmp_path) -> str:
    """A student recipe that needs nothing on disk (Hub ids are not looked up at load)."""
    cfg = {"name": "s", "run_dir": str(tmp_path / "run"), "model": {"name_or_path": "Qwen/Qwen2.5-Math-1.5B"},
           "data": {"source": "org/traces"}, "training": {"max_length": 256}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def load_error(path, overrides=()) -> str:
    with pytest.raises(UsageError) as caught:
        load_config(path, StudentConfig, list(overrides))
    return str(caught.value)


def test_the_built_in_methods_are_registered_in_order():
    assert method_names() == ("sft", "kd", "on-policy")
    assert all(training_method(name).name == name for name in method_names())


def test_an_unknown_method_is_refused_in_the_words_of_the_literal_it_was(tmp_path):
    path = recipe(tmp_path)
    assert load_error(path, ["method=distil"]) == f"{path}: method: Input should be 'sft', 'kd' or 'on-policy' (got 'distil')"
    assert load_error(path, ["method=3"]) == f"{path}: method: Input should be 'sft', 'kd' or 'on-policy' (got 3)"
    with pytest.raises(UsageError, match="method 'distil' is not a training method"):
        training_method("distil")


@pytest.mark.parametrize("method, overrides, message", [
    ("kd", [], f"method kd: {REQUIRED}"),
    ("on-policy", [], f"method on-policy: {REQUIRED}"),
    ("kd", [f"teacher.model={TEACHER}", "teacher.base_urls=[http://127.0.0.1:1/v1]"],
     "method kd: learns from the logprobs stored with the traces; teacher.serve / teacher.base_urls are for on-policy"),
    ("kd", [f"teacher.model={TEACHER}", "training.use_liger_kernel=true"],
     "method kd: training.use_liger_kernel must be false (kd computes its own loss from the hidden states, which liger's "
     "fused loss does not return)"),
    ("kd", [f"teacher.model={TEACHER}", "training.packing=true"],
     "method kd: training.packing must be false (the teacher's logprobs are per trace)"),
    ("on-policy", [f"teacher.model={TEACHER}", "training.packing=true"],
     "method on-policy: training.packing must be false (the teacher's logprobs are per trace)"),
    # several wrong settings: the first check of the old validator still speaks
    ("kd", ["training.packing=true", "training.use_liger_kernel=true"], f"method kd: {REQUIRED}"),
    ("kd", [f"teacher.model={TEACHER}", "teacher.base_urls=[http://127.0.0.1:1/v1]", "training.packing=true"],
     "method kd: learns from the logprobs stored with the traces; teacher.serve / teacher.base_urls are for on-policy"),
    ("kd", [f"teacher.model={TEACHER}", "training.use_liger_kernel=true", "training.packing=true"],
     "method kd: training.use_liger_kernel must be false (kd computes its own loss from the hidden states, which liger's "
     "fused loss does not return)"),
])
def test_each_method_checks_its_settings_with_the_errors_of_before(tmp_path, method, overrides, message):
    path = recipe(tmp_path)
    assert load_error(path, [f"method={method}", *overrides]) == f"{path}: (top level): {message}"


@pytest.mark.parametrize("overrides", [
    ["method=sft", "training.packing=true", "training.use_liger_kernel=true"],  # sft needs no teacher, packs, fuses
    ["method=kd", "teacher.tokenizer=deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"],  # stored logprobs: the tokenizer will do
    ["method=on-policy", "teacher.base_urls=[http://127.0.0.1:1/v1]", "teacher.served_model_name=t"],
    ["method=on-policy", f"teacher.model={TEACHER}", "training.use_liger_kernel=true"],
])
def test_settings_each_method_accepts(tmp_path, overrides):
    assert load_config(recipe(tmp_path), StudentConfig, overrides).method == overrides[0].removeprefix("method=")


@pytest.mark.parametrize("overrides, beta", [([], 1.0), (["method=kd", f"teacher.model={TEACHER}"], 0.0),
                                             (["method=on-policy", f"teacher.model={TEACHER}"], 1.0),
                                             (["method=kd", f"teacher.model={TEACHER}", "distillation.beta=0.5"], 0.5)])
def test_distillation_beta_defaults_by_method(tmp_path, overrides, beta):
    assert load_config(recipe(tmp_path), StudentConfig, overrides).distillation.beta == beta


def test_what_readers_ask_matches_the_names_they_compared_before():
    """The plan, the report and the demo compared names; each question now has the answer the names gave."""
    asked = {name: training_method(name) for name in method_names()}
    assert {n for n, m in asked.items() if m.learns_from_teacher_text} == {"sft", "kd"}  # report: generation tokens count
    assert {n for n, m in asked.items() if m.teacher_scores_samples} == {"on-policy"}  # report: tokens scored count
    assert {n for n, m in asked.items() if m.needs_teacher} == {"kd", "on-policy"}  # plan note, demo's teacher
    assert {n for n, m in asked.items() if m.next_token_loss} == {"sft"}  # plan: liger suggested
    assert {n for n, m in asked.items() if m.materialises_logits} == {"on-policy"}  # plan: logits in memory
    assert training_method("kd").data_columns == ("token_ids", "logprob_ids", "logprobs")
    assert training_method("sft").data_columns == training_method("on-policy").data_columns == ()


def test_the_resume_fingerprint_names_the_method_and_teacher_only_where_it_did(tmp_path):
    sft = load_config(recipe(tmp_path), StudentConfig)
    assert set(fingerprint(sft, "digest")) == {"model", "data", "data_content", "training", "lora"}
    kd = load_config(recipe(tmp_path), StudentConfig, ["method=kd", f"teacher.model={TEACHER}", "teacher.top_k=5"])
    shape = fingerprint(kd, "digest")
    assert shape["method"] == "kd" and shape["distillation"]["beta"] == 0.0
    assert shape["teacher"] == {"model": TEACHER, "tokenizer": None, "served_model_name": None, "top_k": 5}


def test_kd_builds_sft_settings_for_pretokenized_rows(tmp_path):
    from distill.students import chat

    cfg = load_config(recipe(tmp_path), StudentConfig, ["method=kd", f"teacher.model={TEACHER}"])
    setup = chat.resolve(cfg.model.family, "qwen2", cfg.model.chat_template, cfg.model.eos_token, cfg.model.pad_token)
    args = training_method("kd").training_arguments(cfg, setup, on_gpu=False)
    plain = sft_args(cfg, setup, on_gpu=False)
    assert plain.assistant_only_loss and plain.remove_unused_columns
    assert not args.assistant_only_loss and not args.remove_unused_columns
    assert args.dataset_kwargs == {"skip_prepare_dataset": True} and args.max_length == plain.max_length == 256


class FrozenEmbeddingsSFT(Method):
    """A method as a user would add one, in one module: SFT with the token embeddings kept as they are."""

    name = "sft-frozen-embeddings"

    def check(self, cfg) -> None:
        if cfg.lora.enabled:
            raise ValueError(f"method {self.name}: lora.enabled must be false (an adapter leaves the embeddings alone)")

    def training_arguments(self, cfg, setup, on_gpu: bool):
        return sft_args(cfg, setup, on_gpu)

    def build_trainer(self, cfg, setup, dataset, teacher, common: dict):
        from trl import SFTTrainer

        common["model"].get_input_embeddings().weight.requires_grad_(False)
        return SFTTrainer(train_dataset=dataset, **common)


@pytest.fixture
def frozen_embeddings(monkeypatch):
    """The new method registered for one test (the registry as it was afterwards)."""
    monkeypatch.setattr(methods, "REGISTRY", dict(methods.REGISTRY))
    return register(FrozenEmbeddingsSFT())


def test_a_name_is_registered_once(frozen_embeddings):
    with pytest.raises(ValueError, match="'sft-frozen-embeddings' is registered already"):
        register(FrozenEmbeddingsSFT())


def test_a_registered_method_is_a_value_of_method_with_its_own_checks(tmp_path, frozen_embeddings):
    path = recipe(tmp_path)
    assert load_error(path, ["method=distil"]).endswith(
        "Input should be 'sft', 'kd', 'on-policy' or 'sft-frozen-embeddings' (got 'distil')")
    assert load_error(path, ["method=sft-frozen-embeddings", "lora.enabled=true"]) == (
        f"{path}: (top level): method sft-frozen-embeddings: lora.enabled must be false (an adapter leaves the embeddings "
        "alone)")
    cfg = load_config(path, StudentConfig, ["method=sft-frozen-embeddings"])
    assert fingerprint(cfg, "digest")["method"] == "sft-frozen-embeddings"  # a run of another method does not resume it


@pytest.mark.slow
def test_a_method_added_from_outside_the_package_trains_through_train(tmp_path, toy_world, frozen_embeddings):
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", max_steps=3, logging_steps=1)
    model_dir = train(load_config(path, StudentConfig, ["method=sft-frozen-embeddings"]))
    before = AutoModelForCausalLM.from_pretrained(toy_world / "bases" / "qwen2-h64-l2").state_dict()
    after = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    assert torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "model.layers.0.mlp.up_proj.weight" in changed and "model.norm.weight" in changed
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["method"] == "sft-frozen-embeddings" and summary["steps"] == 3 and summary["teacher"] is None
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["fingerprint"]["method"] == "sft-frozen-embeddings"
