"""Which attention kernel a student trains with: `model.attn_implementation: auto` picks the fastest correct one.

Padding-free packing (TRL's BFD packing) flattens a batch into one row of several traces, so attention must stop at
each trace's end. The kernels that do that cheaply are varlen ones, which take the traces' boundaries
(`cu_seq_lens_q`, from TRL's collator) instead of a mask:

- flash-attn 3 (Hopper) / flash-attn 2, where installed (transformers' `flash_attention_3` / `flash_attention_2`);
- PyTorch's own varlen attention (`torch.nn.attention.varlen.varlen_attn`, torch >= 2.9 on CUDA, the FlashAttention-2
  kernel PyTorch ships): nothing to build or download. transformers has no name for it, so it is registered here as
  `torch_varlen`;
- a Hub kernel (`model.attn_implementation: kernels-community/flash-attn3`, needs `pip install kernels` and the Hub
  at first use), chosen only when named.

Without one of these, sdpa still trains packed batches correctly (transformers builds a block-diagonal mask from the
position ids) but attends over the whole flattened batch: its cost grows with the square of the tokens per step.
flex_attention is never picked: it compiles for minutes before the first step (issue 16 saw over 4).
"""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass

import torch

from distill.errors import UsageError

TORCH_VARLEN = "torch_varlen"
FAST_INSTALL = "pip install flash-attn --no-build-isolation (or: pip install kernels, then " \
               "model.attn_implementation=kernels-community/flash-attn3)"


@dataclass(frozen=True)
class Attention:
    implementation: str  # what transformers is given as attn_implementation
    line: str  # the one line printed at start: the path in use and what it costs


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def torch_varlen_available() -> bool:
    """PyTorch's varlen kernel runs here: torch >= 2.9 with CUDA on an Ampere or newer GPU."""
    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 8:
        return False
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return True


def resolve(requested: str | None, packing: bool, on_gpu: bool, half: bool = True) -> Attention:
    """The attention path for this run. `requested` None or "auto" picks; any other name is used as given.
    `half`: the model computes in bf16/fp16 (the flash kernels take nothing else)."""
    if requested not in (None, "auto"):
        return _explicit(requested, packing)
    if not on_gpu or not half:
        if on_gpu:
            return Attention("sdpa", "attention: sdpa (the model is in float32; the flash kernels need bf16 or fp16)")
        cost = " (packed batches: a block-diagonal mask over each flattened batch, cost grows with its square)" \
            if packing else ""
        return Attention("sdpa", f"attention: sdpa on CPU{cost}")
    if _has("flash_attn_interface") and torch.cuda.get_device_capability()[0] == 9:
        return Attention("flash_attention_3", "attention: flash_attention_3 (flash-attn 3, varlen: packed traces cost "
                                              "only their own length)")
    if _has("flash_attn"):
        return Attention("flash_attention_2", "attention: flash_attention_2 (flash-attn, varlen: packed traces cost "
                                              "only their own length)")
    if not packing:
        return Attention("sdpa", "attention: sdpa (padded batches; flash-attn not installed, optional: "
                                 "pip install flash-attn --no-build-isolation)")
    if torch_varlen_available():
        register_torch_varlen()
        return Attention(TORCH_VARLEN, "attention: torch_varlen (PyTorch's built-in FlashAttention-2 varlen kernel: packed "
                                       f"traces cost only their own length; flash-attn 3 may be faster on H100/H200: {FAST_INSTALL})")
    return Attention("sdpa", "attention: sdpa with padding-free packing: correct, but each flattened batch attends as "
                             "one block-diagonal mask (cost grows with its square); for the fast "
                             f"path use torch >= 2.9 on an Ampere+ GPU, or {FAST_INSTALL}")


