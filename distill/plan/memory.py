"""Memory per GPU of a training run: the model's shape (built on the meta device), its model states under each
sharding, and its activations.

Model states follow DeepSpeed's estimators (deepspeed.runtime.zero.stage_1_and_2.estimate_zero2_model_states_mem_needs
and stage3.estimate_zero3_model_states_mem_needs; docs/code-docs/source/memory.rst). DeepSpeed is a GPU extra that is
not installed here, so the two formulas are restated below (tests check them against DeepSpeed's published example).

Activations restate the per-tensor accounting of Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
Transformer Models" (sec. 4.1: 34sbh + 5as^2b bytes per layer for GPT), for these models: no dropout, flash/SDPA
attention (no s^2 scores kept), grouped-query K/V, the three-matrix SwiGLU MLP, and RMSNorm, which transformers
computes on an fp32 copy of its input (liger's kernel keeps the bf16 input only).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from distill.errors import UsageError

GIB = 2**30
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "auto": 2}
QUANT_BYTES = {"4bit": 0.5, "8bit": 1.0}  # frozen linear weights of QLoRA (NF4 / int8), quantisation constants left out


@dataclass(frozen=True)
class ModelShape:
    name: str
    params: int
    trainable: int  # = params for a full fine-tune; the adapter's parameters under LoRA
    frozen_bytes: float  # bytes of the frozen weights (LoRA base, quantised or not); 0 for a full fine-tune
    weight_bytes: int  # all weights in the load dtype (accelerate's calculate_maximum_sizes)
    dtype_bytes: int
    layers: int
    hidden: int
    kv_dim: int  # num_key_value_heads x head_dim
    intermediate: int
    vocab: int
    largest_module_params: int  # DeepSpeed's largest_layer_params: the most parameters one module holds itself
    layer_params: int  # one decoder layer
    root_params: int  # outside the decoder layers (embeddings, head, final norm): FSDP's root unit
    matmul_params: int  # as bench/train.py counts FLOPs: an untied input embedding is a lookup, not a matmul

    @property
    def lora(self) -> bool:
        return self.trainable < self.params


def _config(name_or_path: str, overrides: dict[str, Any]):
    from distill.shapes import model_config

    config = model_config(name_or_path)
    if config is None:
        raise UsageError(f"model.name_or_path: {name_or_path}: no local config.json and not in distill/shapes.py's table "
                         "(add its config.json fields there, or point at a local model directory)")
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def _meta_model(config, dtype_bytes: int):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if dtype_bytes == 4 else torch.bfloat16)
    model.tie_weights()  # transformers 5.0 leaves a meta model's tied embeddings untied (counted twice); later ones tie
    return model


@lru_cache(maxsize=16)
def parameter_count(name_or_path: str) -> int | None:
    """Parameters of a model the shape table or a local directory knows (None otherwise): for matching MFU rows."""
    from distill.shapes import shape_fields

    if shape_fields(name_or_path) is None:
        return None
    return sum(p.numel() for p in _meta_model(_config(name_or_path, {}), 2).parameters())


def model_shape(name_or_path: str, overrides: dict[str, Any] | None = None, dtype: str = "bfloat16",
                lora: Any = None) -> ModelShape:
    """The shape of `name_or_path` (local config.json, else distill/shapes.py), built on the meta device: no weights
    are read or allocated. `lora` is the recipe's LoraSection; enabled, PEFT wraps the meta model to count the
    adapter's trainable parameters."""
    import torch
    from accelerate.utils import calculate_maximum_sizes

    config = _config(name_or_path, overrides or {})
    dtype_bytes = DTYPE_BYTES[dtype]
    model = _meta_model(config, dtype_bytes)
    params = sum(p.numel() for p in model.parameters())  # tied weights are counted once (parameters() dedups)
    weight_bytes, _ = calculate_maximum_sizes(model)
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    text = config.get_text_config()
    layers = next(m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == text.num_hidden_layers)
    layer_params = sum(p.numel() for p in layers[0].parameters())
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    trainable, frozen_bytes = params, 0.0
    if lora is not None and lora.enabled:
        from peft import LoraConfig, get_peft_model

        quantized = sum(p.numel() for n, p in model.named_parameters() if n.startswith("model.layers.") and p.dim() == 2)
        with warnings.catch_warnings():  # PEFT asks transformers a property it has renamed: nothing for users to do
            warnings.simplefilter("ignore", FutureWarning)
            wrapped = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, target_modules=lora.target_modules,
                                                       task_type="CAUSAL_LM"))
        trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
        per_quantized = QUANT_BYTES.get(lora.quantization, dtype_bytes)
        frozen_bytes = quantized * per_quantized + (params - quantized) * dtype_bytes
    return ModelShape(name=name_or_path, params=params, trainable=trainable, frozen_bytes=frozen_bytes,
                      weight_bytes=int(weight_bytes), dtype_bytes=dtype_bytes, layers=text.num_hidden_layers,
                      hidden=text.hidden_size, kv_dim=kv_heads * head_dim, intermediate=text.intermediate_size,
                      vocab=text.vocab_size, largest_module_params=largest, layer_params=layer_params,
                      root_params=params - text.num_hidden_layers * layer_params,
                      matmul_params=params - (0 if getattr(config, "tie_word_embeddings", False)
                                              else model.get_input_embeddings().weight.numel()))


