"""The chat families of the real models: detected from the tokenizer, a base renamed into its R1-Distill counterpart,
and the teacher's token ids compared id by id and by role (real tokenizers: tests/support/real_models.py)."""

import pytest

from distill.errors import UsageError
from distill.students import chat, specials, token_ids

QWEN, LLAMA = "Qwen/Qwen2.5-Math-7B", "meta-llama/Llama-3.1-8B"
R1_QWEN_7B, R1_QWEN_32B = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
R1_LLAMA_8B, R1_LLAMA_70B = "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"
TRACE = [{"role": "user", "content": "What is 1+1?"},
         {"role": "assistant", "content": "<think>\n1 + 1 = 2\n</think>\n\nThe answer is \\boxed{2}."}]


@pytest.mark.parametrize("hub_id, model_type, family", [
    (QWEN, "qwen2", "qwen"), (R1_QWEN_7B, "qwen2", "r1-distill-qwen"), (R1_QWEN_32B, None, "r1-distill-qwen"),
    (LLAMA, "llama", "llama3"), (R1_LLAMA_8B, "llama", "r1-distill-llama"), (R1_LLAMA_70B, None, "r1-distill-llama"),
])
def test_auto_detects_the_family_from_the_tokenizer(real_tokenizer, hub_id, model_type, family):
    tok = real_tokenizer(hub_id)
    setup = chat.resolve("auto", model_type, "family", "family", "family", vocab=tok.get_vocab())
    assert setup.family == family
    assert setup.eos_token in tok.get_vocab() and setup.pad_token in tok.get_vocab() and setup.eos_token != setup.pad_token


@pytest.mark.parametrize("base, published", [(QWEN, R1_QWEN_7B), (LLAMA, R1_LLAMA_8B)])
def test_a_base_renamed_is_the_published_r1_distill_tokenizer(real_tokenizer, tmp_path, base, published):
    from transformers import AutoTokenizer

    family = "r1-distill-llama" if "llama" in base.lower() else "r1-distill-qwen"
    renamed = specials.as_r1_distill(real_tokenizer(base), family, base)
    theirs = real_tokenizer(published)
    assert renamed.get_vocab() == theirs.get_vocab()
    text = "<｜User｜>Add.<｜Assistant｜><think>\n1 + 1 = 2\n</think>\n\n\\boxed{2}<｜end▁of▁sentence｜>"
    assert renamed(text, add_special_tokens=False)["input_ids"] == theirs(text, add_special_tokens=False)["input_ids"]
    thought = renamed("<think>x</think>", add_special_tokens=False)["input_ids"]
    assert renamed.decode(thought, skip_special_tokens=True) == "<think>x</think>"
    renamed.save_pretrained(tmp_path)  # as the student is saved with its model
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.get_vocab() == theirs.get_vocab() and again.eos_token == theirs.eos_token
    assert specials.as_r1_distill(theirs, family, published) is theirs  # already DeepSeek's: unchanged


def test_a_tokenizer_of_another_layout_is_refused_by_the_r1_distill_family(real_tokenizer):
    with pytest.raises(UsageError, match="model.family=r1-distill-qwen: the tokenizer of .*Llama.* neither"):
        specials.as_r1_distill(real_tokenizer(LLAMA), "r1-distill-qwen", LLAMA)


@pytest.mark.parametrize("student", [R1_QWEN_7B, "own stage 1"])
def test_r1_distill_qwen_32b_teaches_the_published_7b_and_our_own_stage_1(real_tokenizer, student):
    own = student == "own stage 1"
    tok = specials.as_r1_distill(real_tokenizer(QWEN), "r1-distill-qwen", QWEN) if own else real_tokenizer(student)
    line = token_ids.describe(token_ids.check(tok, real_tokenizer(R1_QWEN_32B), specials.EOS, specials.EOS, student,
                                              R1_QWEN_32B, "..."))
    assert line.startswith("the same 151,643 regular ids")
    assert "end of turn 151643, start of thinking 151648, end of thinking 151649" in line


def test_r1_distill_llama_70b_teaches_the_8b(real_tokenizer):
    c = token_ids.compare(real_tokenizer(R1_LLAMA_8B), real_tokenizer(R1_LLAMA_70B), specials.EOS, specials.EOS)
    assert c.compatible and c.regular == 128000 and c.roles["start of thinking"] == (128013, 128013)


def test_qwen_against_llama_is_refused_with_how_many_ids_differ(real_tokenizer):
    with pytest.raises(UsageError) as e:
        token_ids.check(real_tokenizer(QWEN), real_tokenizer(LLAMA), "<|im_end|>", "<|eot_id|>", QWEN, LLAMA, "WAYS")
    message = str(e.value)
    assert "regular ids differ" in message and "Ways out: WAYS" in message
    differing = int(message.split(" of ")[0].split(": ")[-1].replace(",", ""))
    assert 100_000 < differing < 151_643 + 128_000


def test_a_chatml_student_is_refused_by_an_r1_distill_teacher_by_role(real_tokenizer):
    """Same regular ids, but the student ends its turn with <|im_end|> (151645, the teacher's <｜Assistant｜>) and spells
    <think> in regular tokens: the teacher's distribution at those places means something else."""
    c = token_ids.compare(real_tokenizer(QWEN), real_tokenizer(R1_QWEN_32B), "<|im_end|>", specials.EOS)
    assert not c.differing and c.regular == 151643 and not c.compatible
    assert c.roles["end of turn"] == (151645, 151643) and c.roles["start of thinking"] == (None, 151648)
    with pytest.raises(UsageError, match=r"end of turn is <\|im_end\|> \(id 151645\) for the student but "
                                         r"<｜end▁of▁sentence｜> \(id 151643\) for the teacher"):
        token_ids.check(real_tokenizer(QWEN), real_tokenizer(R1_QWEN_32B), "<|im_end|>", specials.EOS, QWEN, R1_QWEN_32B, "")


def test_the_training_template_renders_deepseeks_format_with_the_answer_trained(real_tokenizer):
    """What stage 1 trains: DeepSeek's turn format over the renamed base, the reasoning and the end of sentence carry
    loss, the prompt does not."""
    tok = specials.as_r1_distill(real_tokenizer(QWEN), "r1-distill-qwen", QWEN)
    setup = chat.resolve("r1-distill-qwen", "qwen2", "family", "family", "family")
    template = open(setup.chat_template_path.replace(".jinja", "_training.jinja")).read()
    out = tok.apply_chat_template(TRACE, chat_template=template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert ids[0] == 151646 and ids[1] == 151644  # <｜begin▁of▁sentence｜><｜User｜>
    trained = [i for i, m in zip(ids, mask) if m]
    assert 151648 in trained and 151649 in trained and trained[-1] == 151643  # <think>, </think>, the end of sentence
    assert 151644 not in trained and tok.decode(trained).endswith("\\boxed{2}.<｜end▁of▁sentence｜>")
