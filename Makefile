# Every target bootstraps .venv from nothing, so a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins its own versions of boto3, packaging and more, so it gets a
# virtualenv of its own (tests/tools.py finds it there).
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_VERSION := 3.3.30
PYTEST_ARGS ?=

.PHONY: run test test-fast lint fmt bench fuzz sysdeps jsdeps clean checkov

# One pip command, so the dev extras' stemscribe-client is the local clients/python.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e 'clients/python[stream]' -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q 'checkov==$(CHECKOV_VERSION)'

checkov: $(CHECKOV)

sysdeps:
	bash scripts/install-system-deps.sh

# The socket.io-client the earlier servers' pages load, for the browser tests.
JS_DIR := tests/browser/js
$(JS_DIR)/node_modules/.package-lock.json: $(JS_DIR)/package-lock.json
	npm ci --prefix $(JS_DIR) --no-audit --no-fund

jsdeps: $(JS_DIR)/node_modules/.package-lock.json

run: $(STAMP)
	$(BIN)/serve run serve_config.yaml

test: $(STAMP) $(CHECKOV) sysdeps jsdeps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) $(CHECKOV)
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
	$(BIN)/python bench/batched_files.py
	$(BIN)/python bench/streaming.py
	$(BIN)/python bench/load.py

fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz_api.py $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache $(JS_DIR)/node_modules
