# mlscale — the two set-up commands on a fresh machine are `make demo` and `make test`.
# Both create .venv and install what they need (pip packages, Java 17, helm and kubectl).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
TFF_VERSION := 0.87.0

.PHONY: help venv tools lint crds crds-check test test-fast demo bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements/engines.txt requirements/operator.txt requirements/dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "mlscale needs Python 3.11 (TensorFlow Federated does not support 3.12); set PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	# Engines first: tensorflow-privacy pins packaging 22, which pytest 9 overrides below.
	$(BIN)/pip install -q -r requirements/engines.txt
	# TensorFlow Federated pins jaxlib==0.4.14, never published: its requirements are in engines.txt.
	$(BIN)/pip install -q --no-deps tensorflow-federated==$(TFF_VERSION)
	$(BIN)/pip install -q -r requirements/operator.txt -r requirements/dev.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with every package

tools: $(STAMP)  ## install helm, kubectl (into .venv/bin) and Java 17 when missing
	PYTHON=$(BIN)/python bash scripts/install-tools.sh --bin-dir $(BIN)

lint: $(STAMP)  ## ruff (checks and formatting), mypy --strict, import-linter
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy mlscale controllers dynaspark hyperfl roma
	$(BIN)/lint-imports

crds: $(STAMP)  ## regenerate crds/ and the chart's copy from the models
	$(BIN)/mlscale crds

crds-check: $(STAMP)
	$(BIN)/mlscale crds --check

test: tools lint crds-check  ## lint, then the whole test suite
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)  ## unit tests only
	$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

demo: tools  ## run each engine's example on this machine, with live progress and a report
	PATH=$(abspath $(BIN)):$$PATH bash scripts/demo.sh

bench: tools  ## run the benchmarks (JSON + PNG under bench/results/)
	PATH=$(abspath $(BIN)):$$PATH bash scripts/bench.sh

clean:  ## remove reports and caches (keeps .venv)
	rm -rf reports .pytest_cache .mypy_cache .ruff_cache
