# lm-eval loads `!function hooks.X` from a file next to the task YAML; the hooks themselves live in the package.
from distill.eval.hooks import gpqa_docs, humaneval_docs, keep_all, livecodebench_docs, math_docs, process_results  # noqa: F401
