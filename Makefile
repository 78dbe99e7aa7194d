# hilos — the two Quick start commands are `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TESTSTAMP := $(VENV)/.installed-test

.PHONY: run test check lint format bench lab-up lab-down clean system-deps

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m compileall -q src/hilos >/dev/null  # bytecode even under PYTHONDONTWRITEBYTECODE
	touch $@

$(TESTSTAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m compileall -q src/hilos >/dev/null
	touch $@ $(STAMP)

## run: install hilos in .venv and scan this machine's loopback (safe default)
run: $(STAMP)
	$(BIN)/hilos scan 127.0.0.1 --top-ports 1000

## system-deps: iproute2, nftables, nmap, fping for the lab tests and benchmarks (root, Debian)
system-deps:
	@bash scripts/system-deps

## test: install test dependencies, run the checks, then the whole suite
test: $(TESTSTAMP) system-deps check
	$(BIN)/python -m pytest

## check: ruff (lint + format), mypy --strict, the layers contract, complexity and file size
check: $(TESTSTAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/xenon --max-absolute C src/hilos
	bash scripts/check-sizes

format: $(TESTSTAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

## bench: the benchmarks against nmap/fping (root; builds its own lab)
bench: $(TESTSTAMP) system-deps
	$(BIN)/python -m compileall -q src/hilos >/dev/null
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
