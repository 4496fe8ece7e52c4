"""Shims for the older library versions pyproject.toml still declares (constraints/min.txt: `make test-min`)."""

import pytest

from distill.students.arguments import checkpointing_arg


@pytest.mark.parametrize("name", ["SFTConfig", "DistillationConfig"])
@pytest.mark.parametrize("wanted", [False, True])
def test_checkpointing_is_asked_for_by_the_name_this_transformers_knows(tmp_path, name, wanted):
    # transformers 5.2x calls it activation_checkpointing; the 5.17 of GPU images knew only gradient_checkpointing
    import trl

    config_class = getattr(trl, name)
    args = config_class(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none",
                        **{checkpointing_arg(config_class): wanted})
    assert args.gradient_checkpointing is wanted  # TRL's default is True: False must get through too
