#!/usr/bin/env bash
# The students stage on one GPU, in one prepared run (issue 16): throughput per mode, the packed attention path's
# correctness, the full `distill train` CLI (checkpoint, kill, resume, final save, LoRA merge), FSDP, and ZeRO-3
# where deepspeed is installed. Everything it learns goes to $OUT (8 files at most):
#   gpu_check.log  all output        results.jsonl  one JSON line per check (name, ok, detail)
#   bench.json     the measured rows  train_gpu.json  bench/results/train_gpu.json with those rows appended
#   cli.log / dist.log  the training runs' own output, tracebacks included
#
# From the project root, on a GPU machine without network (wheels brought in as ../shared/gpu/README.md says:
# ../shared/gpu/fetch-wheels.sh fills .whl/, which this script installs into /tmp/site when present):
#   OUT=/tmp/out bash bench/gpu_check.sh                 # all phases, ~9 min on one H100/H200
#   OUT=/tmp/out bash bench/gpu_check.sh bench           # or some of: bench cli dist
#   OUT=/tmp/out bash bench/gpu_check.sh preflight       # distill preflight of the two 1.5B recipes, on the GPU
# CPU smoke test (tiny shape, seconds per step; tests/bench/test_bench_train.py does not run it, it takes minutes):
#   DEVICE=cpu SHAPE=tiny MAXLEN=512 TRACES=48 STEPS=3 WARM=1 NUM_PROC=1 PY=.venv/bin/python OUT=/tmp/out \
#     bash bench/gpu_check.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/out}
WORK=${WORK:-/tmp/gpu_check}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
SHAPE=${SHAPE:-1.5b}
MAXLEN=${MAXLEN:-8192}
TRACES=${TRACES:-400}
STEPS=${STEPS:-10}
WARM=${WARM:-3}
CLI_STEPS=${CLI_STEPS:-8}
SAVE=${SAVE:-3}
BUDGET_S=${BUDGET_S:-560}   # no new phase starts after this many seconds
FSDP=${FSDP_CONFIG:-configs/accelerate/fsdp.yaml}   # CPU smoke of the dist plumbing: a use_cpu DDP config, DIST_PROCS=2
PROCS=${DIST_PROCS:-1}
PHASES=${*:-bench cli dist preflight}
# preflight: the real tokenizers (tests/support/real_models.py, built on the CPU machine: python
# tests/support/real_models.py runs/real-models) travel with the tree; carry runs/real-models/Qwen/Qwen2.5-Math-1.5B and
# runs/real-models/deepseek-ai/DeepSeek-R1-Distill-Qwen-{1.5B,32B} (about 8 MB each).
MODELS=${MODELS:-runs/real-models}
START=$(date +%s)
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TQDM_DISABLE=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1 PYTHONUNBUFFERED=1 \
  TRL_EXPERIMENTAL_SILENCE=1 TOKENIZERS_PARALLELISM=false
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$ROOT
else
  export PYTHONPATH=$ROOT
fi

say() { echo "== $(date -u +%T) +$(( $(date +%s) - START ))s $*"; }
record() {  # record NAME OK(true|false) DETAIL
  $PY -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "ok": sys.argv[2] == "true", "detail": sys.argv[3]}))' \
    "$1" "$2" "$3" >>"$OUT/results.jsonl"
  say "$1: ok=$2 $3"
}
late() { [ $(( $(date +%s) - START )) -gt "$BUDGET_S" ] && { say "skip $1: past BUDGET_S=$BUDGET_S"; return 0; }; return 1; }
free_disk() { df -BG --output=avail "$WORK" | tail -1 | tr -d ' '; }
has() { $PY -c "import $1" >/dev/null 2>&1; }
killtree() { local c; for c in $(pgrep -P "$1"); do killtree "$c"; done; kill -9 "$1" 2>/dev/null; }  # workers first

