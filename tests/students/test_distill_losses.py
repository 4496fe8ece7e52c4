"""The kd / on-policy losses over a teacher's top-k: zero at equality, equal to KL / JSD by hand, top-k support."""

import math

import pytest
import torch

from distill.students.losses import NO_TOKEN, chunked_losses, close_support, divergence, topk_divergence


def by_hand(p: list[float], q: list[float], beta: float) -> float:
    """KL / generalized JSD of two distributions written out term by term (p: student, q: teacher)."""
    def kl(a, b):
        return sum(x * math.log(x / y) for x, y in zip(a, b) if x > 0)

    if beta == 0:
        return kl(q, p)
    if beta == 1:
        return kl(p, q)
    m = [(1 - beta) * x + beta * y for x, y in zip(p, q)]
    return beta * kl(q, m) + (1 - beta) * kl(p, m)


STUDENT = [0.5, 0.25, 0.125, 0.125]
TEACHER = [0.1, 0.6, 0.2, 0.1]


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 1.0])
def test_divergence_on_a_four_token_vocabulary_equals_the_hand_computed_value(beta):
    got = divergence(torch.tensor(STUDENT).log(), torch.tensor(TEACHER).log(), beta)
    assert got.item() == pytest.approx(by_hand(STUDENT, TEACHER, beta), rel=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("tail", [True, False])
def test_zero_when_the_student_is_the_teacher(beta, tail):
    logits = torch.randn(5, 50)
    full = torch.log_softmax(logits, -1)
    top = full.topk(8, -1)
    loss = topk_divergence(logits, top.indices, top.values, beta, tail=tail)
    assert torch.allclose(loss, torch.zeros(5), atol=1e-6)


def test_student_logits_against_the_teachers_whole_vocabulary_give_the_plain_kl():
    student_logits = torch.tensor([STUDENT]).log() + 3.0  # logits: any shift of the log-probabilities
    ids = torch.arange(4).unsqueeze(0)
    teacher = torch.tensor([TEACHER]).log()
    reverse = topk_divergence(student_logits, ids, teacher, beta=1.0)
    forward = topk_divergence(student_logits, ids, teacher, beta=0.0)
    assert reverse.item() == pytest.approx(by_hand(STUDENT, TEACHER, 1.0), rel=1e-4)
    assert forward.item() == pytest.approx(by_hand(STUDENT, TEACHER, 0.0), rel=1e-4)


def test_top_k_renormalised_and_with_a_tail_bucket():
    # The teacher gives its two most likely tokens (0.6, 0.2) of four; the student is STUDENT.
    ids = torch.tensor([[1, 2]])
    teacher = torch.tensor([[0.6, 0.2]]).log()
    student_logits = torch.tensor([STUDENT]).log()
    renormalised = topk_divergence(student_logits, ids, teacher, beta=0.0, tail=False)
    # on {1, 2}: teacher (0.75, 0.25), student (0.25, 0.125) / 0.375 = (2/3, 1/3)
    assert renormalised.item() == pytest.approx(by_hand([2 / 3, 1 / 3], [0.75, 0.25], 0.0), rel=1e-5)
    with_tail = topk_divergence(student_logits, ids, teacher, beta=0.0, tail=True)
    # on {1, 2, rest}: teacher (0.6, 0.2, 0.2), student (0.25, 0.125, 0.625)
    assert with_tail.item() == pytest.approx(by_hand([0.25, 0.125, 0.625], [0.6, 0.2, 0.2], 0.0), rel=1e-5)
    assert close_support(teacher, tail=True).exp().sum().item() == pytest.approx(1.0)


def test_empty_top_k_slots_are_ignored_and_gradients_stay_finite():
    logits = torch.randn(3, 10, requires_grad=True)
    ids = torch.tensor([[2, 5, NO_TOKEN], [1, NO_TOKEN, NO_TOKEN], [4, 7, 9]])
    teacher = torch.tensor([[-0.5, -1.5, 0.0], [-0.01, 0.0, 0.0], [-1.0, -1.2, -2.0]])
    for beta in (0.0, 0.5, 1.0):
        logits.grad = None
        loss = topk_divergence(logits, ids, teacher, beta)
        loss.sum().backward()
        assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()
    same = topk_divergence(logits, ids[:1, :2], teacher[:1, :2], 0.5)  # the padded slot changes nothing
    assert same.item() == pytest.approx(topk_divergence(logits[:1], ids[:1], teacher[:1], 0.5).item(), rel=1e-5)


def test_chunked_losses_equal_the_unchunked_sums_and_their_gradients():
    torch.manual_seed(0)
    hidden = torch.randn(7, 6, requires_grad=True)
    weight = torch.randn(11, 6, requires_grad=True)
    labels = torch.randint(0, 11, (7,))
    ids = torch.randint(0, 11, (7, 3))
    ids[2] = NO_TOKEN  # a position without teacher rows: NLL only
    values = torch.log_softmax(torch.randn(7, 11), -1).gather(-1, ids.clamp(min=0))
    nll, div = chunked_losses(hidden, weight, None, labels, ids, values, beta=0.5, chunk=3)
    (nll + div).backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    logits = hidden @ weight.T
    plain_nll = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
    per = topk_divergence(logits, ids, values, 0.5)
    plain_div = per[[0, 1, 3, 4, 5, 6]].sum()
    (plain_nll + plain_div).backward()
    assert nll.item() == pytest.approx(plain_nll.item(), rel=1e-5) and div.item() == pytest.approx(plain_div.item(), rel=1e-5)
    assert torch.allclose(grads[0], hidden.grad, atol=1e-5) and torch.allclose(grads[1], weight.grad, atol=1e-5)


def test_teacher_ids_past_the_students_vocabulary_go_to_the_tail():
    """A teacher with more (padding) embedding rows than the student may rank such an id in its top-k: that slot counts
    as empty (its mass in the tail bucket), where the student has no logit to gather."""
    torch.manual_seed(0)
    hidden, weight = torch.randn(4, 6), torch.randn(11, 6)
    labels = torch.randint(0, 11, (4,))
    ids = torch.randint(0, 11, (4, 3))
    values = torch.log_softmax(torch.randn(4, 3), -1)
    past = ids.clone()
    past[:, 2] = 11 + torch.arange(4)  # ids the student's 11-row head does not have
    emptied = ids.clone()
    emptied[:, 2] = NO_TOKEN
    _, div = chunked_losses(hidden, weight, None, labels, past, values, beta=0.5)
    _, expected = chunked_losses(hidden, weight, None, labels, emptied, values, beta=0.5)
    assert torch.isfinite(div) and div.item() == pytest.approx(expected.item())