# DeepSpeed's estimators, as in deepspeed/runtime/zero/stage_1_and_2.py and stage3.py (bytes; returns cpu, gpu).
def estimate_zero2_model_states_mem_needs(total_params: float, num_gpus_per_node: int = 1, num_nodes: int = 1,
                                          cpu_offload: bool = True, additional_buffer_factor: float = 1.5) -> tuple[int, int]:
    total_gpus = num_nodes * num_gpus_per_node
    if cpu_offload:
        gpu_mem = 2 * total_params
        cpu_mem = total_params * max(4 * total_gpus, 16) * additional_buffer_factor
    else:
        gpu_mem = 4 * total_params + int(16 * total_params / total_gpus)
        cpu_mem = total_params * 4 * num_gpus_per_node * additional_buffer_factor
    return int(cpu_mem), int(gpu_mem)


def estimate_zero3_model_states_mem_needs(total_params: float, largest_layer_params: float, num_gpus_per_node: int = 1,
                                          num_nodes: int = 1, cpu_offload: bool = True, cpu_offload_params: bool = True,
                                          zero_init: bool = True, additional_buffer_factor: float = 1.5) -> tuple[int, int]:
    total_gpus = num_nodes * num_gpus_per_node
    gpus_factor = 1 / num_nodes
    largest_layer_memory = 4 * largest_layer_params  # a gathered layer: its 2-byte weights and 2-byte gradients
    if cpu_offload and cpu_offload_params:
        gpu_mem = largest_layer_memory
        factor = 18 * gpus_factor if zero_init else max(4 * num_gpus_per_node, 18 * gpus_factor)
        cpu_mem = total_params * factor * additional_buffer_factor
    elif cpu_offload:
        gpu_mem = largest_layer_memory + int(2 * total_params / total_gpus)
        factor = 16 * gpus_factor if zero_init else max(4 * num_gpus_per_node, 16 * gpus_factor)
        cpu_mem = total_params * factor * additional_buffer_factor
    else:
        gpu_mem = largest_layer_memory + int(18 * total_params / total_gpus)
        cpu_mem = (largest_layer_params if zero_init else total_params) * 4 * num_gpus_per_node * additional_buffer_factor
    return int(cpu_mem), int(gpu_mem)


@dataclass(frozen=True)
class Sharding:
    kind: str  # ddp | zero2 | zero3 | fsdp
    offload_optimizer: bool = False
    offload_params: bool = False
    source: str = ""  # the accelerate config it was read from

    @property
    def label(self) -> str:
        name = {"ddp": "DDP (no sharding)", "zero2": "DeepSpeed ZeRO-2", "zero3": "DeepSpeed ZeRO-3",
                "fsdp": "FSDP2 full shard"}[self.kind]
        offload = [w for w, on in (("optimizer", self.offload_optimizer), ("parameters", self.offload_params)) if on]
        return name + (f", {' and '.join(offload)} offloaded to CPU" if offload else "")


