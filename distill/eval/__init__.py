"""Eval stage: benchmarks through lm-eval with the R1 protocol, scored by distill.verify.

An eval run directory (`runs/eval/<label>/`, one model on one suite) holds:

    config.yaml, manifest.json        the resolved suite + model config, provenance (distill.runs.Run)
    samples/<benchmark>.parquet       one row per sample: benchmark, problem_id, sample (int), prompt,
                                      response, reference, extracted (str|None), correct (bool),
                                      reason (str|None), response_tokens (int)
    results.json                      {"model": {"label", "name_or_path", "role": "teacher"|"student", "params": int|None},
                                       "suite": str, "protocol": {"temperature", "top_p", "max_tokens", "reasoning"},
                                       "benchmarks": {name: {"problems": int, "samples": int,
                                           "pass@1": float, "ci95": [lo, hi],          # percent, 0-100
                                           "cons@n": float|None, "n": int,             # majority vote over n; None: nothing extracted
                                           "pass@k": {"1": float, "2": float, ...},    # unbiased, percent
                                           "length": {"mean", "median", "p90", "max"}, # response tokens
                                           "per_problem": {problem_id: fraction correct}}}}
"""
