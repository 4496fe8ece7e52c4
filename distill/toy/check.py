"""Direct check of a toy model: sample with transformers, judge the boxed integer against the answer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from distill.toy.task import user_message
from distill.verify.kinds import judge_math
from distill.verify.math import boxed_integer_text
from distill.verify.reasoning import final_answer_text


def boxed_integer(response: str) -> int | None:
    """The boxed integer of the final answer (the text after the last `</think>`); None if absent."""
    text = final_answer_text(response, reasoning=True)
    found = boxed_integer_text(text) if text is not None else None
    return int(found) if found is not None else None


def is_correct(response: str, answer: int) -> bool:
    return judge_math(response, str(answer), kind="integer").correct


@dataclass
class CheckResult:
    pass_at_1: float
    greedy: float
    samples: int
    problems: int
    stopped: float  # share of samples that ended with EOS rather than the token limit


def load(model_dir: str):
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    return tokenizer, AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


@torch.inference_mode()
def sample_responses(model_dir: str, problems: list[str], k: int, temperature: float, top_p: float,
                     max_new_tokens: int = 160, batch_size: int = 64, seed: int = 0,
                     loaded=None) -> tuple[list[list[str]], list[list[bool]]]:
    """k sampled responses per problem (k=0 -> one greedy response), and whether each one stopped at EOS."""
    tokenizer, model = loaded or load(model_dir)
    eos_ids = model.generation_config.eos_token_id
    eos_ids = set([eos_ids] if isinstance(eos_ids, int) else eos_ids)
    torch.manual_seed(seed)
    texts, stops = [], []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start:start + batch_size]
        prompts = [
            tokenizer.apply_chat_template([{"role": "user", "content": user_message(p)}], tokenize=False,
                                          add_generation_prompt=True)
            for p in chunk
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, num_return_sequences=k) if k else dict(do_sample=False)
        out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
        new = out[:, enc["input_ids"].shape[1]:]
        per = max(k, 1)
        for i in range(len(chunk)):
            rows = new[i * per:(i + 1) * per]
            texts.append([tokenizer.decode(r, skip_special_tokens=True) for r in rows])
            stops.append([any(int(t) in eos_ids for t in r) for r in rows])
    return texts, stops


def check_model(model_dir: str, problems: list[dict], k: int = 4, temperature: float = 0.6, top_p: float = 0.95,
                seed: int = 0) -> CheckResult:
    questions = [p["problem"] for p in problems]
    answers = [int(p["answer"]) for p in problems]
    loaded = load(model_dir)
    sampled, stops = sample_responses(model_dir, questions, k, temperature, top_p, seed=seed, loaded=loaded)
    greedy, _ = sample_responses(model_dir, questions, 0, temperature, top_p, seed=seed, loaded=loaded)
    correct = [[is_correct(r, a) for r in rs] for rs, a in zip(sampled, answers)]
    return CheckResult(
        pass_at_1=sum(sum(c) / len(c) for c in correct) / len(correct),
        greedy=sum(is_correct(rs[0], a) for rs, a in zip(greedy, answers)) / len(answers),
        samples=sum(len(c) for c in correct),
        problems=len(problems),
        stopped=sum(sum(s) for s in stops) / sum(len(s) for s in stops),
    )
