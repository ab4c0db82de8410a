# Two entry points: `make demo` and `make test`. Each bootstraps .venv on its own.
# `make docs` builds the documentation site into site/ (also part of `make test`).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: demo test lint typecheck docs pytest bench bench-quick bench-long bench-sleepers soak soak-pg sim clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,docs,postgres]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sagactor.playground --script sagactor/playground/demo.play

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# --strict: a warning (a broken link, a missing page, an unresolved API name) fails the build.
# NO_MKDOCS_2_WARNING silences mkdocs-material's end-of-life banner (an ad, not a warning).
# No --quiet: with it, mkdocs 1.6 no longer counts the warnings that --strict must fail on.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The PostgreSQL tests start their own throwaway cluster; its binaries are installed first
# (apt-get, when missing), outside any test's time limit.
pytest: $(STAMP)
	scripts/pg-cluster install
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest -q

test: lint typecheck docs pytest

# The bench extra (DBOS, the durable baseline) has its own stamp: `make test` never installs it.
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -q -e '.[bench]'
	touch $(BENCH_STAMP)

# The figures of issue 11 beside same-run baselines (about 10 minutes); -quick is a smoke run
# (about 2 minutes), -long runs the RSS figure over 1,000,000 sagas.
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --quick

bench-long: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --long

# 100,000 sagas asleep at once: memory per sleeping saga, reopen time, then all woken (also
# part of `make bench`, without the wake-up).
bench-sleepers: $(STAMP)
	$(BIN)/python bench/bench_sleepers.py --sagas 100000 --wake

soak: $(STAMP)
	$(BIN)/python -m tests.soak --kills 1000

# 3 worker processes sharing one PostgreSQL database (a throwaway cluster), 100 SIGKILLs.
soak-pg: $(STAMP)
	scripts/pg-cluster install
	$(BIN)/python -m tests.soak_pg --kills 100

# SEEDS=500 make sim: fewer seeds (the default is the issue's 10,000).
SEEDS ?= 10000
sim: $(STAMP)
	$(BIN)/python -m sagactor.testing.sim --seeds $(SEEDS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis site