def model_states(shape: ModelShape, sharding: Sharding, total_gpus: int) -> dict[str, float]:
    """Bytes per GPU of weights, gradients and optimizer states (AdamW, bf16 mixed precision).

    ZeRO: DeepSpeed's split (2-byte weights and gradients, fp32 master weights, gradients and moments partitioned),
    summing to its estimators for a full fine-tune. DDP: distill loads the model in its dtype and ddp.yaml keeps no
    fp32 master, so AdamW's moments live in that dtype. FSDP2 (fsdp.yaml, bf16 mixed precision): fp32 master weights,
    gradients and moments sharded, plus the gathered bf16 weights and gradients of the root unit (embeddings, head;
    FSDP2 keeps the root gathered between forward and backward) and of the current and prefetched decoder layer.
    LoRA: the frozen base in its dtype (or quantised), the adapter in fp32 (PEFT's default) with its own states."""
    n, t = total_gpus, shape.trainable
    frozen = shape.frozen_bytes
    if sharding.kind == "ddp":
        if shape.lora:
            return {"weights": frozen + 4 * t, "gradients": 4 * t, "optimizer": 8 * t}
        b = shape.dtype_bytes
        return {"weights": b * t, "gradients": b * t, "optimizer": 2 * b * t}
    if sharding.kind == "zero2":
        if sharding.offload_optimizer:
            return {"weights": frozen + 2 * t, "gradients": 0.0, "optimizer": 0.0}
        return {"weights": frozen + 2 * t, "gradients": 2 * t + 4 * t / n, "optimizer": 12 * t / n}
    if sharding.kind == "zero3":
        gathered = 4 * shape.largest_module_params
        if sharding.offload_params:
            return {"weights": float(gathered), "gradients": 0.0, "optimizer": 0.0}
        weights = gathered + (frozen + 2 * t) / n
        if sharding.offload_optimizer:
            return {"weights": weights, "gradients": 0.0, "optimizer": 0.0}
        return {"weights": weights, "gradients": 4 * t / n, "optimizer": 12 * t / n}
    if sharding.kind == "fsdp":
        gathered = shape.root_params + 2 * shape.layer_params
        gathered_grads = 0 if shape.lora else 2 * (shape.root_params + shape.layer_params)
        return {"weights": (frozen + 4 * t) / n + 2 * gathered, "gradients": 4 * t / n + gathered_grads,
                "optimizer": 8 * t / n}
    raise ValueError(sharding.kind)


def layer_bytes_per_token(shape: ModelShape, liger: bool) -> int:
    """Bytes one decoder layer keeps for backward per token (bf16), no checkpointing.

    attention: input of q/k/v (2h), q (2h), k and v (2 x 2 kv), attention output (2h): 6h + 4kv
    MLP: input of gate/up (2h), gate and up (2 x 2I), silu(gate) and the product (2 x 2I): 2h + 8I
         (liger's SwiGLU recomputes silu in backward: 2h + 6I)
    norms: two RMSNorms, each an fp32 copy of its input (4h) and the normalised bf16 (2h): 12h (liger: 2 x 2h)"""
    h, kv, inter = shape.hidden, shape.kv_dim, shape.intermediate
    attention = 6 * h + 4 * kv
    mlp = 2 * h + (6 if liger else 8) * inter
    norms = 4 * h if liger else 12 * h
    return attention + mlp + norms


def activations(shape: ModelShape, tokens: int, checkpointing: bool, liger: bool,
                logits: bool = False) -> dict[str, float]:
    """Bytes of activations for one micro-batch of `tokens` (= per_device_train_batch_size x max_length).

    With checkpointing, each layer keeps its bf16 input (2h per token) and one layer at a time is recomputed whole.
    Loss: TRL's SFTTrainer (1.16: add_fused_lm_head) and distill's kd loss project the head in tiles and never hold
    the logits: about one fp32 hidden-state tensor for the gradient, plus the head's weight gradient (2 V h); liger's
    fused cross-entropy is the same. `logits=True` is a trainer that materialises them through transformers' loss,
    which upcasts to fp32: bf16 logits, their fp32 copy and the log-softmax, about 10 bytes x tokens x vocab."""
    per_layer = layer_bytes_per_token(shape, liger)
    if checkpointing:
        layers = shape.layers * 2 * shape.hidden * tokens + per_layer * tokens
    else:
        layers = shape.layers * per_layer * tokens
    loss = 10 * shape.vocab * tokens if logits else 6 * shape.hidden * tokens + 2 * shape.vocab * shape.hidden
    return {"layers": float(layers), "loss": float(loss)}
