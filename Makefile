# personabid: `make run` serves the demo world, `make test` runs the suite. Both set everything up.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= var/demo
SERVE_ARGS ?=
# How many times faster than real time the server's clock runs (`make run CLOCK_SPEED=1440`: a day a minute).
CLOCK_SPEED ?= 1
STAMP := $(VENV)/.installed

.PHONY: help deps install proto run demo test test-kernels lint fuzz bench-decision bench bench-smoke probe clean

help:
	@echo "make run     make deps, set up .venv, build the demo world if missing, serve (HTTP :8080, gRPC :50051, metrics :9464; CLOCK_SPEED=N runs its clock N times faster)"
	@echo "make test    make deps, set up .venv and run the whole test suite"
	@echo "make proto   regenerate the gRPC stubs from proto/"
	@echo "make deps    install what is needed outside Python (redis-server, prometheus, chromium, java): apt-get, as root"
	@echo "make test-kernels  the kernels' tests with Numba off, with line coverage (CI runs it)"
	@echo "make lint    ruff (check and format) and mypy"
	@echo "make fuzz    fuzz request decoding and validation for FUZZ_SECONDS (crashes in var/fuzz/crash-*)"
	@echo "make bench   the whole benchmark suite: micro (pytest-benchmark) and end to end (personabid bench)"
	@echo "make bench-smoke  a short end-to-end run (under 2 minutes), checked for complete, sane results"
	@echo "make probe   hostile traffic against a real server on the demo world (PROBE_ARGS, default --quick)"

# Everything below goes through here, so that `make run` and `make test` set up a fresh machine. A quick
# no-op when all is present; otherwise it installs with apt-get (as root) or says what to install.
deps:
	PYTHON=$(PYTHON) .ci/system-deps

$(BIN)/python: | deps
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: deps $(STAMP) proto

proto: $(STAMP)
	$(BIN)/python proto/generate.py

demo: install
	$(BIN)/personabid demo --if-missing --out $(DATA)

run: demo
	$(BIN)/personabid serve --data-dir $(DATA) --clock-speed $(CLOCK_SPEED) $(SERVE_ARGS)

# The benchmarks run once each as tests (no timing), so that they cannot rot.
test: install
	$(BIN)/python -m pytest tests benchmarks --benchmark-disable

# The kernels' tests again with Numba off (NUMBA_DISABLE_JIT=1): the same code runs as plain Python, so
# that coverage can see inside the kernels (compiled code is invisible to it). CI runs it. The feature
# hashes multiply uint64 modulo 2**64 on purpose: compiled, that wraps silently; as numpy scalars it warns.
KERNEL_TESTS := tests/test_pricing.py tests/test_bid_strategies.py tests/test_model.py tests/test_ftrl.py tests/test_training_fm.py \
	tests/test_features.py tests/test_training_calibration.py tests/test_kernel_inputs.py tests/test_creatives.py \
	tests/test_eligibility.py tests/test_priced_pick.py tests/test_match.py tests/test_sparse_search.py \
	tests/test_uservec.py
test-kernels: install
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest $(KERNEL_TESTS) -q -p no:cacheprovider \
		-W "ignore:overflow encountered in scalar:RuntimeWarning" \
		--cov=personabid.ctr --cov=personabid.decision.pricing --cov=personabid.decision.creatives \
		--cov=personabid.decision.eligibility --cov=personabid.decision.match --cov=personabid.index.sparse \
		--cov=personabid.decision.uservec \
		--cov=personabid.training.ftrl \
		--cov=personabid.training.fm --cov=personabid.training.calibration \
		--cov-report=term-missing:skip-covered

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPY=$(BIN)/mypy .ci/typecheck

# Coverage-guided fuzzing (atheris) of bytes -> BidRequest -> validation -> decision on a small world built
# in var/fuzz/world; the corpus grows in var/fuzz/corpus. The suite runs the same harness for 30 s.
FUZZ_SECONDS ?= 300
fuzz: install
	mkdir -p var/fuzz
	$(BIN)/python -m tests.fuzz_request --world var/fuzz/world --corpus var/fuzz/corpus \
		-max_total_time=$(FUZZ_SECONDS) -artifact_prefix=var/fuzz/

bench-decision: install
	mkdir -p benchmarks/results
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/decision.json

# The whole suite: every micro benchmark (the 100k and 1M catalogs too: built once, cached under
# benchmarks/results/worlds/), then the end-to-end run; RESULTS.md's Micro and End to end sections are
# rewritten from the results (its other sections are left alone).
bench: install
	mkdir -p benchmarks/results
	PERSONABID_BENCH_SLOW=1 $(BIN)/python -m pytest benchmarks --benchmark-only \
		--benchmark-json=benchmarks/results/micro.json
	$(BIN)/personabid bench --plan full --out benchmarks/results/e2e --py-spy \
		--micro benchmarks/results/micro.json --update-results benchmarks/RESULTS.md
	$(BIN)/python benchmarks/check_results.py benchmarks/results/e2e/results.json

# CI runs this: short, on the 10k catalog; checks the results are complete and sane, never a time.
bench-smoke: install
	$(BIN)/personabid bench --plan smoke --out benchmarks/results/smoke
	$(BIN)/python benchmarks/check_results.py benchmarks/results/smoke/results.json

# Hostile traffic (undecodable bodies, extreme values, cancelled streams, SIGTERM, a Redis outage) against
# servers it starts on the demo world; quick by default (about a minute): PROBE_ARGS= runs the full counts.
# Exits non-zero if it found a defect.
PROBE_ARGS ?= --quick
probe: demo
	$(BIN)/python -m personabid.bench.probe --data-dir $(DATA) $(PROBE_ARGS)

clean:
	rm -rf $(VENV) build var .pytest_cache .benchmarks
