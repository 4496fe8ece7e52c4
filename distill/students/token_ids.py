"""Whether a teacher's token ids mean what the student's mean, measured: logit distillation compares the two
distributions id by id.

The regular vocabulary (every id that is not an added token) is compared id by id. Special tokens are compared by
role, not by name: DeepSeek's R1-Distill tokenizers are their bases' with a few special ids renamed, so the names
differ while the ids agree. A role (end of turn, start and end of thinking) must be the same id on both sides, or
spelled by regular tokens on both; anything else is a real mismatch, and it is refused with the ids that differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distill.errors import UsageError

THINK, END_THINK = "<think>", "</think>"


@dataclass
class Comparison:
    regular: int  # regular ids the two tokenizers share, each meaning the same piece of text
    differing: list[tuple[int, str | None, str | None]]  # (id, student's token, teacher's token) among regular ids
    roles: dict[str, tuple[int | None, int | None]]  # role -> (student id, teacher id); None: spelled by regular tokens
    renamed: int  # special ids present in both under different names
    role_names: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def role_mismatches(self) -> list[str]:
        return [role for role, (s, t) in self.roles.items() if s != t]

    @property
    def compatible(self) -> bool:
        return not self.differing and not self.role_mismatches




def compare(student, teacher, student_end: str, teacher_end: str) -> Comparison:
    """`student_end`, `teacher_end`: the token that ends an assistant turn for each (its chat family's EOS)."""
    s_vocab, t_vocab = student.get_vocab(), teacher.get_vocab()
    s_added, t_added = set(student.added_tokens_decoder), set(teacher.added_tokens_decoder)
    s_by_id = {i: tok for tok, i in s_vocab.items()}
    t_by_id = {i: tok for tok, i in t_vocab.items()}
    regular_ids = ({i for i in s_by_id if i not in s_added} | {i for i in t_by_id if i not in t_added})
    differing = sorted((i, s_by_id.get(i), t_by_id.get(i)) for i in regular_ids if s_by_id.get(i) != t_by_id.get(i))
    # role -> the id of its token where the tokenizer has it as one token, else None
    roles = {
        "end of turn": (s_vocab.get(student_end), t_vocab.get(teacher_end)),
        "start of thinking": (s_vocab.get(THINK), t_vocab.get(THINK)),
        "end of thinking": (s_vocab.get(END_THINK), t_vocab.get(END_THINK)),
    }
    names = {"end of turn": (student_end, teacher_end), "start of thinking": (THINK, THINK), "end of thinking": (END_THINK, END_THINK)}
    shared_special = s_added & t_added
    renamed = sum(1 for i in shared_special if s_by_id.get(i) != t_by_id.get(i))
    return Comparison(len(regular_ids) - len(differing), differing, roles, renamed, names)


def describe(c: Comparison) -> str:
    """One line: how much agrees, by role."""
    roles = ", ".join(f"{role} {s if s is not None else 'text'}" for role, (s, _) in c.roles.items())
    renamed = f"; {c.renamed} special ids named differently" if c.renamed else ""
    return f"the same {c.regular:,} regular ids; by role: {roles}{renamed}"


def check(student, teacher, student_end: str, teacher_end: str, student_name: str, teacher_name: str,
          ways_out: str) -> Comparison:
    """The comparison, or a UsageError that says how many ids differ and which."""
    c = compare(student, teacher, student_end, teacher_end)
    if c.compatible:
        return c
    problems = []
    if c.differing:
        shown = ", ".join(f"{i}: {s!r} vs {t!r}" for i, s, t in c.differing[:4])
        problems.append(f"{len(c.differing):,} of {c.regular + len(c.differing):,} regular ids differ ({shown}"
                        f"{', ...' if len(c.differing) > 4 else ''})")
    for role in c.role_mismatches:
        (s, t), (s_name, t_name) = c.roles[role], c.role_names[role]
        problems.append(f"{role} is {_spelled(s_name, s)} for the student but {_spelled(t_name, t)} for the teacher")
    raise UsageError(f"teacher {teacher_name} and student {student_name} do not share token ids: {'; '.join(problems)}. "
                     f"Logit distillation compares the two distributions id by id. Ways out: {ways_out}")


def _spelled(name: str, index: int | None) -> str:
    return f"{name} (id {index})" if index is not None else f"{name!r} spelled by several regular tokens"
