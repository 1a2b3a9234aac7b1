# The README's two commands: `make demo` (the main job, end to end) and `make test` (the whole suite).
# Both create/refresh the virtualenvs themselves, with uv, from the committed locks (locks/*.txt: exact
# versions, made by `make lock`); a virtualenv is rebuilt when its lock, pyproject.toml or setup.py changes,
# and only then. README: "Set-up: locked versions, uv".
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python

# uv: the one on PATH when it is this version, else pip-installs it into .uv/ (a fresh machine has none).
UV_VERSION := 0.13.9
UV_FOUND := $(shell command -v uv >/dev/null 2>&1 && [ "$$(uv --version | cut -d' ' -f2)" = "$(UV_VERSION)" ] && command -v uv)
UV := $(or $(UV_FOUND),.uv/bin/uv)
# uv reads no pip configuration: carry this machine's (find-links, indexes; constraints for installs) over.
UV_SYNC_FLAGS := $(shell $(PYTHON) locks/uv_flags.py sync)
# The locks are for CPython 3.11 on Linux; "make lock" keeps every pin it can (UPGRADE=1: newest of all).
LOCK_FLAGS = -q --python-version 3.11 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade,) \
	$(shell $(PYTHON) locks/uv_flags.py compile)

.PHONY: demo test test-latest lock gpu-wheels lint venv venv-trl023 browser clean

# A second virtualenv with TRL 0.23 (the last TRL with DDPOTrainer) for the TRL-compatibility test
# (tests/test_ddpo_trl023.py), from its own lock.
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

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install -q uv==$(UV_VERSION)

# sync = exactly the lock (removes anything else), then the package itself, editable, without dependencies.
$(STAMP): locks/dev.txt pyproject.toml setup.py | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip sync -q --python $(PY) $(UV_SYNC_FLAGS) locks/dev.txt
	$(UV) pip install -q --python $(PY) --no-deps -e .
	$(PY) locks/check_torch.py
	touch $(STAMP)

venv-trl023: $(TRL_STAMP)

$(TRL_STAMP): locks/trl023.txt pyproject.toml setup.py | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(TRL_VENV)
	$(UV) pip sync -q --python $(TRL_VENV)/bin/python $(UV_SYNC_FLAGS) locks/trl023.txt
	$(UV) pip install -q --python $(TRL_VENV)/bin/python --no-deps -e .
	$(TRL_VENV)/bin/python locks/check_torch.py
	touch $(TRL_STAMP)

# Re-resolve the locks after a dependency changed in pyproject.toml or locks/*.in (seconds; commit the result).
# Pins already in a lock stay unless they must move; `make lock UPGRADE=1` takes the newest releases of all.
lock: | $(UV)
	$(UV) pip compile $(LOCK_FLAGS) locks/dev.in pyproject.toml --extra all --extra dev -o locks/dev.txt
	$(UV) pip compile $(LOCK_FLAGS) locks/trl023.in pyproject.toml --extra diffusion --extra minilm -o locks/trl023.txt

# The wheels benchmarks/gpu_check.py needs on the GPU machine (benchmarks/gpu_wheels.txt) at locks/dev.txt's
# versions, for its Python 3.12, into .whl/ (carried there with the working tree; README "GPU check").
gpu-wheels:
	rm -rf .whl && mkdir .whl
	for name in $$(sed 's/#.*//' benchmarks/gpu_wheels.txt); do \
		pin=$$(grep -i -E "^$$name==" locks/dev.txt) || { echo "$$name is not in locks/dev.txt"; exit 1; }; \
		$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
			--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl "$$pin" || exit 1; \
	done
	@ls .whl; du -sh .whl

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

# The suite on the newest releases (torch stays at locks/dev.in's pin: its CPU wheel), not the lock; not in CI.
# It prints what differs from the lock; green means `make lock UPGRADE=1` is a safe bump.
LATEST_VENV := .venv-latest
test-latest: $(TRL_STAMP) lint browser | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(LATEST_VENV)
	$(UV) pip install -q --python $(LATEST_VENV)/bin/python --upgrade $(shell $(PYTHON) locks/uv_flags.py install) \
		-r locks/dev.in -e ".[all,dev]"
	$(LATEST_VENV)/bin/python locks/check_torch.py
	$(LATEST_VENV)/bin/synartifact-hf install-metrics
	@echo "newer than locks/dev.txt:"; $(UV) pip freeze -q --python $(LATEST_VENV)/bin/python --exclude-editable \
		| sort > $(LATEST_VENV)/freeze.txt; grep -E '^[A-Za-z0-9]' locks/dev.txt | sort | comm -13 - $(LATEST_VENV)/freeze.txt
	SYNARTIFACT_REQUIRE_TRL023=1 HF_HUB_OFFLINE=1 $(LATEST_VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) $(TRL_VENV) $(LATEST_VENV) .uv .pytest_cache .ruff_cache
