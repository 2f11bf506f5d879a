# personabid: `make run` serves the demo world, `make test` runs the suite. Both set everything up.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= var/demo
SERVE_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: help install proto run demo test lint bench-decision clean

help:
	@echo "make run     set up .venv, build the demo world if missing, serve on 127.0.0.1:50051 (metrics :9464)"
	@echo "make test    set up .venv and run the whole test suite"
	@echo "make proto   regenerate the gRPC stubs from proto/"
	@echo "make lint    ruff"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(STAMP) proto

proto: $(STAMP)
	$(BIN)/python proto/generate.py

demo: install
	$(BIN)/personabid demo --if-missing --out $(DATA)

run: demo
	$(BIN)/personabid serve --data-dir $(DATA) $(SERVE_ARGS)

# The benchmarks run once each as tests (no timing), so that they cannot rot.
test: install
	$(BIN)/python -m pytest tests benchmarks --benchmark-disable

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench-decision: install
	mkdir -p benchmarks/results
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/decision.json

clean:
	rm -rf $(VENV) build var .pytest_cache .benchmarks
