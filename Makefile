# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run build test lint typecheck golden system-deps bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## The main job with its embedded defaults.
run: $(STAMP)
	$(BIN)/cccn-feeds serve

## One-shot build of feeds/ from data/.
build: $(STAMP)
	$(BIN)/cccn-feeds build

## Distribution packages the tests drive for real (a browser, nginx). Installed when missing and root.
system-deps:
	@bash scripts/system-deps.sh

## The whole suite: lint, types, tests.
test: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Regenerate golden files under tests/golden/ (review the diff).
golden: $(STAMP)
	CCCN_UPDATE_GOLDEN=1 $(BIN)/python -m pytest tests -k golden -q

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/serve_bench.py
	$(BIN)/python bench/service_builds.py

clean:
	rm -rf $(VENV) feeds .pytest_cache .mypy_cache .ruff_cache test-artifacts
