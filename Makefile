# Every target bootstraps .venv from nothing, so a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test test-fast lint fmt bench fuzz sysdeps clean

# One pip command, so the dev extras' stemscribe-client is the local clients/python.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e 'clients/python[stream]' -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

sysdeps:
	bash scripts/install-system-deps.sh

run: $(STAMP)
	$(BIN)/serve run serve_config.yaml

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "unit or api" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/separation.py
	$(BIN)/python bench/transcription.py
	$(BIN)/python bench/streaming.py
	$(BIN)/python bench/load.py

fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz_api.py $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
