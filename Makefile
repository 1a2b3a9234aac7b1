# The README's two commands: `make demo` (the main job, end to end) and `make test` (the whole suite).
# Both create/refresh the virtualenv themselves; it is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
# torch first, pinned: a CPU build of 2.13.0 lies on disk; an unpinned torch pulls a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/synartifact-hf demo $(if $(MODEL),--model $(MODEL),)

lint: $(STAMP)
	$(VENV)/bin/ruff check synartifact_hf tests examples benchmarks

test: $(STAMP) lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
