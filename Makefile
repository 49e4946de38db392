# The two commands a newcomer runs: `make demo` (main job on built-in data) and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch is pinned: a CPU build installs from a local file here; an unpinned torch pulls GBs of CUDA wheels.
TORCH   := torch==2.13.0
DEMO    := outputs/demo

.PHONY: demo test test-slow install clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q "$(TORCH)" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/talkfreq demo --out $(DEMO)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/prepare_speed.py
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