say "versions"
$PY -c 'import torch, transformers, accelerate, json
v = dict(torch=torch.__version__, cuda=torch.version.cuda, transformers=transformers.__version__, accelerate=accelerate.__version__,
         gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
for m in ("trl", "datasets", "peft", "liger_kernel", "flash_attn", "flash_attn_interface", "kernels", "deepspeed"):
    try: v[m] = getattr(__import__(m), "__version__", "yes")
    except Exception as e: v[m] = "no (" + type(e).__name__ + ")"
print(json.dumps(v))'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
say "disk: $(free_disk) free at $WORK"
PREP=$($PY bench/train.py --device "$DEVICE" --shape "$SHAPE" --max-length "$MAXLEN" --traces "$TRACES" --work "$WORK" --prepare-only)
BASE=$(echo "$PREP" | sed -n 's/^BASE //p')
DATA=$(echo "$PREP" | sed -n 's/^DATA //p')
[ -n "$BASE" ] && [ -n "$DATA" ] || { record prepare false "$PREP"; exit 1; }
LIGER=false; has liger_kernel && LIGER=true

# -- attention: the packed path auto picks gives every trace what it gets alone (no attention across traces) -------
attention_check() {
  $PY - "$DEVICE" <<'EOF'
import sys, torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
from distill.students import attention
device = sys.argv[1]
gpu = device == "cuda"
chosen = attention.resolve("auto", packing=True, on_gpu=gpu)
print(chosen.line)
torch.manual_seed(0)
cfg = Qwen2Config(vocab_size=1000, hidden_size=512, intermediate_size=1024, num_hidden_layers=2, num_attention_heads=8,
                  num_key_value_heads=2, max_position_embeddings=8192)
dtype = torch.bfloat16 if gpu else torch.float32
def model(impl):
    cfg._attn_implementation = impl
    torch.manual_seed(0)
    return Qwen2ForCausalLM(cfg).to(device, dtype).eval()
lengths = [700, 1500, 333, 2048]
g = torch.Generator().manual_seed(1)
ids = [torch.randint(1, 1000, (n,), generator=g).tolist() for n in lengths]
batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([{"input_ids": x} for x in ids])
keys = ("input_ids", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")
inputs = {k: (batch[k].to(device) if torch.is_tensor(batch[k]) else batch[k]) for k in keys}
with torch.no_grad():
    packed = torch.split(model(chosen.implementation)(**inputs, use_cache=False).logits[0].float(), lengths)
    ref = model("sdpa")
    alone = [ref(input_ids=torch.tensor([x], device=device), use_cache=False).logits[0].float() for x in ids]
worst = max(float((p - a).abs().max()) for p, a in zip(packed, alone))
scale = max(float(a.abs().max()) for a in alone)
ok = worst <= 0.02 * scale + 1e-4
print(f"ATTENTION {chosen.implementation} max |packed - alone| = {worst:.4g} (logits up to {scale:.3g}) {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
EOF
}

# Start `distill train ARGS` (under LAUNCH, e.g. accelerate launch), SIGKILL it (and its workers) once checkpoint-$SAVE is
# complete, then run it again: it must resume and finish. Logs into $LOG.
kill_resume() {  # kill_resume NAME RUN_DIR LAUNCH... -- ARGS...
  local name=$1 run=$2; shift 2
  local launch=() ; while [ "$1" != "--" ]; do launch+=("$1"); shift; done; shift
  echo "#### $name: ${launch[*]} distill train $*" >>"$LOG"
  "${launch[@]}" -m distill train "$@" >>"$LOG" 2>&1 &
  local pid=$! t0=$(date +%s)
  while [ ! -f "$run/checkpoints/checkpoint-$SAVE/trainer_state.json" ] && kill -0 $pid 2>/dev/null \
        && [ $(( $(date +%s) - t0 )) -lt 400 ]; do sleep 1; done
  if ! kill -0 $pid 2>/dev/null; then
    wait $pid; local rc=$?
    record "$name-first-run" false "ended (rc $rc) before checkpoint-$SAVE was complete; free disk $(free_disk); log tail: $(tail -c 1500 "$LOG" | tr '\n' ' ')"
    return 1
  fi
  killtree $pid; wait $pid 2>/dev/null
  record "$name-checkpoint" true "checkpoint-$SAVE complete after $(( $(date +%s) - t0 ))s, $(du -sh "$run/checkpoints/checkpoint-$SAVE" | cut -f1), free disk $(free_disk); killed"
  echo "#### $name: again (resume)" >>"$LOG"
  t0=$(date +%s)
  "${launch[@]}" -m distill train "$@" >>"$LOG" 2>&1
  local rc=$?
  local resumed=false; grep -q "resuming from .*checkpoint-$SAVE" "$LOG" && resumed=true
  record "$name-resume" "$([ $rc = 0 ] && $resumed && echo true || echo false)" \
    "rc $rc in $(( $(date +%s) - t0 ))s, resumed from checkpoint-$SAVE: $resumed, free disk $(free_disk), files: $(ls "$run/model" 2>/dev/null | tr '\n' ' ')"
  [ $rc = 0 ] || echo "$(tail -c 3000 "$LOG")"
  return $rc
}

load_check() {  # load_check NAME MODEL_DIR: the saved model loads and gives a finite loss
  local out
  out=$($PY - "$2" "$DEVICE" <<'EOF' 2>&1
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path, device = sys.argv[1], sys.argv[2]
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if device == "cuda" else torch.float32).to(device)
ids = AutoTokenizer.from_pretrained(path)("What is 2 + 3? <think>\nStep: 2 + 3 = 5</think> 5", return_tensors="pt").input_ids.to(device)
with torch.no_grad():
    loss = float(model(input_ids=ids, labels=ids).loss)
print(f"loaded {sum(p.numel() for p in model.parameters()) / 1e9:.3f}B parameters, loss {loss:.3f}")
sys.exit(0 if loss == loss and loss < 1e4 else 1)
EOF
)
  local rc=$?
  record "$1-load" "$([ $rc = 0 ] && echo true || echo false)" "$(echo "$out" | tail -3 | tr '\n' ' ')"
}

COMMON=(model.name_or_path="$BASE" model.attn_implementation=auto data.sources=null data.source="$DATA" training.max_length="$MAXLEN"
        training.per_device_train_batch_size=2 training.gradient_accumulation_steps=1 training.logging_steps=1
        training.save_steps="$SAVE" training.warmup_steps=0 training.use_liger_kernel="$LIGER" training.dataset_num_proc="${NUM_PROC:-8}")
RECIPE=students/r1-distill-qwen-1.5b.yaml

for phase in $PHASES; do
  case $phase in
  bench)
    late bench && continue
    say "bench: attention check"
    if attention_check; then record attention true "packed == alone"; else record attention false "see gpu_check.log"; fi
    say "bench: modes (auto attention, checkpointing on)"
    B=(--device "$DEVICE" --shape "$SHAPE" --max-length "$MAXLEN" --traces "$TRACES" --steps "$STEPS" --warm "$WARM" --work "$WORK")
    cp bench/results/train_gpu.json "$OUT/train_gpu.json"
    APPEND=(); [ "$DEVICE" = cuda ] && APPEND=(--append-results --results "$OUT/train_gpu.json")
    $PY bench/train.py "${B[@]}" --modes padded,packed,packed+liger --json-out "$WORK/bench-auto.json" "${APPEND[@]}"
    say "bench: packed with sdpa (the path before this change), and packed+liger without checkpointing"
    $PY bench/train.py "${B[@]}" --modes packed --attention sdpa --json-out "$WORK/bench-sdpa.json" "${APPEND[@]}"
    late bench-nockpt || $PY bench/train.py "${B[@]}" --modes packed+liger --checkpointing off \
      --json-out "$WORK/bench-nockpt.json" "${APPEND[@]}"
    $PY -c 'import json, sys, pathlib
rows = [r for f in sys.argv[2:] if pathlib.Path(f).exists() for r in json.loads(pathlib.Path(f).read_text())["rows"]]
pathlib.Path(sys.argv[1]).write_text(json.dumps(rows, indent=1) + "\n")' "$OUT/bench.json" "$WORK"/bench-auto.json \
      "$WORK"/bench-sdpa.json "$WORK"/bench-nockpt.json
    summary=$($PY - "$OUT/bench.json" <<'PYX'
import json, sys
def row(r):
    head = "%s ckpt=%s %s: " % (r["mode"], r["gradient_checkpointing"], r.get("attention"))
    if "skipped" in r:
        return head + "skipped: " + r["skipped"][:80]
    return head + "%s tok/s, MFU %s, %s GiB" % (r["tokens_per_s"], r["mfu"], r["peak_gib"])
print("; ".join(row(r) for r in json.load(open(sys.argv[1]))))
PYX
)
    record bench true "$summary"
    ;;
  cli)
    late cli && continue
    LOG=$OUT/cli.log
    say "cli: full fine-tune, packed, liger=$LIGER, save every $SAVE steps: checkpoint, kill, resume, final save"
    rm -rf "$WORK/runs/cli"
    if kill_resume cli "$WORK/runs/cli" "$PY" -- "$RECIPE" "${COMMON[@]}" run_dir="$WORK/runs/cli" training.max_steps="$CLI_STEPS"; then
      load_check cli "$WORK/runs/cli/model"
    fi
    rm -rf "$WORK/runs/cli"
    late lora && continue
    say "cli: LoRA, merged at the end"
    echo "#### lora" >>"$LOG"
    rm -rf "$WORK/runs/lora"
    $PY -m distill train "$RECIPE" "${COMMON[@]}" run_dir="$WORK/runs/lora" training.max_steps=4 training.learning_rate=1e-4 \
      lora.enabled=true lora.merge=true >>"$LOG" 2>&1
    rc=$?
    record lora "$([ $rc = 0 ] && [ -f "$WORK/runs/lora/adapter/adapter_model.safetensors" ] && echo true || echo false)" \
      "rc $rc; adapter: $(ls "$WORK/runs/lora/adapter" 2>/dev/null | tr '\n' ' '); model: $(ls "$WORK/runs/lora/model" 2>/dev/null | tr '\n' ' ')"
    [ $rc = 0 ] && load_check lora-merged "$WORK/runs/lora/model"
    [ $rc = 0 ] || tail -c 3000 "$LOG"
    rm -rf "$WORK/runs/lora"
    ;;
  dist)
    if [ "$DEVICE" != cuda ] && [ -z "${FSDP_CONFIG:-}" ]; then
      say "skip dist: FSDP and ZeRO need a GPU (tests/students/test_fsdp.py covers CPU processes)"; continue
    fi
    LOG=$OUT/dist.log
    late fsdp && continue
    say "dist: FSDP2 ($FSDP) on $PROCS process(es): checkpoint, kill, resume, save, load"
    rm -rf "$WORK/runs/fsdp"
    if kill_resume fsdp "$WORK/runs/fsdp" "$PY" -m accelerate.commands.launch --config_file "$FSDP" --num_processes "$PROCS" -- \
        "$RECIPE" "${COMMON[@]}" run_dir="$WORK/runs/fsdp" training.max_steps="$CLI_STEPS"; then
      load_check fsdp "$WORK/runs/fsdp/model"
    fi
    rm -rf "$WORK/runs/fsdp"
    late zero3 && continue
    if has deepspeed; then
      say "dist: ZeRO-3 (configs/accelerate/zero3.yaml) on 1 GPU"
      rm -rf "$WORK/runs/zero3"
      if kill_resume zero3 "$WORK/runs/zero3" "$PY" -m accelerate.commands.launch --config_file configs/accelerate/zero3.yaml --num_processes "$PROCS" -- \
          "$RECIPE" "${COMMON[@]}" run_dir="$WORK/runs/zero3" training.max_steps="$CLI_STEPS"; then
        load_check zero3 "$WORK/runs/zero3/model"
      fi
      rm -rf "$WORK/runs/zero3"
    else
      record zero3 false "skipped: deepspeed is not installed here (PyPI ships it as source: pip wheel deepspeed on a machine with network, bring the wheel in .whl/)"
    fi
    ;;
  preflight)
    LOG=$OUT/cli.log
    local_files=(--local aime24=../shared/data/math/aime24.jsonl --local aime25=../shared/data/math/aime25.jsonl
                 --local math500=../shared/data/math/math500.jsonl
                 --local livecodebench=../shared/data/code/livecodebench_2408_2501_public_tests.json)
    printf '%s\n' '{"Record ID": "recA", "Question": "Which gas makes up most of the air?", "Correct Answer": "Nitrogen", "Incorrect Answer 1": "Oxygen", "Incorrect Answer 2": "Argon", "Incorrect Answer 3": "Carbon dioxide"}' \
      >"$WORK/gpqa-stand-in.jsonl"  # GPQA is gated on the Hub: one stand-in row of its layout
    for recipe in students/r1-distill-qwen-1.5b.yaml students/r1-distill-qwen-1.5b-on-policy.yaml; do
      late "preflight $recipe" && continue
      say "preflight: $recipe"
      t0=$(date +%s)
      if $PY -m distill preflight "$recipe" --models "$MODELS" --out "$WORK/preflight" "${local_files[@]}" \
          --local gpqa_diamond="$WORK/gpqa-stand-in.jsonl" >>"$LOG" 2>&1; then
        record "preflight $(basename "$recipe" .yaml)" true "$(( $(date +%s) - t0 ))s: $(grep -F '[preflight' "$LOG" | tail -1)"
      else
        record "preflight $(basename "$recipe" .yaml)" false "$(tail -3 "$LOG" | tr '\n' ' ')"
      fi
    done
    ;;
  *) say "unknown phase $phase (bench, cli, dist, preflight)";;
  esac
done
say "done: $(grep -c '"ok": true' "$OUT/results.jsonl" 2>/dev/null) checks ok, $(grep -c '"ok": false' "$OUT/results.jsonl" 2>/dev/null) not"
