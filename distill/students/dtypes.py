"""Weights' dtypes by their config names (model.dtype, teacher.dtype)."""

import torch

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32, "auto": "auto"}