def _explicit(name: str, packing: bool) -> Attention:
    if name == TORCH_VARLEN:
        if not torch_varlen_available():
            raise UsageError(f"model.attn_implementation: {TORCH_VARLEN} needs torch >= 2.9 with CUDA on an Ampere or newer "
                             f"GPU (this is torch {torch.__version__}); use auto")
        register_torch_varlen()
        return Attention(name, f"attention: {name} (PyTorch's built-in FlashAttention-2 varlen kernel)")
    if "/" in name and not _has("kernels"):
        raise UsageError(f"model.attn_implementation: {name} is a Hub kernel and needs the kernels package: pip install "
                         "kernels (offline clusters: README, 'pre-fetch a Hub kernel'), or use auto")
    if name == "flex_attention":
        return Attention(name, "attention: flex_attention (compiles for minutes before the first step)")
    if packing and name in ("sdpa", "eager"):
        return Attention(name, f"attention: {name} with padding-free packing: correct, but each flattened batch attends as "
                               f"one block-diagonal mask (cost grows with its square); auto picks a varlen kernel on GPUs")
    return Attention(name, f"attention: {name}")


def _varlen_fn():
    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    causal = {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}  # 2.9 had is_causal
    return varlen_attn, causal, "enable_gqa" in params


def torch_varlen_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, kernel=None,
                         **kwargs):
    """transformers' attention-function contract (query/key/value: batch, heads, seq, head_dim) over a varlen kernel.

    Padding-free batches are one row whose traces TRL's collator bounds with `cu_seq_lens_q`; without them (a plain
    causal row) the row is one sequence. `kernel` replaces PyTorch's (tests use a reference one on CPU).
    """
    if attention_mask is not None:
        raise ValueError(f"{TORCH_VARLEN} serves padding-free batches only (got an attention mask): use sdpa for padded ones")
    if dropout:
        raise ValueError(f"{TORCH_VARLEN}: attention dropout is not supported")
    batch, heads, seq, head_dim = query.shape
    cu_q, max_q = kwargs.get("cu_seq_lens_q"), kwargs.get("max_length_q")
    if cu_q is None:
        if batch != 1:
            cu_q = torch.arange(0, (batch + 1) * seq, seq, dtype=torch.int32, device=query.device)
        else:
            cu_q = torch.tensor([0, seq], dtype=torch.int32, device=query.device)
        max_q = seq
    elif batch != 1:
        raise ValueError(f"{TORCH_VARLEN}: cu_seq_lens_q given for a batch of {batch} rows (padding-free batches are one row)")
    cu_q = cu_q.to(device=query.device, dtype=torch.int32)
    if max_q is None:
        max_q = int((cu_q[1:] - cu_q[:-1]).max())
    # (batch, heads, seq, dim) -> (tokens, heads, dim)
    q, k, v = (t.transpose(1, 2).reshape(batch * seq, t.shape[1], head_dim) for t in (query, key, value))
    if kernel is None:
        kernel, causal, gqa = _varlen_fn()
    else:
        causal, gqa = {"window_size": (-1, 0)}, True
    if k.shape[1] != heads:
        if gqa:
            causal = {**causal, "enable_gqa": True}
        else:
            k, v = (t.repeat_interleave(heads // t.shape[1], dim=1) for t in (k, v))
    out = kernel(q, k, v, cu_q, cu_q, int(max_q), int(max_q), scale=scaling, **causal)
    return out.reshape(batch, seq, heads, head_dim), None


def register_torch_varlen() -> None:
    """Make `torch_varlen` a name transformers accepts. No mask function is registered for it: transformers then builds
    no mask (the kernel takes the boundaries instead)."""
    from transformers import AttentionInterface

    AttentionInterface.register(TORCH_VARLEN, torch_varlen_forward)


def reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, scale=None, window_size=(-1, 0), enable_gqa=False):
    """What a varlen kernel computes, one trace at a time with sdpa: a slow reference for CPU tests."""
    outs = []
    bounds = cu_q.tolist()
    for start, end in zip(bounds, bounds[1:]):
        qs, ks, vs = (t[start:end].transpose(0, 1) for t in (q, k, v))  # heads, len, dim
        outs.append(torch.nn.functional.scaled_dot_product_attention(
            qs, ks, vs, is_causal=window_size == (-1, 0), scale=scale, enable_gqa=enable_gqa).transpose(0, 1))
    return torch.cat(outs)
