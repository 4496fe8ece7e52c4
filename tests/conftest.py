"""What every test shares: the environment the stack needs on a CPU, and the fixtures of more than one stage (a small
toy world, the code sandbox). Tests mirror the package (tests/curate/ for distill/curate/, ...; tests/e2e/: the demo
and the shipped recipes); what they import (paths, the CLI, the fakes) is in support/."""

import os

# Set before torch / datasets are imported (see ../shared/STACK.md: thread contention, Hub retries).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


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
