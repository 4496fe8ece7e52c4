"""Distillation losses over a teacher's top-k logprobs: stored with the traces (`kd`) or scored by a server (`on-policy`).

`beta` names the divergence as TRL's DistillationTrainer does, so one knob means the same thing for every method:
0 is the forward KL(teacher || student), 1 the reverse KL(student || teacher), anything between the generalized
JSD with the mixture m = (1 - beta) * student + beta * teacher (GKD, Agarwal et al. 2024).

A teacher gives k tokens per position, not its whole distribution. Both distributions are put on the same
support first: the k tokens plus one tail bucket holding the mass outside them (`tail=True`, TRL's
ServerDistillationTrainer default), or the k tokens renormalised to sum to one (`tail=False`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

# Teacher top-k slots that hold no token (a position with fewer than k alternatives) carry this id.
NO_TOKEN = -1
# Log-probability of an empty slot, and the least mass a tail bucket holds: finite, so that no gradient meets inf - inf.
EMPTY = -1e4
MIN_TAIL = 1e-6


def divergence(student_logp: torch.Tensor, teacher_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-position divergence between two log-distributions over the same support (last dim)."""
    s, t = student_logp, teacher_logp
    ps, pt = s.exp(), t.exp()

    def kl(p, logp, logq):  # sum p (log p - log q)
        return (p * (logp - logq)).sum(-1)

    if beta == 0.0:
        return kl(pt, t, s)
    if beta == 1.0:
        return kl(ps, s, t)
    log_m = torch.logaddexp(s + math.log(1 - beta), t + math.log(beta))
    return beta * kl(pt, t, log_m) + (1 - beta) * kl(ps, s, log_m)


def on_support(logp: torch.Tensor, ids: torch.Tensor, tail: bool) -> torch.Tensor:
    """A full log-distribution (N, V) restricted to each row's k ids (N, k): (N, k + 1) with a tail, else (N, k)."""
    present = ids != NO_TOKEN
    picked = logp.gather(-1, ids.clamp(min=0)).masked_fill(~present, EMPTY)
    return close_support(picked, tail)


def close_support(logp: torch.Tensor, tail: bool) -> torch.Tensor:
    """k log-probabilities of one distribution -> a proper distribution: add the tail bucket, or renormalise."""
    if not tail:
        return (logp - torch.logsumexp(logp, -1, keepdim=True)).clamp(min=EMPTY)
    covered = torch.logsumexp(logp, -1, keepdim=True).exp()
    rest = torch.log((1.0 - covered).clamp(min=MIN_TAIL))
    return torch.cat([logp, rest], -1)


def topk_divergence(student_logits: torch.Tensor, teacher_ids: torch.Tensor, teacher_logprobs: torch.Tensor,
                    beta: float, temperature: float = 1.0, tail: bool = True) -> torch.Tensor:
    """Per-position divergence (N,) between a student's logits (N, V) and a teacher's top-k (N, k) at the same positions.

    The teacher's logprobs are its full-vocabulary ones (what vLLM returns); at a temperature other than 1 they
    are rescaled on the support (the exact tempered teacher needs its whole distribution).
    """
    student = F.log_softmax(student_logits.float() / temperature, -1)
    teacher = teacher_logprobs.float().clamp(min=EMPTY).masked_fill(teacher_ids == NO_TOKEN, EMPTY)
    if temperature != 1.0:
        teacher = teacher / temperature
        teacher = teacher - torch.logsumexp(teacher, -1, keepdim=True)
        tail = False  # the tail mass of a tempered teacher is unknown: compare on the k tokens alone
    return divergence(on_support(student, teacher_ids, tail), close_support(teacher, tail), beta)


def _chunk_losses(hidden, weight, bias, labels, teacher_ids, teacher_logprobs, beta, temperature, tail):
    logits = F.linear(hidden, weight, bias)
    nll = F.cross_entropy(logits.float(), labels, reduction="none")
    div = topk_divergence(logits, teacher_ids, teacher_logprobs, beta, temperature, tail)
    has_teacher = (teacher_ids != NO_TOKEN).any(-1)
    return nll.sum(), torch.where(has_teacher, div, torch.zeros_like(div)).sum()


def chunked_losses(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, labels: torch.Tensor,
                   teacher_ids: torch.Tensor, teacher_logprobs: torch.Tensor, *, beta: float, temperature: float = 1.0,
                   tail: bool = True, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of NLL of `labels`, sum of top-k divergences) over N positions, given their hidden states (N, H).

    The vocabulary-sized logits exist for one chunk of positions at a time and are recomputed in the backward
    pass (a 32k-token trace times a 152k vocabulary would be 19 GB of float32 logits at once). Positions whose
    teacher row holds no token add no divergence.
    """
    # A teacher with more embedding rows than the student (R1-Distill-Qwen-32B's 152,064 over a 1.5B student's 151,936:
    # padding rows past the tokenizer) can rank one of those ids in its top-k: the student has no such logit, so that
    # mass goes to the tail bucket like any other id outside the top-k.
    teacher_ids = teacher_ids.masked_fill(teacher_ids >= weight.size(0), NO_TOKEN)
    nll = hidden.new_zeros((), dtype=torch.float32)
    div = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.size(0), chunk):
        part = slice(start, start + chunk)
        args = (hidden[part], weight, bias, labels[part], teacher_ids[part], teacher_logprobs[part], beta, temperature, tail)
        n, d = checkpoint(_chunk_losses, *args, use_reentrant=False) if torch.is_grad_enabled() else _chunk_losses(*args)
        nll, div = nll + n, div + d
    return nll, div
