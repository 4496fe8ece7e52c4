"""The training methods a student recipe names (`method:`): one module each, registered here by name.

A new method is a module (a `Method` subclass: base.py says what it decides) and one line in BUILT_IN below; code
outside distill (a test, a plugin) calls `register` instead. The config takes `method:` values from here, and the plan,
the report and the demo ask the method object what they need to know (does it need a teacher, does the teacher score
the student's samples, ...), never its name.
"""

from __future__ import annotations

from distill.errors import UsageError
from distill.students.methods import kd, on_policy, sft
from distill.students.methods.base import DistillationMethod, Method

__all__ = ["DEFAULT_METHOD", "DistillationMethod", "Method", "method_names", "register", "training_method"]

DEFAULT_METHOD = sft.SFT.name  # a recipe without `method:`
BUILT_IN = (sft.SFT(), kd.KD(), on_policy.OnPolicy())
REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Make `method` a value of `method:` in student recipes, under its name."""
    if method.name in REGISTRY:
        raise ValueError(f"a training method named {method.name!r} is registered already")
    REGISTRY[method.name] = method
    return method


def method_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def training_method(name: str) -> Method:
    """The registered method called `name`."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(f"method {name!r} is not a training method (known: {', '.join(REGISTRY)})") from None


for _method in BUILT_IN:
    register(_method)
