# The two commands a newcomer runs: `make demo` (main job on built-in data) and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch is pinned: a CPU build installs from a local file here; an unpinned torch pulls GBs of CUDA wheels.
TORCH   := torch==2.13.0
DEMO    := outputs/demo

.PHONY: demo test test-fast test-slow lint install clean bench gpu-wheels

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

lint: $(STAMP)
	$(BIN)/ruff check .

# everything CI runs (the demo, DDP, browser and expert-training tests included)
test: lint
	$(BIN)/python -m pytest -q

# the edit loop: without the tests marked heavy
test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow and not heavy"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/prepare_speed.py
	$(BIN)/python benchmarks/pipeline.py

# The GPU machine of benchmarks/gpu_check.sh reaches no registry: these wheels (cp312, manylinux x86-64) and the
# sample clip travel with the tree in .whl/ (ignored), within the device call's size limit.
WHL       := .whl
MANYLINUX := $(foreach t,manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1,--platform $(t)_x86_64)

gpu-wheels:
	rm -rf $(WHL) && mkdir -p $(WHL)
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $(MANYLINUX) \
		-d $(WHL) -r benchmarks/gpu_wheels.txt
	PYTHONPATH=src $(BIN)/python benchmarks/gpu_check.py video $(WHL)/bench.mp4 --wheels $(WHL)
	$(PY) benchmarks/gpu_check.py sizes $(WHL)

clean:
	rm -rf $(VENV) outputs .pytest_cache
